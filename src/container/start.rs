//! `start`: release a created container's init by writing to its exec fifo.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::status::{status, Status};
use crate::state::StateDir;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start an already {s} container"),
    }
    release(&sd.fifo_path()).with_context(|| format!("start container {id}"))
}

/// Write the byte the init waits for, then remove the fifo (its absence means "started").
pub fn release(fifo: &Path) -> Result<()> {
    // O_NONBLOCK: if the init died there is no reader and this fails (ENXIO) at once.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .context("container init is not waiting")?;
    f.write_all(&[0]).context("write exec fifo")?;
    std::fs::remove_file(fifo).context("remove exec fifo")?;
    Ok(())
}
