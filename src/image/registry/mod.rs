//! Registries (the OCI distribution API): `pull`, `push`, `login`, `logout`.
//!
//! oci-client (over reqwest and rustls) does the token dance, blob HEADs,
//! cross-repository mounts and manifest PUTs; the transfers of bytes are our own requests
//! on the same reqwest (manifests capped in size, blobs verified as they stream, uploads
//! as one streamed PATCH). Our side reuses `load`'s checks, parallel unpacker and locked
//! publish, so a pulled image is verified exactly as a loaded one, and nothing is
//! published until all of it is.

pub mod arrival;
pub mod auth;
pub mod certs;
pub mod client;
pub mod fetch;
pub mod helper;
pub mod hub;
pub mod login;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod status;

pub use client::ConnOpts;
