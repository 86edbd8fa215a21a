//! `delete`: remove a stopped (or, with --force, any) container and all it left on the host.

use anyhow::{bail, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::status::{alive, status, Status};
use crate::hooks::{self, Kind};
use crate::state::{ContainerState, StateDir};

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    // runc: `delete --force` of a container that is already gone succeeds, which keeps
    // callers such as containerd's shim idempotent. Decided after taking the lock, so
    // a racing delete that wins makes the others succeed too.
    crate::state::validate_id(id)?;
    if crate::state::remove_half_made(root, id)? {
        return Ok(());
    }
    let sd = match StateDir::open(root, id) {
        Ok(sd) => sd,
        Err(_)
            if force
                && crate::state::validate_id(id).is_ok()
                && !crate::state::exists(root, id) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Stopped => {}
        // A created container never ran user code; runc deletes it without --force.
        Status::Created => kill_all(&st),
        s if force => {
            if s == Status::Paused {
                thaw(&st);
            }
            kill_all(&st)
        }
        s => bail!("cannot delete container {id} that is {s}: stop it first or use --force"),
    }
    wait_gone(&st)?;
    destroy(sd, &st)
}

/// Remove cgroups and state of a container whose processes are gone.
pub fn destroy(sd: StateDir, st: &ContainerState) -> Result<()> {
    if !st.own_pid_ns && !st.shared_cgroup {
        // Without its own pid namespace, children may outlive the init: reap the cgroup
        // (unless others' processes share it).
        for pid in crate::cgroups::pids(&st.cgroup_paths) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let root = sd.dir.parent().unwrap_or(&sd.dir).to_path_buf();
    crate::cgroups::remove(&st.cgroup_dirs, &st.cgroup_paths, &root);
    if let Some(below) = st.rootfs_mount_below {
        crate::rootfs::detach_host_mounts(&st.rootfs, below);
    }
    sd.remove()?;
    let poststop = hooks::of(st.hooks.as_ref(), Kind::Poststop);
    hooks::run_warn(Kind::Poststop, poststop, &hooks::State::new(st, st.pid));
    Ok(())
}

fn kill_all(st: &ContainerState) {
    unsafe { libc::kill(st.pid, libc::SIGKILL) };
    if !st.own_pid_ns && !st.shared_cgroup {
        for pid in crate::cgroups::pids(&st.cgroup_paths) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn thaw(st: &ContainerState) {
    for p in &st.cgroup_paths {
        let _ = std::fs::write(p.join("freezer.state"), "THAWED");
        let _ = std::fs::write(p.join("cgroup.freeze"), "0");
    }
}

fn wait_gone(st: &ContainerState) -> Result<()> {
    // Opened before the check, the pidfd is the process the check saw (never a reused
    // pid): poll it rather than sleep in steps, as a SIGKILLed init is gone within
    // microseconds (`delete --force` right after `start` meets a running one).
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) } as i32;
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let t0 = Instant::now();
    while alive(st.pid, st.pid_start) {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("container {} init (pid {}) did not die", st.id, st.pid);
        }
        match &pidfd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                unsafe { libc::poll(&mut p, 1, 100) };
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    Ok(())
}
