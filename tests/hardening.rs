//! Regression tests for hardening fixes: unenforced fields, host namespaces, fds, paths, signals, cgroups, killed creates.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn drop_ns(c: &mut Value, ty: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != ty)
}

fn set_ns_path(c: &mut Value, ty: &str, path: &str) {
    drop_ns(c, ty);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": ty, "path": path}));
}

fn drop_proc_mount(c: &mut Value) {
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
}

/// Writes `value` back to a host file on drop if it was changed (a failing test must not
/// leave the host altered).
struct Restore {
    path: &'static str,
    value: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if fs::read_to_string(self.path).ok().as_deref() != Some(self.value.as_str()) {
            let _ = fs::write(self.path, self.value.trim_end());
        }
    }
}

/// Mark every fd >= 3 close-on-exec in the child, so the spawned strata has only 0-2 open
/// (whatever the test harness inherited). Registered first, so later pre_exec hooks
/// (pass_fds) can still hand over chosen fds.
fn only_stdio(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                for fd in 3..4096 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// 1. Empty security fields

#[test]
fn empty_security_labels_mean_none() {
    let Some(t) = Test::new("unenforced") else {
        return;
    };
    // Requested labels on a host without the LSM, and intelRdt: tests/attrs.rs.
    // Empty labels and profiles mean "none" (containerd sends them) and still run.
    let out = t.run("empty", &["true"], |c| {
        c["process"]["apparmorProfile"] = json!("");
        c["process"]["selinuxLabel"] = json!("");
        c["linux"]["mountLabel"] = json!("");
    });
    out.ok();
}

// ---------------------------------------------------------------------------------------
// 2. The host's own namespaces, joined by path, are not the container's own

#[test]
fn host_netns_by_path_refuses_sysctl() {
    let Some(t) = Test::new("host_netns") else {
        return;
    };
    const RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
    let before = fs::read_to_string(RANGE).unwrap();
    let _restore = Restore {
        path: RANGE,
        value: before.clone(),
    };
    let b = t.bundle("b", &["true"], |c| {
        set_ns_path(c, "network", "/proc/self/ns/net");
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_local_port_range": "40000 40001"});
    });
    create_fails(
        &t,
        &t.id("c"),
        &b,
        &["linux.sysctl", "net.ipv4.ip_local_port_range"],
    );
    assert_eq!(
        fs::read_to_string(RANGE).unwrap(),
        before,
        "host {RANGE} changed"
    );
    // Without the sysctl, joining the host netns by path is allowed and is the host's.
    let host_net = fs::read_link("/proc/self/ns/net").unwrap();
    let out = t.run("plain", &["readlink", "/proc/self/ns/net"], |c| {
        set_ns_path(c, "network", "/proc/self/ns/net")
    });
    out.ok();
    assert_eq!(out.stdout.trim(), host_net.to_str().unwrap());
}

#[test]
fn host_utsns_by_path_refuses_hostname() {
    let Some(t) = Test::new("host_utsns") else {
        return;
    };
    const HOSTNAME: &str = "/proc/sys/kernel/hostname";
    let before = fs::read_to_string(HOSTNAME).unwrap();
    let _restore = Restore {
        path: HOSTNAME,
        value: before.clone(),
    };
    let b = t.bundle("b", &["true"], |c| {
        set_ns_path(c, "uts", "/proc/self/ns/uts");
        c["hostname"] = json!("strata-hardening-should-not-be-set");
    });
    create_fails(&t, &t.id("c"), &b, &["hostname", "uts"]);
    assert_eq!(
        fs::read_to_string(HOSTNAME).unwrap(),
        before,
        "host hostname changed"
    );
    // A uts sysctl through the host's uts namespace is refused the same way.
    let b = t.bundle("sysctl", &["true"], |c| {
        set_ns_path(c, "uts", "/proc/self/ns/uts");
        c["hostname"] = json!("");
        c["linux"]["sysctl"] = json!({"kernel.domainname": "strata-hardening-bad"});
    });
    create_fails(
        &t,
        &t.id("sysctl"),
        &b,
        &["linux.sysctl", "kernel.domainname"],
    );
    assert_eq!(
        fs::read_to_string(HOSTNAME).unwrap(),
        before,
        "host hostname changed"
    );
}

// ---------------------------------------------------------------------------------------
// 3. --preserve-fds with fds the caller does not have

#[test]
fn preserve_fds_not_open_in_caller() {
    let Some(t) = Test::new("pfds_closed") else {
        return;
    };
    let b = t.bundle(
        "b",
        &["sh", "-c", "echo leaked >&3; echo leaked >&4"],
        |_| {},
    );
    let id = t.id("c");
    for cmd in ["create", "run"] {
        let mut c = t.command(&[cmd, "--preserve-fds", "2", &id, "-b", b.to_str().unwrap()]);
        only_stdio(&mut c);
        run_cmd(&mut c, TIMEOUT).assert_error(&["--preserve-fds", "not open"]);
        t.assert_no_leftovers(&id);
    }
    assert_eq!(fs::read_dir(&t.root).map(|r| r.count()).unwrap_or(0), 0);

    // With --log, the log file must never stand in for the caller's missing fd 3.
    let log = t.dir.join("strata.log");
    let mut c = t.command(&[
        "--log",
        log.to_str().unwrap(),
        "run",
        "--preserve-fds",
        "1",
        &id,
        "-b",
        b.to_str().unwrap(),
    ]);
    only_stdio(&mut c);
    let out = run_cmd(&mut c, TIMEOUT);
    out.assert_error(&["--preserve-fds", "not open"]);
    t.assert_no_leftovers(&id);
    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !logged.contains("leaked"),
        "container wrote to the log: {logged:?}"
    );
}

