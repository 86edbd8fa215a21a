//! `start`: release a created container's init by writing to its exec fifo.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::status::{status, Status};
use crate::hooks::{self, Kind};
use crate::state::StateDir;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start an already {s} container"),
    }
    let h = st.hooks.as_ref();
    let poststart = hooks::of(h, Kind::Poststart);
    // poststart runs once the program does, and a startContainer hook's failure
    // should fail `start`: both need to see the init through its execve.
    let watch = !poststart.is_empty() || !hooks::of(h, Kind::StartContainer).is_empty();
    let ctx = || format!("start container {id}");
    let watcher = release(&sd.fifo_path(), watch).with_context(ctx)?;
    if let Some(w) = watcher {
        wait_exec(w).with_context(ctx)?;
    }
    hooks::run_warn(Kind::Poststart, poststart, &hooks::State::new(&st, st.pid));
    Ok(())
}

/// Write the byte the init waits for, then remove the fifo (its absence means "started").
/// With `watch`, also return a read end of the fifo for [`wait_exec`].
pub fn release(fifo: &Path, watch: bool) -> Result<Option<File>> {
    // O_NONBLOCK: if the init died there is no reader and this fails (ENXIO) at once.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .context("container init is not waiting")?;
    // Opened after the writer above, so its hang-up means every writer after ours is
    // gone: the init's fifo fd closes at execve (CLOEXEC) or when it dies.
    let watcher = watch
        .then(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(fifo)
        })
        .transpose()
        .context("open exec fifo")?;
    f.write_all(&[0]).context("write exec fifo")?;
    std::fs::remove_file(fifo).context("remove exec fifo")?;
    Ok(watcher)
}

/// Wait until the init has exec'd the program or died; an error it left in the fifo
/// (a failed startContainer hook or execve) is ours to report.
fn wait_exec(mut w: File) -> Result<()> {
    // Only POLLHUP is asked for: the byte for the init must stay unread by us.
    let mut p = libc::pollfd {
        fd: w.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    while unsafe { libc::poll(&mut p, 1, -1) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait for the container's program");
        }
    }
    let mut buf = Vec::new();
    let _ = w.read_to_end(&mut buf);
    match buf.as_slice() {
        [] => Ok(()),
        [0, ..] => bail!("container init died before it was started"),
        m => bail!("container init: {}", String::from_utf8_lossy(m).trim()),
    }
}
