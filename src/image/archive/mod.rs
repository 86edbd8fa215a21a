//! Image archives: `save` writes images with all their layers and metadata as one tar
//! (docker-archive, oci-archive, or the hybrid both read); `load` reads any of them, or an
//! OCI layout directory, back into the store.

pub mod docker;
pub mod load;
pub mod save;
