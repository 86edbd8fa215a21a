//! The newer runtime-spec corners and runc's error contracts (issue 16): execCPUAffinity,
//! kill/delete/state of missing or stopped containers, ociVersion, hooks that fail or run
//! in the container, rootfsPropagation on a shared mount, a time namespace in a user
//! namespace, fds, hugetlb on a hybrid host.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Our own `Cpus_allowed_list`, which a container process should get back whatever
/// affinity strata itself was started with (runc 1.2).
fn own_cpus() -> String {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    proc_status_field(&s, "Cpus_allowed_list").to_string()
}

#[test]
fn exec_cpu_affinity_initial_and_final() {
    let Some(t) = Test::new("affinity") else {
        return;
    };
    if own_cpus() != "0-1" && !own_cpus().starts_with("0-") {
        eprintln!(
            "SKIP: exec_cpu_affinity: needs CPUs 0 and 1 (we may run on {})",
            own_cpus()
        );
        return;
    }
    let all = own_cpus();
    let b = t.bundle("b", &["sleep", "1000"], |c| {
        c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    });
    let id = t.id("c");
    // Started pinned to CPU 0: the init gets every CPU back (execCPUAffinity is not its).
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", STRATA, "--root"]).arg(&t.root).args([
        "run",
        "-d",
        &id,
        "-b",
        b.to_str().unwrap(),
    ]);
    run_cmd(&mut cmd, TIMEOUT).ok();
    let status = fs::read_to_string(format!("/proc/{}/status", t.pid(&id))).unwrap();
    assert_eq!(proc_status_field(&status, "Cpus_allowed_list"), all);

    // exec of the config's process: its `final`.
    let grep = ["grep", "Cpus_allowed_list", "/proc/self/status"];
    let out = t.strata(&[&["exec", &id][..], &grep].concat());
    assert_eq!(out.ok().stdout.trim(), "Cpus_allowed_list:\t1");

    // --process: `initial` while it joins (the debug log reads it back from the kernel),
    // then, without `final`, every CPU again, not the initial ones nor strata's own.
    let p = t.dir.join("p.json");
    let write = |aff: serde_json::Value| {
        let proc_ = json!({"args": grep, "cwd": "/", "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": aff});
        fs::write(&p, proc_.to_string()).unwrap();
    };
    write(json!({"initial": "1"}));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", STRATA, "--root"]).arg(&t.root).args([
        "--debug",
        "exec",
        "--process",
        p.to_str().unwrap(),
        &id,
    ]);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(out.stdout.trim(), format!("Cpus_allowed_list:\t{all}"));
    assert!(
        out.stderr.contains(r#"msg="exec: initial CPU affinity""#)
            && out.stderr.contains(r#"cpus="1""#),
        "{out:#?}"
    );
    write(json!({"initial": "0-1", "final": "0"}));
    let out = t.strata(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_eq!(out.ok().stdout.trim(), "Cpus_allowed_list:\t0");

    // CPUs that cannot be had, and lists that are not lists.
    write(json!({"final": "1023"}));
    t.strata(&["exec", "--process", p.to_str().unwrap(), &id])
        .assert_exec_error(&["process.execCPUAffinity.final \"1023\"", "online"]);
    write(json!({"initial": "1-0"}));
    t.strata(&["exec", "--process", p.to_str().unwrap(), &id])
        .assert_exec_error(&["process.execCPUAffinity.initial \"1-0\"", "backwards"]);
    t.force_delete(&id);
    let b = t.bundle("bad", &["true"], |c| {
        c["process"]["execCPUAffinity"] = json!({"final": "2-1"});
    });
    create_fails(
        &t,
        &t.id("bad"),
        &b,
        &["process.execCPUAffinity.final \"2-1\""],
    );
}

#[test]
fn kill_delete_state_errors_are_runcs() {
    let Some(t) = Test::new("errs") else {
        return;
    };
    // A container that does not exist: "does not exist" (containerd and podman match it).
    for cmd in [
        &["kill", "nope"][..],
        &["kill", "nope", "0"],
        &["delete", "nope"],
        &["state", "nope"],
    ] {
        t.strata(cmd).assert_error(&["does not exist"]);
    }
    for cmd in [&["kill", ""][..], &["delete", ""], &["state", ""]] {
        t.strata(cmd)
            .assert_error(&["container id cannot be empty"]);
    }
    // Stopped: state answers, kill says runc's "container not running" (containerd's
    // shim reads that as "already gone"), kill --all still reaches the cgroup, delete
    // works, and then it does not exist.
    let b = t.bundle("b", &["true"], |_| {});
    let id = t.id("s");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    t.strata(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    for sig in ["KILL", "0", "TERM"] {
        t.strata(&["kill", &id, sig])
            .assert_error(&["container not running", &id]);
    }
    t.strata(&["kill", "--all", &id, "KILL"]).ok();
    t.strata(&["delete", &id]).ok();
    t.strata(&["delete", &id]).assert_error(&["does not exist"]);
    t.assert_no_leftovers(&id);

    // Running: signal 0 checks it; a signal the process ignores is still delivered (the
    // init of a pid namespace ignores TERM without a handler), as runc reports it.
    let (id, pid) = t.run_detached("r", "exec sleep 1000", |_| {});
    t.strata(&["kill", &id, "0"]).ok();
    t.strata(&["kill", &id, "TERM"]).ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(process_alive(pid));
    assert_eq!(t.status(&id), "running");
    t.force_delete(&id);
}

#[test]
fn oci_version_must_be_semver_of_a_known_major() {
    let Some(t) = Test::new("ociver") else {
        return;
    };
    for (i, v) in ["bogus", "1.2", "", "v1.0.0", "01.0.0", "2.0.0", "0.5.0"]
        .iter()
        .enumerate()
    {
        let b = t.bundle(&format!("b{i}"), &["true"], |c| c["ociVersion"] = json!(v));
        create_fails(
            &t,
            &t.id(&format!("c{i}")),
            &b,
            &["ociVersion", &format!("{v:?}")],
        );
    }
    for (i, v) in ["1.0.0", "1.2.1-rc.1+dev"].iter().enumerate() {
        let b = t.bundle(&format!("ok{i}"), &["true"], |c| c["ociVersion"] = json!(v));
        let id = t.id(&format!("ok{i}"));
        t.strata(&["run", &id, "-b", b.to_str().unwrap()]).ok();
        t.assert_no_leftovers(&id);
    }
}

#[test]
fn failing_poststart_keeps_the_container_and_failing_poststop_lets_delete_finish() {
    let Some(t) = Test::new("postwarn") else {
        return;
    };
    let bad = script(&t.dir, "bad.sh", "echo \"$1 broke\" >&2; exit 3");
    let b = t.bundle("b", &["sleep", "1000"], |c| {
        c["hooks"] = json!({
            "poststart": [{"path": bad, "args": ["bad", "poststart"]}],
            "poststop": [{"path": bad, "args": ["bad", "poststop"]}],
        });
    });
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let out = t.strata(&["start", &id]);
    out.ok();
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("poststart broke"),
        "{out:#?}"
    );
    assert_eq!(t.status(&id), "running");
    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    let out = t.strata(&["delete", &id]);
    out.ok();
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("poststop broke"),
        "{out:#?}"
    );
    t.assert_no_leftovers(&id);
}

#[test]
fn container_hooks_without_env_get_the_process_environment() {
    let Some(t) = Test::new("hookenv") else {
        return;
    };
    let hk = t.mkdir("hk");
    // Each hook appends its kind and sorted environment (host path for createContainer,
    // which runs before pivot_root; /hk for startContainer).
    let body = format!(
        "L=/hk/log; [ -d /hk ] || L={}/log; {{ echo \"== $1\"; env | grep -E '^(FOO|X|PATH)=' | sort; }} >> $L",
        hk.display()
    );
    let rec = script(&hk, "rec.sh", &body);
    let b = t.bundle("b", &["true"], |c| {
        bind_mount(c, &hk, "/hk", false);
        c["process"]["env"] = json!(["PATH=/bin:/sbin", "FOO=container"]);
        c["hooks"] = json!({
            "createContainer": [{"path": rec, "args": ["rec", "createContainer"]}],
            "startContainer": [
                {"path": "/hk/rec.sh", "args": ["rec", "startContainer"]},
                {"path": "/hk/rec.sh", "args": ["rec", "own"], "env": ["X=1"]},
            ],
        });
    });
    let id = t.id("c");
    t.strata(&["run", &id, "-b", b.to_str().unwrap()]).ok();
    t.assert_no_leftovers(&id);
    let log = fs::read_to_string(hk.join("log")).unwrap();
    assert_eq!(
        log,
        "== createContainer\nFOO=container\nPATH=/bin:/sbin\n\
         == startContainer\nFOO=container\nPATH=/bin:/sbin\n\
         == own\nPATH=/sbin:/usr/sbin:/bin:/usr/bin\nX=1\n",
        "busybox sh sets its own PATH when it has none"
    );
}

/// Which of the fds 7 and 8 (open in every strata command below) a hook or process has.
const FDS: &str = "ls /proc/self/fd | grep -xE '7|8' | tr '\\n' ' '";

#[test]
fn only_stdio_reaches_hooks_and_processes_whatever_strata_inherited() {
    let Some(t) = Test::new("fds") else {
        return;
    };
    let hk = t.mkdir("hk");
    let body = format!(
        "L=/hk/log; [ -d /hk ] || L={}/log; echo \"$1: $({FDS})\" >> $L",
        hk.display()
    );
    let rec = script(&hk, "rec.sh", &body);
    let host = |k: &str| json!([{"path": rec, "args": ["rec", k]}]);
    let b = t.bundle(
        "b",
        &[
            "sh",
            "-c",
            &format!("echo \"init: $({FDS})\" >> /hk/log; exec sleep 1000"),
        ],
        |c| {
            bind_mount(c, &hk, "/hk", false);
            c["hooks"] = json!({
                "prestart": host("prestart"), "createRuntime": host("createRuntime"),
                "createContainer": host("createContainer"),
                "startContainer": [{"path": "/hk/rec.sh", "args": ["rec", "startContainer"]}],
                "poststart": host("poststart"), "poststop": host("poststop"),
            });
        },
    );
    // Every command runs with fds 7 and 8 open and inheritable, as a careless caller
    // (or a shell's redirection) would leave them.
    let held = fs::File::open("/dev/null").unwrap();
    let with_fds = |args: &[&str]| {
        use std::os::fd::AsRawFd;
        let mut c = t.command(args);
        pass_fds(&mut c, &[(held.as_raw_fd(), 7), (held.as_raw_fd(), 8)]);
        run_cmd(&mut c, TIMEOUT)
    };
    let id = t.id("c");
    with_fds(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    with_fds(&["start", &id]).ok();
    assert!(wait_until(Duration::from_secs(20), || fs::read_to_string(
        hk.join("log")
    )
    .is_ok_and(|l| l.contains("init:"))));
    let exec = format!("echo \"exec: $({FDS})\" >> /hk/log");
    with_fds(&["exec", &id, "sh", "-c", &exec]).ok();
    with_fds(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
    let mut lines: Vec<String> = fs::read_to_string(hk.join("log"))
        .unwrap()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    lines.sort();
    let want = [
        "createContainer:",
        "createRuntime:",
        "exec:",
        "init:",
        "poststart:",
        "poststop:",
        "prestart:",
        "startContainer:",
    ];
    assert_eq!(lines, want);
}

/// The propagation fields of the container's `/` (`shared:N`, `master:N`, `unbindable`).
fn root_propagation(t: &Test, tag: &str, rootfs: &Path, value: &str, host_before: usize) {
    let b = t.bundle(
        tag,
        &["sh", "-c", "grep ' / / ' /proc/self/mountinfo; sleep 1000"],
        |c| {
            set_root(c, rootfs);
            c["linux"]["rootfsPropagation"] = json!(value);
        },
    );
    let id = t.id(tag);
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    // Nothing of the container reached the host's mount table through the shared mount.
    assert_eq!(
        host_mount_points().len(),
        host_before,
        "{value}: mounts leaked to the host"
    );
    let mi = fs::read_to_string(format!("/proc/{}/mountinfo", t.pid(&id))).unwrap();
    let line = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mi}"));
    let fields: Vec<&str> = line.split(' ').skip(6).take_while(|f| *f != "-").collect();
    let has = |p: &str| fields.iter().any(|f| f.starts_with(p));
    match value {
        "shared" | "rshared" => assert!(has("shared:"), "{value}: {line}"),
        "slave" | "rslave" => assert!(has("master:") && !has("shared:"), "{value}: {line}"),
        "private" | "rprivate" => assert!(fields.is_empty(), "{value}: {line}"),
        "unbindable" | "runbindable" => assert!(has("unbindable"), "{value}: {line}"),
        _ => unreachable!(),
    }
    t.force_delete(&id);
    assert_eq!(
        host_mount_points().len(),
        host_before,
        "{value}: left mounts behind"
    );
}

#[test]
fn root_propagation_on_a_rootfs_under_a_shared_mount() {
    let Some(t) = Test::new("rprop") else {
        return;
    };
    // The rootfs on a shared tmpfs, as on a systemd host (/ is shared there).
    let shared = t.mkdir("shared");
    let ok = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let s = shared.to_str().unwrap();
    ok(&["mount", "-t", "tmpfs", "tmpfs", s]);
    ok(&["mount", "--make-shared", s]);
    // Also when an assertion fails: a leak through the shared mount stays on the host.
    let _unmount = Unmount(s.to_string());
    ok(&[
        "cp",
        "-a",
        test_rootfs().to_str().unwrap(),
        &format!("{s}/rootfs"),
    ]);
    let rootfs = shared.join("rootfs");
    let before = host_mount_points().len();
    for (i, v) in [
        "unbindable",
        "private",
        "slave",
        "shared",
        "runbindable",
        "rslave",
    ]
    .iter()
    .enumerate()
    {
        root_propagation(&t, &format!("p{i}"), &rootfs, v, before);
    }
}

struct Unmount(String);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-R", &self.0]).status();
    }
}

