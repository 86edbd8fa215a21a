//! The child side of `exec`: a process that joins a running container (its cgroups,
//! then its namespaces) and becomes the user's program there.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::attrs::Attrs;
use super::channel::send_error;
use super::{user, ProcessPlan};
use crate::namespaces;

/// The namespaces to join, user namespace first, as opened from the container's init.
pub type NsFds = Vec<(OwnedFd, libc::c_int, &'static str)>;

/// File descriptors handed to the exec child.
pub struct JoinFds {
    pub chan: OwnedFd,
    /// One byte once the parent has put us in the container's cgroups.
    pub go: OwnedFd,
    pub console: Option<OwnedFd>,
    /// The parent's state-dir lock, which must not outlive it.
    pub lock: std::os::fd::RawFd,
}

/// Run the exec child; never returns.
pub fn run(
    p: &ProcessPlan,
    attrs: &Attrs,
    ns: &NsFds,
    fds: JoinFds,
    orig_mask: &libc::sigset_t,
) -> ! {
    unsafe { libc::close(fds.lock) };
    user::reset_signals(orig_mask);
    let exe = match setup(p, attrs, ns, &fds) {
        Ok(exe) => exe,
        Err(e) => {
            send_error(&fds.chan, &format!("{e:#}"));
            unsafe { libc::_exit(1) }
        }
    };
    let msg = user::exec(p, &exe);
    // `exec` in the foreground or not, our parent is still listening.
    send_error(&fds.chan, &msg);
    unsafe { libc::_exit(127) }
}

fn setup(p: &ProcessPlan, attrs: &Attrs, ns: &NsFds, fds: &JoinFds) -> Result<CString> {
    // Nothing of the container is touched before we are in its cgroups (limits apply
    // from the first step).
    let mut b = [0u8; 1];
    if unsafe { libc::read(fds.go.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
        unsafe { libc::_exit(1) };
    }
    for (fd, t, name) in ns {
        namespaces::join(fd, *t, name)?;
    }
    // setns into the mount namespace put us at its root: the container's.
    if let Some(sock) = &fds.console {
        crate::console::attach(sock.as_raw_fd(), p.console_size, false)
            .context("process.terminal")?;
    }
    user::prepare(p, attrs, &fds.chan)
}
