//! Whiteouts: the OCI form in layer tars (`.wh.NAME`, `.wh..wh..opq`) and the overlayfs form
//! in layer dirs (0/0 character devices, `trusted.overlay.opaque`), and the rules between them.
// PLACEHOLDER until the layer branch lands.
pub fn is_overlay_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}
pub fn is_opaque(_fd: std::os::fd::RawFd) -> std::io::Result<bool> {
    Ok(false)
}
