//! Helpers of the cgroup tests (tests/cgroups.rs, cgroup_freezer.rs, cgroup_update.rs,
//! cgroup_procs.rs): the host's hierarchies, a container's cgroup dirs, waits.
#![allow(dead_code)] // each test file uses its own share

use crate::common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MIB: u64 = 1 << 20;

pub fn wait_file(p: &Path) {
    assert!(
        wait_until(Duration::from_secs(20), || p.exists()),
        "{} never appeared",
        p.display()
    );
}

/// One mounted cgroup hierarchy of the host (from /proc/self/mountinfo).
#[derive(Debug, Clone)]
pub struct Hier {
    pub mountpoint: PathBuf,
    /// The cgroup path shown at the mount's root (normally "/").
    pub root: String,
    /// v1 controllers from the super options ("memory", "name=systemd"); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

pub fn hierarchies() -> Vec<Hier> {
    let mut out: Vec<Hier> = Vec::new();
    for l in fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let v2 = post[0] == "cgroup2";
        if post[0] != "cgroup" && !v2 {
            continue;
        }
        let controllers = if v2 {
            vec![]
        } else {
            post.get(2)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr")
                        && !o.starts_with("release_agent=")
                        && !o.starts_with("cpuset_v2_mode")
                })
                .map(String::from)
                .collect()
        };
        let mountpoint = PathBuf::from(pre[4]);
        if out.iter().any(|h| h.mountpoint == mountpoint) {
            continue;
        }
        out.push(Hier {
            mountpoint,
            root: pre[3].to_string(),
            controllers,
            v2,
        });
    }
    out
}

/// The hierarchy of v1 `controller`, or the cgroup2 one for "".
pub fn hier(controller: &str) -> Option<Hier> {
    hierarchies().into_iter().find(|h| {
        if controller.is_empty() {
            h.v2
        } else {
            !h.v2 && h.controllers.iter().any(|c| c == controller)
        }
    })
}

/// False (after printing which controller is missing) unless every v1 controller is mounted.
pub fn have_controllers(test: &str, controllers: &[&str]) -> bool {
    for c in controllers {
        if hier(c).is_none() {
            eprintln!("SKIP: {test}: this host has no cgroup v1 {c:?} controller mounted");
            return false;
        }
    }
    true
}

/// The directory of `pid`'s cgroup in the hierarchy of `controller` ("" for cgroup2),
/// found through /proc/<pid>/cgroup.
#[track_caller]
pub fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let h = hier(controller).unwrap_or_else(|| panic!("no hierarchy for {controller:?}"));
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let hit = if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("{controller:?} not in /proc/{pid}/cgroup: {text}"));
    let rel = path
        .strip_prefix(h.root.as_str())
        .unwrap_or(&path)
        .trim_start_matches('/');
    let d = h.mountpoint.join(rel);
    assert!(d.is_dir(), "{} is not a directory", d.display());
    d
}

/// The one cgroup dir named `id` in the hierarchy of `controller` (works once the init is
/// gone, e.g. after `run --keep`).
#[track_caller]
pub fn id_dir(id: &str, controller: &str) -> PathBuf {
    let h = hier(controller).unwrap();
    let dirs = find_dirs_named(&h.mountpoint, id);
    assert_eq!(
        dirs.len(),
        1,
        "cgroup dirs named {id} under {h:?}: {dirs:?}"
    );
    dirs[0].clone()
}

#[track_caller]
pub fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

pub fn no_pid_ns(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
}

/// `run -d` a bundle; returns (id, init pid).
#[track_caller]
pub fn run_detached(
    t: &Test,
    tag: &str,
    args: &[&str],
    edit: impl FnOnce(&mut Value),
) -> (String, i32) {
    let b = t.bundle(tag, args, edit);
    let id = t.id(tag);
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let pid = t.pid(&id);
    (id, pid)
}

/// The "State:" letter of /proc/<pid>/status.
pub fn proc_state(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|s| s.trim().chars().next().unwrap_or('?').to_string())
        .unwrap_or_default()
}

/// Host pids (with cmdlines) in container `id` whose cmdline is exactly `cmd`.
pub fn pids_running(id: &str, cmd: &str) -> Vec<i32> {
    processes_in_cgroup(id)
        .into_iter()
        .filter(|(_, c)| c.trim() == cmd)
        .map(|(p, _)| p)
        .collect()
}

/// Waits (10 s at most) until container `id` runs `n` processes whose cmdline is `cmd`.
pub fn wait_for_pids(id: &str, cmd: &str, n: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || pids_running(id, cmd).len() == n),
        "container {id} never ran {n} x {cmd:?}: {:?}",
        processes_in_cgroup(id)
    );
}

pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Major:minor of some block device of this host (for blkio throttle rules).
pub fn a_block_device() -> Option<String> {
    let mut devs: Vec<PathBuf> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    devs.sort();
    devs.iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("loop"))
        .chain(devs.iter())
        .find_map(|p| fs::read_to_string(p.join("dev")).ok())
        .map(|s| s.trim().to_string())
}
