//! Cgroup edge cases compared with runc: a frozen cgroup, cpu limits under a limited
//! parent, `ps` with ps options and of a stopped container, one OOM event per kill.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cgroup directory made by the test on the host; thawed, emptied and removed on drop.
struct HostCgroup(PathBuf);

impl HostCgroup {
    /// `<mountpoint>/<name>`, or None (after SKIP) if the hierarchy or `file` is missing.
    fn new(test: &str, mountpoint: &str, name: &str, file: &str) -> Option<HostCgroup> {
        let m = Path::new(mountpoint);
        if !m.join("cgroup.procs").is_file() {
            eprintln!("SKIP: {test}: no cgroup hierarchy at {mountpoint}");
            return None;
        }
        let d = m.join(name);
        fs::create_dir(&d).unwrap();
        let g = HostCgroup(d);
        if !g.0.join(file).exists() {
            eprintln!("SKIP: {test}: {mountpoint} has no {file}");
            return None;
        }
        Some(g)
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
        let _ = fs::write(self.0.join("cgroup.freeze"), "0");
        // A failed test may leave a container (and its cgroup) below: kill it all.
        let all: Vec<PathBuf> = std::iter::once(self.0.clone())
            .chain(find_dirs(&self.0))
            .collect();
        let procs = |d: &PathBuf| fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for d in &all {
            for pid in procs(d).split_whitespace().filter_map(|p| p.parse().ok()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        wait_until(Duration::from_secs(5), || {
            all.iter().all(|d| procs(d).trim().is_empty())
        });
        for d in all[1..].iter().rev() {
            let _ = fs::remove_dir(d);
        }
        let _ = fs::remove_dir(&self.0);
    }
}

fn find_dirs(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
            out.extend(find_dirs(&e.path()));
        }
    }
    out
}

/// runc refuses a frozen cgroup ("container's cgroup unexpectedly frozen"); strata used to
/// hang for ever with its init stuck in the freezer. Refused, naming the cgroup, and
/// nothing left behind: also for a new cgroup under a frozen parent, and on cgroup v2.
#[test]
fn a_frozen_cgroup_is_refused() {
    let Some(t) = Test::new("cg_frozen") else {
        return;
    };
    let name = format!("strata-frozen-{}", std::process::id());
    for (mountpoint, file, frozen) in [
        ("/sys/fs/cgroup/freezer", "freezer.state", "FROZEN"),
        ("/sys/fs/cgroup/unified", "cgroup.freeze", "1"),
        ("/sys/fs/cgroup", "cgroup.freeze", "1"),
    ] {
        let Some(g) = HostCgroup::new("a_frozen_cgroup_is_refused", mountpoint, &name, file) else {
            continue;
        };
        fs::write(g.0.join(file), frozen).unwrap();
        for (tag, path) in [("own", format!("/{name}")), ("child", format!("/{name}/c"))] {
            let id = t.id(tag);
            let b = t.bundle(tag, &["true"], |c| c["linux"]["cgroupsPath"] = json!(path));
            create_fails(&t, &id, &b, &["linux.cgroupsPath", &name, "frozen"]);
            // Nothing made on the other hierarchies, nor below the frozen one.
            assert_eq!(cgroup_dirs_of(&name), vec![g.0.clone()], "{mountpoint}");
            assert!(find_dirs(&g.0).is_empty(), "{mountpoint}: a child was made");
        }
    }
}

