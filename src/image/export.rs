//! `export`: the flattened union view of a container as one tar (no whiteouts, no layers,
//! no metadata), as `docker export` writes it.
//!
//! The view is a detached read-only overlay of the container's upper dir over its image's
//! layers: visible in no mount namespace, gone when we close it, and read through fds.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use super::commit::Frozen;
use super::layer::{self, Source, Times, WriteOpts};
use super::progress::Progress;
use super::runtime::Runtime;
use super::store::{open_dir, Store};

/// Write container `key`'s view as a tar to `out`.
pub fn export<W: Write>(store: &Store, rt: &Runtime, key: &str, out: W, quiet: bool) -> Result<W> {
    let c = store.container(key)?;
    let mut dirs = vec![store.container_dir(&c.id).join("upper")];
    dirs.extend(c.layers.iter().rev().map(|l| store.layer_diff(l)));
    let fds: Vec<OwnedFd> = dirs.iter().map(|d| open_dir(d)).collect::<Result<_>>()?;
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    // A running container's upper must not change under the overlay reading it.
    let _frozen = Frozen::new(rt, &c.name, true)?;
    let view = crate::overlay::mount_readonly(&borrowed)
        .with_context(|| format!("export {}: mount its view", c.name))?;
    let root = format!("/proc/self/fd/{}", view.as_raw_fd());
    let progress = Progress::new("export", None, quiet);
    let opts = WriteOpts {
        source: Source::Tree,
        times: Times::Keep,
        copy_to: None,
    };
    let (_, out) = layer::write_tar(Path::new(&root), out, &opts, &mut |n| progress.inc(n))
        .with_context(|| format!("export {}", c.name))?;
    progress.done();
    Ok(out)
}
