//! The image half (`strata-image`): an OCI image store, layers, commit, export, history.
//!
//! It runs containers only through the `strata` binary, as podman runs runc.

pub mod compress;
pub mod digest;
pub mod layer;
pub mod whiteout;
