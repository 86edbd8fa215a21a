//! Process attributes (ioPriority, scheduler, personality, memoryPolicy), time namespaces
//! and offsets, LSM labels and intelRdt on a host without them, and `strata features`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

/// `create` then `start` a container running `sleep 600`; returns its id and pid once the
/// pid is really running sleep (past execve).
fn start_sleeper(t: &Test, tag: &str, edit: impl FnOnce(&mut Value)) -> (String, i32) {
    let b = t.bundle(tag, &["sleep", "600"], edit);
    let id = t.id(tag);
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    t.strata(&["start", &id]).ok();
    let pid = t.pid(&id);
    let execd = wait_until(Duration::from_secs(20), || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert!(execd, "container {id} (pid {pid}) never ran sleep");
    (id, pid)
}

fn remove(t: &Test, id: &str) {
    t.strata(&["delete", "--force", id]).ok();
    t.assert_no_leftovers(id);
}

/// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat.
fn stat_field(pid: i32, n: usize) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = s.rsplit_once(") ").unwrap().1;
    rest.split(' ').nth(n - 3).unwrap().to_string()
}

fn add_time_ns(cfg: &mut Value, path: Option<String>) {
    let ns = match path {
        Some(p) => json!({"type": "time", "path": p}),
        None => json!({"type": "time"}),
    };
    cfg["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

fn host_uptime() -> f64 {
    let s = fs::read_to_string("/proc/uptime").unwrap();
    s.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn io_priority_scheduler_personality_mempolicy_reach_the_program() {
    let Some(t) = Test::new("attrs") else {
        return;
    };
    let (id, pid) = start_sleeper(&t, "all", |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    // IOPRIO_WHO_PROCESS; IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE = 2, 6).
    let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) };
    assert_eq!(io, 2 << 13 | 6, "ioprio of {pid}");
    assert_eq!(unsafe { libc::sched_getscheduler(pid) }, libc::SCHED_BATCH);
    assert_eq!(stat_field(pid, 19), "5", "nice of {pid}");
    let per = fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(u64::from_str_radix(per.trim(), 16).unwrap(), 0x0008);
    let numa = fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    assert!(numa.contains(" bind:0 "), "numa_maps of {pid}:\n{numa}");
    remove(&t, &id);
}

#[test]
fn realtime_scheduler_with_reset_on_fork() {
    let Some(t) = Test::new("attrs-rt") else {
        return;
    };
    let (id, pid) = start_sleeper(&t, "rr", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_RR", "priority": 7,
            "flags": ["SCHED_RESET_ON_FORK"]});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE"});
        // With CONFIG_RT_GROUP_SCHED (v1 cpu controller) a new cgroup has no RT budget.
        if std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
            c["linux"]["resources"]["cpu"] =
                json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
        }
    });
    const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
    assert_eq!(
        unsafe { libc::sched_getscheduler(pid) },
        libc::SCHED_RR | SCHED_RESET_ON_FORK
    );
    let mut p = libc::sched_param { sched_priority: 0 };
    assert_eq!(unsafe { libc::sched_getparam(pid, &mut p) }, 0);
    assert_eq!(p.sched_priority, 7);
    assert_eq!(
        unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) },
        3 << 13
    );
    // The default personality is plain LINUX.
    let per = fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(u64::from_str_radix(per.trim(), 16).unwrap(), 0);
    remove(&t, &id);
}

#[test]
fn time_namespace_with_offsets() {
    let Some(t) = Test::new("timens") else {
        return;
    };
    let Ok(host_ns) = fs::read_link("/proc/self/ns/time") else {
        eprintln!("SKIP: time_namespace_with_offsets: this kernel has no time namespaces (Linux 5.6, CONFIG_TIME_NS)");
        return;
    };
    let before = host_uptime();
    let out = t.sh(
        "new",
        "cat /proc/uptime; readlink /proc/self/ns/time",
        |c| {
            add_time_ns(c, None);
            c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0},
                "monotonic": {"secs": 3600, "nanosecs": 5}});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    let up: f64 = lines[0].split(' ').next().unwrap().parse().unwrap();
    assert!(up > before + 86000.0, "uptime {up} vs host {before}");
    assert_ne!(lines[1], host_ns.to_str().unwrap(), "time ns not new");
    assert!(lines[1].starts_with("time:["), "{out}");

    // A new time namespace without offsets: its own ns, the host's clocks.
    let out = t.sh(
        "plain",
        "readlink /proc/self/ns/time; cat /proc/uptime",
        |c| add_time_ns(c, None),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], host_ns.to_str().unwrap());
    let up: f64 = lines[1].split(' ').next().unwrap().parse().unwrap();
    assert!(up < before + 86000.0, "uptime {up} vs host {before}");

    // Joining a container's time namespace by path gets its offsets.
    let (id, pid) = start_sleeper(&t, "owner", |c| {
        add_time_ns(c, None);
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 200000}});
    });
    let theirs = fs::read_link(format!("/proc/{pid}/ns/time")).unwrap();
    let out = t.sh(
        "joiner",
        "readlink /proc/self/ns/time; cat /proc/uptime",
        |c| add_time_ns(c, Some(format!("/proc/{pid}/ns/time"))),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], theirs.to_str().unwrap());
    let up: f64 = lines[1].split(' ').next().unwrap().parse().unwrap();
    assert!(up > before + 199000.0, "uptime {up} vs host {before}");
    remove(&t, &id);
}

