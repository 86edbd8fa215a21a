//! The image half (`strata-image`): an OCI image store, layers, commit, export, history.
//!
//! It runs containers only through the `strata` binary, as podman runs runc.

pub mod archive;
pub mod build;
pub mod bundle;
pub mod commit;
pub mod compress;
pub mod config;
pub mod container;
pub mod diff;
pub mod digest;
pub mod export;
pub mod gc;
pub mod history;
pub mod images;
pub mod import;
pub mod layer;
pub mod layerblob;
pub mod names;
pub mod oci;
pub mod progress;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod user;
pub mod whiteout;