/// Under a parent with its own cpu limit, lowering period and quota together is refused
/// by the kernel (EINVAL) if the period goes first while the old quota is in force; runc
/// writes the period again after the quota, so the update goes through.
#[test]
fn cpu_period_and_quota_update_under_a_limited_parent() {
    let Some(t) = Test::new("cg_cpu_parent") else {
        return;
    };
    let name = format!("strata-cpu-parent-{}", std::process::id());
    let Some(parent) = HostCgroup::new(
        "cpu_period_and_quota_update_under_a_limited_parent",
        "/sys/fs/cgroup/cpu",
        &name,
        "cpu.cfs_quota_us",
    ) else {
        return;
    };
    fs::write(parent.0.join("cpu.cfs_period_us"), "100000").unwrap();
    fs::write(parent.0.join("cpu.cfs_quota_us"), "50000").unwrap();
    let b = t.bundle("c", &["sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{name}/c"));
        c["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    });
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let dir = parent.0.join("c");
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    for (period, quota) in [("50000", "25000"), ("100000", "50000"), ("20000", "10000")] {
        t.strata(&["update", "--cpu-period", period, "--cpu-quota", quota, &id])
            .ok();
        assert_eq!(
            (read("cpu.cfs_period_us"), read("cpu.cfs_quota_us")),
            (period.to_string(), quota.to_string())
        );
    }
    t.force_delete(&id);
}

/// runc passes everything after the ID to ps (`runc ps ID -e -x`); a stopped container
/// has an empty table (and `null` as JSON), not an error.
#[test]
fn ps_with_ps_options_and_after_the_container_stopped() {
    let Some(t) = Test::new("cg_ps") else {
        return;
    };
    let (id, pid) = t.run_detached("c", "sleep 1000 & exec sleep 1000", |_| {});
    let out = t.strata(&["ps", &id, "-e", "-x"]);
    out.ok();
    let lines = out.lines();
    assert!(lines[0].contains("PID"), "{out:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{out:#?}"
    );
    let out = t.strata(&["ps", &id, "--", "-o", "pid,comm"]);
    out.ok();
    assert_eq!(
        out.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    let out = t.strata(&["ps", "--format", "json", &id]);
    out.ok();
    let pids: Vec<i32> = serde_json::from_str(&out.stdout).unwrap();
    assert!(pids.contains(&pid), "{out:#?}");

    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    let out = t.strata(&["ps", &id]);
    out.ok();
    assert_eq!(out.lines().len(), 1, "only the header: {out:#?}");
    let out = t.strata(&["ps", "-f", "json", &id]);
    out.ok();
    assert_eq!(out.stdout.trim(), "null");
    t.force_delete(&id);
}

/// One `oom` event per OOM kill, as runc's notifier sends one per OOM: three hogs killed
/// at once are three events, not one.
#[test]
fn events_reports_every_oom_kill() {
    let Some(t) = Test::new("cg_oom_events") else {
        return;
    };
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").is_file() {
        eprintln!("SKIP: events_reports_every_oom_kill: no cgroup v1 memory hierarchy");
        return;
    }
    let hog = r#"awk 'BEGIN{s=sprintf("%100000000s","")}'"#;
    let script = format!("sleep 1; {hog} & {hog} & {hog} & wait; exec sleep 1000");
    let b = t.bundle("c", &["sh", "-c", &script], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20});
    });
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let stream = Running::spawn(&mut t.command(&["events", "--interval", "100s", &id]));
    let kills = || -> u64 {
        let d = cgroup_dirs_of(&id)
            .into_iter()
            .find(|d| d.join("memory.oom_control").exists())
            .expect("the container's memory cgroup");
        fs::read_to_string(d.join("memory.oom_control"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(20), || kills() >= 3),
        "the hogs were not OOM-killed"
    );
    let n = kills();
    std::thread::sleep(Duration::from_millis(500));
    t.force_delete(&id);
    let out = stream.wait(Duration::from_secs(5));
    let ooms = out
        .stdout
        .lines()
        .filter(|l| {
            let e: Value = serde_json::from_str(l).expect("one JSON event per line");
            e["type"] == "oom" && e["id"] == id.as_str()
        })
        .count() as u64;
    assert_eq!(ooms, n, "one oom event per kill: {}", out.stdout);
    assert!(
        out.stdout.lines().all(|l| !l.starts_with(r#"{"id""#)),
        "runc's field order (type first): {}",
        out.stdout
    );
}
