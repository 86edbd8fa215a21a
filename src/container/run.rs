//! `run`: create + start; in the foreground, forward signals, reap the init, delete the
//! container and return its exit code (128+N if a signal N killed it).

use anyhow::{bail, Result};
use std::os::fd::AsRawFd;

use super::create::{create, CreateOpts, Created};
use super::delete::destroy;
use crate::hooks::{self, Kind};
use crate::process::channel::{recv, Msg};
use crate::state::StateDir;

pub fn run(o: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    let c = create(o)?;
    let pid = c.state.pid;
    if let Err(e) = release(&c) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        if let Ok(sd) = StateDir::open(&o.root, &o.id) {
            let _ = destroy(sd, &c.state);
        }
        return Err(e);
    }
    let st = &c.state;
    hooks::run_warn(
        Kind::Poststart,
        hooks::of(st.hooks.as_ref(), Kind::Poststart),
        &hooks::State::new(st, pid),
    );
    if detach {
        return Ok(0);
    }
    let code = crate::process::wait::foreground(pid, c.console.as_ref(), &c.orig_mask)?;
    if !keep {
        // Someone may have run `delete --force` meanwhile; then there is nothing left to do.
        if let Ok(sd) = StateDir::open(&o.root, &o.id) {
            destroy(sd, &c.state)?;
        }
    }
    Ok(code)
}

// Start the init (waiting on a pipe: see `CreateOpts::start_now`) and learn whether its
// execve worked: the message channel closes on exec.
fn release(c: &Created) -> Result<()> {
    if unsafe { libc::write(c.fifo.as_raw_fd(), [0u8].as_ptr() as *const libc::c_void, 1) } != 1 {
        bail!("start container: {}", std::io::Error::last_os_error());
    }
    match recv(&c.chan) {
        Msg::Error(m) => bail!("container init: {m}"),
        _ => Ok(()),
    }
}
