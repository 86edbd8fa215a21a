//! A container's status, read from the kernel: is its init alive (same pid *and* same
//! start time), still waiting on the exec fifo, or frozen?

use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::state::{ContainerState, StateDir};

/// OCI status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// (state char, start time in clock ticks) of a live process, from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and ')': fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let state = f.first()?.chars().next()?;
    let start = f.get(19)?.parse().ok()?;
    Some((state, start))
}

/// True while the process with this pid and start time exists and is not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((s, t)) if t == start && s != 'Z' && s != 'X')
}

/// The status as the kernel sees it now.
pub fn status(st: &ContainerState, sd: &StateDir) -> Status {
    if !alive(st.pid, st.pid_start) {
        Status::Stopped
    } else if crate::cgroups::is_frozen(&st.cgroup_paths) {
        // Before the fifo check: a paused created container is paused (as in runc), so
        // that resume and delete --force know to thaw it.
        Status::Paused
    } else if sd.fifo_path().exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The state JSON `strata state` prints (OCI fields plus runc's rootfs/created/owner).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

pub fn oci_state(st: &ContainerState, s: Status) -> OciState {
    OciState {
        oci_version: st.oci_version.clone(),
        id: st.id.clone(),
        pid: if s == Status::Stopped { 0 } else { st.pid },
        status: s.to_string(),
        bundle: st.bundle.clone(),
        rootfs: st.rootfs.clone(),
        created: st.created.clone(),
        owner: st.owner.clone(),
        annotations: st.annotations.clone(),
    }
}