#[test]
fn preserve_fds_with_log_hands_over_the_callers_fd() {
    let Some(t) = Test::new("pfds_log") else {
        return;
    };
    let b = t.bundle("b", &["sh", "-c", "echo via-fd3 >&3"], |_| {});
    let id = t.id("c");
    let log = t.dir.join("strata.log");
    let mine = t.dir.join("mine");
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&mine)
        .unwrap();
    let mut c = t.command(&[
        "--log",
        log.to_str().unwrap(),
        "run",
        "--preserve-fds",
        "1",
        &id,
        "-b",
        b.to_str().unwrap(),
    ]);
    only_stdio(&mut c);
    pass_fds(&mut c, &[(f.as_raw_fd(), 3)]);
    run_cmd(&mut c, TIMEOUT).ok();
    t.assert_no_leftovers(&id);
    drop(f);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "via-fd3\n");
    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !logged.contains("via-fd3"),
        "container wrote to the log: {logged:?}"
    );
}

#[test]
fn listen_fds_are_passed_before_preserved_ones() {
    let Some(t) = Test::new("listen_fds") else {
        return;
    };
    // systemd socket activation: LISTEN_FDS=1 hands fd 3 over, and --preserve-fds 1 the
    // next one (fd 4); the container is told LISTEN_FDS=1, LISTEN_PID=1.
    let b = t.bundle(
        "b",
        &["sh", "-c", "echo activated >&3; echo preserved >&4; echo $LISTEN_FDS $LISTEN_PID; ls /proc/self/fd"],
        |_| {},
    );
    let id = t.id("c");
    let (a, p) = (t.dir.join("a"), t.dir.join("p"));
    let open = |path: &std::path::Path| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    };
    let (fa, fp) = (open(&a), open(&p));
    let mut c = t.command(&["run", "--preserve-fds", "1", &id, "-b", b.to_str().unwrap()]);
    c.env("LISTEN_FDS", "1");
    only_stdio(&mut c);
    pass_fds(&mut c, &[(fa.as_raw_fd(), 3), (fp.as_raw_fd(), 4)]);
    let out = run_cmd(&mut c, TIMEOUT);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "1 1", "{out:#?}");
    // ls itself holds one more fd (its directory); nothing of ours is there.
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.parse::<i32>().is_ok_and(|n| n <= 5)),
        "{out:#?}"
    );
    assert_eq!(fs::read_to_string(&a).unwrap(), "activated\n");
    assert_eq!(fs::read_to_string(&p).unwrap(), "preserved\n");
    t.assert_no_leftovers(&id);
}

// ---------------------------------------------------------------------------------------
// 4. Mount destinations are cleaned lexically before they are checked

