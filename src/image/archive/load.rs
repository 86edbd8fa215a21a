//! `load`: images from a docker-archive (docker ≤24 and skopeo's `<id>/layer.tar` layout,
//! docker 25+'s OCI layout with `manifest.json`), an oci-archive, or an OCI layout directory.