#[test]
fn bad_values_fail_create_naming_the_field() {
    let Some(t) = Test::new("attrs-bad") else {
        return;
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    let mut cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "ioclass",
            Box::new(|c| c["process"]["ioPriority"] = json!({"class": "X", "priority": 1})),
            vec!["process.ioPriority.class", "X"],
        ),
        (
            "iolevel",
            Box::new(|c| {
                c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9})
            }),
            vec!["process.ioPriority.priority 9"],
        ),
        (
            "schedprio",
            Box::new(|c| {
                c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "priority": 5})
            }),
            vec!["process.scheduler.priority 5", "SCHED_OTHER"],
        ),
        (
            "schednice",
            Box::new(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 30})),
            vec!["process.scheduler.nice 30"],
        ),
        (
            "scheddl",
            Box::new(|c| {
                c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 1,
                    "runtime": 1000})
            }),
            vec!["process.scheduler", "SCHED_DEADLINE"],
        ),
        (
            "schedpolicy",
            Box::new(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_NOPE"})),
            vec!["process.scheduler.policy", "SCHED_NOPE"],
        ),
        (
            "offsets",
            Box::new(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}})),
            vec!["linux.timeOffsets", "time namespace"],
        ),
        (
            "offsetsjoin",
            Box::new(|c| {
                add_time_ns(c, Some("/proc/self/ns/time".into()));
                c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
            }),
            vec!["linux.timeOffsets", "time namespace"],
        ),
        (
            "clock",
            Box::new(|c| {
                add_time_ns(c, None);
                c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
            }),
            vec!["linux.timeOffsets", "realtime"],
        ),
        (
            "perflags",
            Box::new(|c| {
                c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["SHORT_INODE"]})
            }),
            vec!["linux.personality.flags"],
        ),
        (
            "mpolnodes",
            Box::new(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"})),
            vec!["linux.memoryPolicy.nodes", "MPOL_BIND"],
        ),
        (
            "mpolmode",
            Box::new(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_NOPE"})),
            vec!["linux.memoryPolicy.mode", "MPOL_NOPE"],
        ),
        (
            "rdt",
            Box::new(|c| {
                c["linux"]["intelRdt"] = json!({"closID": "x", "l3CacheSchema": "L3:0=f"})
            }),
            vec!["linux.intelRdt"],
        ),
    ];
    if !std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists() {
        cases.push((
            "apparmor",
            Box::new(|c| c["process"]["apparmorProfile"] = json!("x")),
            vec!["process.apparmorProfile \"x\"", "AppArmor is not enabled"],
        ));
    }
    let selinux = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" selinuxfs ");
    if !selinux {
        cases.push((
            "selinux",
            Box::new(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")),
            vec!["process.selinuxLabel", "SELinux is not enabled"],
        ));
        cases.push((
            "mountlabel",
            Box::new(|c| c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0")),
            vec!["linux.mountLabel", "SELinux is not enabled"],
        ));
    }
    for (tag, edit, needles) in &cases {
        let b = t.bundle(tag, &["true"], |c| edit(c));
        create_fails(&t, &t.id(tag), &b, needles);
    }
}

#[test]
fn features_lists_what_strata_does() {
    let out = run_cmd(std::process::Command::new(STRATA).arg("features"), TIMEOUT);
    out.ok();
    let f: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}): {out:#?}"));
    let has = |v: &Value, s: &str| v.as_array().unwrap().iter().any(|x| x == s);
    assert_eq!(f["ociVersionMin"], "1.0.0");
    for o in ["bind", "rbind", "ro", "rro", "rprivate", "nosymfollow"] {
        assert!(has(&f["mountOptions"], o), "{o}: {}", f["mountOptions"]);
    }
    assert!(!has(&f["mountOptions"], "mode=755"));
    for ns in ["pid", "network", "ipc", "uts", "mount", "cgroup", "time"] {
        assert!(has(&f["linux"]["namespaces"], ns), "{ns}");
    }
    assert!(has(&f["linux"]["capabilities"], "CAP_SYS_ADMIN"));
    assert!(has(&f["linux"]["capabilities"], "CAP_CHOWN"));
    assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(has(&f["linux"]["seccomp"]["actions"], "SCMP_ACT_NOTIFY"));
    // mount_setattr came with Linux 5.12.
    assert_eq!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"],
        kernel_at_least(5, 12)
    );
    assert!(has(&f["mountOptions"], "ridmap"));
    let aa = std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists();
    if !aa {
        assert_eq!(f["linux"]["apparmor"]["enabled"], false);
    }
    assert_eq!(f["linux"]["intelRdt"]["enabled"], false);
    assert_eq!(
        f["annotations"]["io.github.strata.version"],
        env!("CARGO_PKG_VERSION")
    );
}