#[test]
fn time_offsets_in_a_user_namespace() {
    let Some(t) = Test::new("timens-userns") else {
        return;
    };
    if fs::read_link("/proc/self/ns/time").is_err() {
        eprintln!("SKIP: time_offsets_in_a_user_namespace: no time namespaces (Linux 5.6, CONFIG_TIME_NS)");
        return;
    }
    let up = |s: &str| -> f64 { s.split(' ').next().unwrap().parse().unwrap() };
    let before = up(&fs::read_to_string("/proc/uptime").unwrap());
    // Mapped away from the host's root: the init's own /proc files (it is not dumpable)
    // then belong to a user the container's root is not.
    let out = t.sh("c", "cat /proc/uptime; cat /proc/self/uid_map", |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        ns.push(json!({"type": "time"}));
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0}});
    });
    let lines: Vec<&str> = out.lines().collect();
    assert!(up(lines[0]) > before + 86000.0, "{out}");
    assert!(
        lines[1].split_whitespace().eq(["0", "100000", "65536"]),
        "{out}"
    );
}

#[test]
fn symlinked_proc_and_sys_are_refused_in_runcs_words() {
    let Some(t) = Test::new("linkproc") else {
        return;
    };
    for name in ["proc", "sys"] {
        let rootfs = t.rootfs_copy(&format!("rootfs-{name}"));
        fs::remove_dir(rootfs.join(name)).unwrap();
        symlink("/etc", rootfs.join(name)).unwrap();
        let b = t.bundle(name, &["true"], |c| set_root(c, &rootfs));
        let id = t.id(name);
        t.strata(&["run", &id, "-b", b.to_str().unwrap()])
            .assert_error(&[
                &format!("/{name} must be mounted on ordinary directory"),
                "symlink",
            ]);
        t.assert_no_leftovers(&id);
    }
}

#[test]
fn hugetlb_limits_on_a_hybrid_host_go_to_cgroup2() {
    let Some(t) = Test::new("hugetlb") else {
        return;
    };
    let v1 = Path::new("/sys/fs/cgroup/hugetlb").exists();
    let unified =
        fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    if v1 || !unified.split_whitespace().any(|c| c == "hugetlb") {
        eprintln!("SKIP: hugetlb_limits_on_a_hybrid_host: needs hugetlb only on the hybrid cgroup2 hierarchy");
        return;
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        eprintln!("SKIP: hugetlb_limits_on_a_hybrid_host: no 2MB huge pages");
        return;
    }
    // runc 1.1.5 fails here ("cannot set hugetlb limit: container could not join or
    // create cgroup"); the limit belongs on the hierarchy that has the controller.
    let (id, _) = t.run_detached("c", "exec sleep 1000", |c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    });
    let cg = fs::read_to_string(format!("/proc/{}/cgroup", t.pid(&id))).unwrap();
    let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let max = format!("/sys/fs/cgroup/unified{path}/hugetlb.2MB.max");
    assert_eq!(fs::read_to_string(&max).unwrap().trim(), "4194304", "{max}");
    t.force_delete(&id);
}
