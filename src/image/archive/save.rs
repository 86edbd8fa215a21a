//! `save`: images as one tar, in the hybrid shape docker 25+ writes (an OCI layout plus
//! `manifest.json` and `repositories`), as an oci-archive, or with plain tar layers.
