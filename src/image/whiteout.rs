//! Whiteouts: the OCI form in layer tars (`.wh.NAME`, `.wh..wh..opq`) and the overlayfs form
//! in layer dirs (0/0 character devices, `trusted.overlay.opaque`), and the rules between them.
