//! Registries (the OCI distribution API): `pull`, `push`, `login`, `logout`.
//!
//! oci-client (over reqwest and rustls) speaks the protocol: the token dance, blob
//! HEADs, cross-repository mounts, chunked uploads, manifests. Our side reuses `load`'s
//! checks, parallel unpacker and locked publish, so a pulled image is verified exactly
//! as a loaded one, and nothing is published until all of it is.

pub mod auth;
pub mod client;
pub mod fetch;
pub mod login;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod status;

pub use client::ConnOpts;