#[test]
fn dotdot_destinations_into_proc_are_refused() {
    let Some(t) = Test::new("dotdot_proc") else {
        return;
    };
    let b = t.bundle("tmpfs", &["true"], |c| {
        drop_proc_mount(c);
        add_mount(
            c,
            json!({"destination": "/proc/../proc", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    create_fails(&t, &t.id("tmpfs"), &b, &["not of type proc"]);

    let fake = t.dir.join("fake");
    fs::write(&fake, "unconfined\n").unwrap();
    for (i, dest) in [
        "/proc/../proc/self/attr/current",
        "/mnt/../proc/sys/kernel/core_pattern",
    ]
    .iter()
    .enumerate()
    {
        let tag = format!("bind{i}");
        let b = t.bundle(&tag, &["true"], |c| {
            add_mount(
                c,
                json!({"destination": dest, "type": "bind", "source": fake, "options": ["bind"]}),
            )
        });
        create_fails(&t, &t.id(&tag), &b, &["inside /proc"]);
    }
}

#[test]
fn dotdot_destination_lands_lexically() {
    let Some(t) = Test::new("dotdot_mnt") else {
        return;
    };
    let src = t.mkdir("src");
    fs::write(src.join("marker"), "marked\n").unwrap();
    let out = t.sh("b", "cat /mnt/marker; cat /proc/self/mountinfo", |c| {
        bind_mount(c, &src, "/a/../mnt", true)
    });
    let (first, mountinfo) = out.split_once('\n').unwrap();
    assert_eq!(first, "marked", "bind did not land at /mnt: {out}");
    let mounts = parse_mountinfo(mountinfo);
    let m = find_mount(&mounts, "/mnt").unwrap_or_else(|| panic!("no /mnt mount: {mountinfo}"));
    assert!(m.is_ro(), "{m:?}");
    assert!(
        mounts.iter().all(|m| !m.mount_point.starts_with("/a")),
        "something mounted under /a: {mountinfo}"
    );
    assert!(
        !test_rootfs().join("a").exists(),
        "strata created /a in the shared rootfs"
    );
}

// ---------------------------------------------------------------------------------------
// 5. sysctls are only ever written into procfs

#[test]
fn sysctl_without_proc_mount_writes_nothing() {
    let Some(t) = Test::new("sysctl_noproc") else {
        return;
    };
    let rootfs = t.rootfs_copy("rootfs");
    let fake = rootfs.join("proc/sys/net/ipv4/ip_forward");
    // A fake /proc/sys in the image: the sysctl must not be written into it.
    fs::create_dir_all(fake.parent().unwrap()).unwrap();
    fs::write(&fake, "0\n").unwrap();
    let edit = |c: &mut Value| {
        set_root(c, &rootfs);
        drop_proc_mount(c);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    };
    assert!(base_config()["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "network"));
    let b = t.bundle("fake", &["true"], edit);
    create_fails(&t, &t.id("fake"), &b, &["linux.sysctl", "procfs"]);
    assert_eq!(
        fs::read_to_string(&fake).unwrap(),
        "0\n",
        "sysctl written into the image"
    );

    // No /proc/sys at all in the image: still refused, and nothing is created.
    fs::remove_dir_all(rootfs.join("proc/sys")).unwrap();
    let b = t.bundle("none", &["true"], edit);
    create_fails(&t, &t.id("none"), &b, &["linux.sysctl"]);
    assert!(
        !rootfs.join("proc/sys").exists(),
        "proc/sys created in the image"
    );
}

/// A procfs file mounted over a sysctl's own, as a racing shared mount could do between
/// the proc mount and the write (here a createContainer hook does it), does not take the
/// write: sysctls go through a private procfs instance (CVE-2025-52881).
#[test]
fn sysctl_write_cannot_be_redirected_by_a_mount_over_proc() {
    let Some(t) = Test::new("sysctl_redirect") else {
        return;
    };
    let target = test_rootfs().join("proc/sys/net/ipv4/ip_forward");
    let hook = format!(
        "/bin/mount --bind /proc/sys/kernel/domainname {}",
        target.display()
    );
    let out = t.sh(
        "c",
        "cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/conf/all/forwarding \
         /proc/sys/net/ipv4/ip_forward",
        |c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            c["hooks"] =
                json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]});
        },
    );
    // The domainname is untouched and forwarding is on; the ip_forward path shows the
    // domainname that the hook mounted over it (so the trap was in place).
    assert_eq!(out, "(none)\n1\n(none)\n");
}

// ---------------------------------------------------------------------------------------
// 6. The container starts with a clean signal state whatever its caller had

fn sig_bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

fn sig_field(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// Caller state: SIGTERM and SIGUSR1 blocked, SIGUSR2 and SIGRTMAX ignored.
fn messy_signals(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for s in [libc::SIGUSR2, libc::SIGRTMAX()] {
                if libc::signal(s, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[test]
fn container_signal_state_is_clean() {
    let Some(t) = Test::new("sigstate") else {
        return;
    };
    let blocked = sig_bit(libc::SIGTERM) | sig_bit(libc::SIGUSR1);
    let ignored = sig_bit(libc::SIGUSR2) | sig_bit(libc::SIGRTMAX());
    // The setup really takes effect (a plain child shows it).
    let mut c = Command::new("cat");
    c.arg("/proc/self/status");
    messy_signals(&mut c);
    let host = run_cmd(&mut c, TIMEOUT);
    host.ok();
    assert_eq!(
        sig_field(&host.stdout, "SigBlk") & blocked,
        blocked,
        "{}",
        host.stdout
    );
    assert_eq!(
        sig_field(&host.stdout, "SigIgn") & ignored,
        ignored,
        "{}",
        host.stdout
    );

    let check = |status: &str| {
        let blk = status
            .lines()
            .find(|l| l.starts_with("SigBlk:"))
            .unwrap_or_else(|| panic!("no SigBlk: {status}"));
        assert_eq!(
            blk.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{status}"
        );
        let ign = sig_field(status, "SigIgn");
        assert_eq!(
            ign & ignored,
            0,
            "SigIgn {ign:016x} keeps the caller's: {status}"
        );
    };

    // `run`: the container's init is `cat` itself.
    let b = t.bundle("run", &["cat", "/proc/self/status"], |_| {});
    let id = t.id("run");
    let mut c = t.command(&["run", &id, "-b", b.to_str().unwrap()]);
    messy_signals(&mut c);
    let out = run_cmd(&mut c, TIMEOUT);
    out.ok();
    t.assert_no_leftovers(&id);
    check(&out.stdout);

    // `create` from the messy caller, `start` from a clean one.
    let outdir = t.mkdir("out");
    let b = t.bundle("create", &["cp", "/proc/self/status", "/out/status"], |c| {
        bind_mount(c, &outdir, "/out", false)
    });
    let id = t.id("create");
    let mut c = t.command(&["create", &id, "-b", b.to_str().unwrap()]);
    messy_signals(&mut c);
    run_cmd(&mut c, TIMEOUT).ok();
    t.strata(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    check(&fs::read_to_string(outdir.join("status")).unwrap());
}

// ---------------------------------------------------------------------------------------
// 7. cgroupsPath never adopts a hierarchy root; a busy cgroup is shared, its processes spared

/// A `sleep 30` moved into /sys/fs/cgroup/pids/<name>; killed and removed on drop.
struct Victim {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything else in there got in with the container that shared it.
        let procs = fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_until(Duration::from_secs(5), || {
            fs::read_to_string(self.dir.join("cgroup.procs")).is_ok_and(|s| s.trim().is_empty())
        });
        let _ = fs::remove_dir(&self.dir);
    }
}

#[test]
fn cgroups_path_root_is_refused() {
    let Some(t) = Test::new("cg_root") else {
        return;
    };
    let id = t.id("c");
    let b = t.bundle("b", &["true"], |c| c["linux"]["cgroupsPath"] = json!("/"));
    create_fails(&t, &id, &b, &["linux.cgroupsPath", "root of"]);
}

/// runc 1.1 warns ("container's cgroup is not empty") and goes on: users share cgroups on
/// purpose. The container joins the busy cgroup, and neither its end nor `delete` (the
/// container has no pid namespace of its own, so delete would sweep the cgroup) kills the
/// processes that were there before it.
#[test]
fn cgroups_path_busy_cgroup_is_shared_with_a_warning() {
    let Some(t) = Test::new("cg_busy") else {
        return;
    };
    let pids_root = Path::new("/sys/fs/cgroup/pids");
    if !pids_root.join("cgroup.procs").is_file() {
        eprintln!(
            "SKIP: cg_busy: no cgroup v1 pids hierarchy at {}",
            pids_root.display()
        );
        return;
    }
    let name = format!("strata-hardening-victim-{}", std::process::id());
    let dir = pids_root.join(&name);
    fs::create_dir(&dir).unwrap();
    let child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let victim = Victim { child, dir };
    let vpid = victim.child.id() as i32;
    fs::write(victim.dir.join("cgroup.procs"), vpid.to_string()).unwrap();

    let id = t.id("c");
    let b = t.bundle("b", &["echo", "started"], |c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{name}"));
        c["linux"]["resources"]["pids"] = json!({"limit": 7});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let out = t.strata(&["run", &id, "-b", b.to_str().unwrap()]);
    out.ok();
    assert_eq!(out.stdout, "started\n", "{out:#?}");
    assert!(
        out.stderr.contains("is not empty") && out.stderr.contains(&name),
        "no warning about the shared cgroup: {out:#?}"
    );
    assert!(
        process_alive(vpid),
        "the process already in the cgroup was killed"
    );
    // The shared cgroup got the container's limit, as in runc.
    assert_eq!(
        fs::read_to_string(victim.dir.join("pids.max"))
            .unwrap()
            .trim(),
        "7"
    );
    assert!(!t.root.join(&id).exists(), "state dir left behind");
    // What strata made on the other hierarchies is gone; the shared one stays.
    assert_eq!(cgroup_dirs_of(&name), vec![victim.dir.clone()]);
    drop(victim);
    assert!(cgroup_dirs_of(&name).is_empty());
}

// ---------------------------------------------------------------------------------------
// 8. A create killed half-way leaves something `delete` removes

fn strace_works() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn live_processes_in_cgroup(id: &str) -> Vec<(i32, String)> {
    processes_in_cgroup(id)
        .into_iter()
        .filter(|(p, _)| process_alive(*p))
        .collect()
}

/// Run `strata create` under strace, which stalls every mknodat for 2 s; once strace shows
/// a mknodat whose mode contains `when`, SIGKILL the strata process, then strace.
fn kill_create_at(t: &Test, tag: &str, when: &str, init_in_cgroup: bool) {
    let b = t.bundle(tag, &["sleep", "1000"], |_| {});
    let id = t.id(tag);
    let trace = t.dir.join(format!("{tag}.strace"));
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-q",
        "-e",
        "trace=mknodat",
        "-e",
        "inject=mknodat:delay_enter=2000000",
    ])
    .arg("-o")
    .arg(&trace)
    .arg(STRATA)
    .arg("--root")
    .arg(&t.root)
    .args(["create", &id, "-b", b.to_str().unwrap()]);
    let mut r = Running::spawn(&mut cmd);
    let strace_pid = r.child.id() as i32;
    let mut text = String::new();
    let hit = wait_until(Duration::from_secs(30), || {
        text = fs::read_to_string(&trace).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("mknodat(") && l.contains(when))
    });
    // The strata process is the one that made the exec fifo (strace's first child may be
    // one of its own feature probes), and it must still be strace's child.
    let strata_pid = text
        .lines()
        .find(|l| l.contains("mknodat(") && l.contains("S_IFIFO"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| parent_of(*p) == Some(strace_pid));
    if !hit || strata_pid.is_none() {
        let _ = r.child.kill();
        let out = r.wait(TIMEOUT);
        panic!("{tag}: never saw a mknodat with {when} (strata pid {strata_pid:?}): {text}\nstrace: {out:#?}");
    }
    let strata_pid = strata_pid.unwrap();
    // The stall point is where we think it is: with or without the init in its cgroups.
    let before = live_processes_in_cgroup(&id);
    assert_eq!(
        !before.is_empty(),
        init_in_cgroup,
        "{tag}: processes in {id}'s cgroups at the kill: {before:?}"
    );
    assert!(t.root.join(&id).is_dir(), "{tag}: no state dir at the kill");
    if unsafe { libc::kill(strata_pid, libc::SIGKILL) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = r.child.kill();
        let out = r.wait(TIMEOUT);
        panic!(
            "{tag}: kill {strata_pid}: {e}\nstrace: {out:#?}\ntrace: {}",
            fs::read_to_string(&trace).unwrap_or_default()
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(strata_pid)),
        "{tag}: strata {strata_pid} survived SIGKILL: {:?}",
        fs::read_to_string(format!("/proc/{strata_pid}/stat"))
    );
    let _ = r.child.kill();
    let _ = r.child.wait();

    // Whatever the killed create had started goes away by itself.
    let t0 = Instant::now();
    let mut left = vec![];
    let gone = wait_until(Duration::from_secs(3), || {
        left = live_processes_in_cgroup(&id);
        left.is_empty()
    });
    assert!(
        gone,
        "{tag}: processes of {id} remain {:?} after the kill: {left:?}",
        t0.elapsed()
    );
    // The half-made container is listed as stopped and can be deleted.
    let out = t.strata(&["list", "-f", "json"]);
    out.ok();
    let list: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("list is not JSON ({e}): {out:#?}"));
    let entry = list
        .as_array()
        .unwrap_or_else(|| panic!("list is not an array: {out:#?}"))
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{tag}: {id} not listed: {out:#?}"));
    assert_eq!(entry["status"], "stopped", "{tag}: {entry}");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn killed_create_can_be_deleted() {
    let Some(t) = Test::new("killed_create") else {
        return;
    };
    if !strace_works() {
        eprintln!("SKIP: killed_create: strace is not available");
        return;
    }
    // In the parent, creating the exec fifo: state and cgroups exist, no init yet.
    kill_create_at(&t, "fifo", "S_IFIFO", false);
    // In the init, creating /dev nodes: the init is already in its cgroups.
    kill_create_at(&t, "dev", "S_IFCHR", true);
}
