//! `kill`: signal the init, or with `--all` every process in the container's cgroup.

use anyhow::{bail, Result};
use std::path::Path;

use super::status::{status, Status};
use crate::state::StateDir;

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let s = status(&st, &sd);
    if s == Status::Stopped {
        // runc 1.1: `kill --all` still reaches what is left in the cgroup once the init
        // has exited; containerd's shim relies on it for a container without a pid
        // namespace of its own (docker run --pid container:X), to kill init's children.
        if all {
            return send(&st, id, sig, true);
        }
        bail!("{}", not_running(id));
    }
    let r = send(&st, id, sig, all);
    // A frozen task only dies once thawed (runc does the same, #3217).
    if sig == libc::SIGKILL && s == Status::Paused {
        let _ = crate::cgroups::freeze(&st.cgroup_paths, false);
    }
    r
}

fn send(st: &crate::state::ContainerState, id: &str, sig: i32, all: bool) -> Result<()> {
    if all {
        for pid in crate::cgroups::pids(&st.cgroup_paths) {
            unsafe { libc::kill(pid, sig) };
        }
        return Ok(());
    }
    if unsafe { libc::kill(st.pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        // It exited since we looked: that is "gone", not a failure, for the caller too.
        if e.raw_os_error() == Some(libc::ESRCH) {
            bail!("{}", not_running(id));
        }
        bail!("kill container {id}: {e}");
    }
    Ok(())
}

/// runc's words: containerd's shim and podman match "container not running" to tell a
/// container that is gone (nothing to signal) from a kill that failed.
pub(crate) fn not_running(id: &str) -> String {
    format!("container not running: {id} has stopped")
}
