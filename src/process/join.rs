//! The child side of `exec`: a process that joins a running container (its cgroups,
//! then its namespaces) and becomes the user's program there.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::attrs::Attrs;
use super::channel::send_error;
use super::{user, ProcessPlan};
use crate::namespaces;

/// The namespaces to join, user namespace first, mount namespace last, as opened from the
/// container's init.
pub type NsFds = Vec<(OwnedFd, libc::c_int, &'static str)>;

/// File descriptors handed to the exec child.
pub struct JoinFds {
    pub chan: OwnedFd,
    /// One byte once the parent has put us in the container's cgroups.
    pub go: OwnedFd,
    pub console: Option<OwnedFd>,
    /// The parent's state-dir lock, which must not outlive it.
    pub lock: std::os::fd::RawFd,
    /// The init's root (`/proc/<pid>/root`), to chroot into when the container has no
    /// mount namespace of its own (joining none would leave us at the host's root).
    pub root: Option<OwnedFd>,
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
    crate::exeseal::close_inherited();
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
    join_all(ns)?;
    if let Some(r) = &fds.root {
        let ok = unsafe { libc::fchdir(r.as_raw_fd()) == 0 && libc::chroot(c".".as_ptr()) == 0 };
        if !ok {
            return Err(std::io::Error::last_os_error())
                .context("chroot into the container's root");
        }
    }
    // setns into the mount namespace put us at its root: the container's.
    if let Some(sock) = &fds.console {
        crate::console::attach(sock.as_raw_fd(), p.console_size, false)
            .context("process.terminal")?;
    }
    user::prepare(p, attrs, &fds.chan)
}

/// Enter `ns`. With a user namespace to enter, the others are tried first, while we still
/// hold the host's rights: a namespace joined by path at create belongs to the host's user
/// namespace, and inside the container's we could not enter it (runc 1.2 does the same).
/// What fails then (rootless: everything) is entered after the user namespace. The mount
/// namespace always comes last: it moves our root, and a user namespace cannot be
/// entered from what looks like a chroot.
fn join_all(ns: &NsFds) -> Result<()> {
    let user_first = ns.first().is_some_and(|n| n.1 == libc::CLONE_NEWUSER);
    let mut done = [false; 8];
    if user_first {
        for (i, (fd, t, _)) in ns.iter().enumerate().skip(1) {
            done[i] = *t != libc::CLONE_NEWNS && unsafe { libc::setns(fd.as_raw_fd(), *t) } == 0;
        }
    }
    for (i, (fd, t, name)) in ns.iter().enumerate() {
        if !done[i] {
            namespaces::join(fd, *t, name)?;
        }
    }
    Ok(())
}
