//! What the process inside a container sees: mounts, paths, caps, limits, identity, /dev, cgroups.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// The `Name:\tvalue` field of a /proc/<pid>/status text.
fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

/// Bit mask of capabilities given by number.
fn caps_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << c)
}

fn set_caps(cfg: &mut Value, caps: &[&str]) {
    let c = json!(caps);
    cfg["process"]["capabilities"] =
        json!({"bounding": c, "effective": c, "permitted": c, "inheritable": c, "ambient": c});
}

/// Assert the mounts of the base config are in place, as seen in the container's
/// /proc/self/mountinfo, with a read-only root, and no other mounts but `extra`.
#[track_caller]
fn assert_standard_mounts(mountinfo: &str, extra: &[&str]) {
    let m = parse_mountinfo(mountinfo);
    let get =
        |p: &str| find_mount(&m, p).unwrap_or_else(|| panic!("no mount at {p}:\n{mountinfo}"));
    assert!(get("/").is_ro(), "root is not read-only:\n{mountinfo}");
    for (p, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(get(p).fstype, fstype, "{p}:\n{mountinfo}");
    }
    assert!(get("/sys").is_ro(), "/sys is not read-only:\n{mountinfo}");
    assert!(
        get("/sys/fs/cgroup").is_ro(),
        "/sys/fs/cgroup not read-only:\n{mountinfo}"
    );
    assert!(!get("/proc").is_ro());
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(
            get("/dev/shm").opts.iter().any(|x| x == o),
            "/dev/shm lacks {o}"
        );
    }
    // Nothing of the host's mount table is visible.
    for e in &m {
        let p = e.mount_point.as_str();
        let known = p == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|d| p == *d || p.starts_with(&format!("{d}/")))
            || extra.contains(&p);
        assert!(known, "unexpected mount {p}:\n{mountinfo}");
    }
}

#[test]
fn hostname_and_pid_1() {
    let Some(t) = Test::new("hostname") else {
        return;
    };
    let out = t.sh(
        "c",
        "hostname; echo $$; cat /proc/sys/kernel/hostname",
        |_| {},
    );
    assert_eq!(out, "strata\n1\nstrata\n");
    let out = t.sh("other", "hostname", |c| c["hostname"] = json!("box-2"));
    assert_eq!(out, "box-2\n");
}

#[test]
fn mounts_and_read_only_root() {
    let Some(t) = Test::new("mounts") else { return };
    let out = t.sh(
        "c",
        "cat /proc/self/mountinfo; echo ===; touch /newfile 2>&1; echo rc=$?",
        |_| {},
    );
    let (mi, rest) = out.split_once("===\n").unwrap();
    assert_standard_mounts(mi, &[]);
    assert!(rest.contains("Read-only file system"), "{rest}");
    assert!(rest.ends_with("rc=1\n"), "{rest}");
    assert!(!test_rootfs().join("newfile").exists());
}

#[test]
fn readonly_paths_refuse_writes() {
    let Some(t) = Test::new("ro_paths") else {
        return;
    };
    // Write the host's current value: harmless even if the write went through.
    let vm = "/proc/sys/vm/overcommit_memory";
    let host_vm = fs::read_to_string(vm).unwrap();
    let out = t.sh(
        "c",
        &format!(
            "{{ echo x > /proc/sys/kernel/domainname; }} 2>&1; echo rc=$?; \
             {{ echo {} > {vm}; }} 2>&1; echo rc=$?; cat /proc/sys/kernel/domainname",
            host_vm.trim()
        ),
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for i in [0, 2] {
        assert!(lines[i].contains("Read-only file system"), "{out}");
        assert_eq!(lines[i + 1], "rc=1", "{out}");
    }
    assert_eq!(lines[4], "(none)");
    assert_eq!(fs::read_to_string(vm).unwrap(), host_vm);
}

#[test]
fn masked_paths_are_empty() {
    let Some(t) = Test::new("masked") else { return };
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| fs::read(p).is_ok_and(|d| !d.is_empty()))
    .collect();
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware"]
        .into_iter()
        .filter(|p| Path::new(p).is_dir())
        .collect();
    assert!(
        !files.is_empty() && !dirs.is_empty(),
        "the host has no maskable paths"
    );
    let mut script = String::new();
    for f in &files {
        script += &format!("echo \"{f} $(wc -c < {f})\"; ");
    }
    for d in &dirs {
        script += &format!("echo \"{d} [$(ls -A {d})]\"; ");
    }
    script += "echo ===; cat /proc/self/mountinfo";
    let out = t.sh("c", &script, |_| {});
    let (report, mi) = out.split_once("===\n").unwrap();
    let mounts = parse_mountinfo(mi);
    for f in &files {
        assert!(
            report.contains(&format!("{f} 0\n")),
            "{f} not empty:\n{report}"
        );
    }
    for d in &dirs {
        assert!(
            report.contains(&format!("{d} []\n")),
            "{d} not empty:\n{report}"
        );
        let m = find_mount(&mounts, d).unwrap_or_else(|| panic!("{d} not masked by a mount"));
        assert!(m.is_ro(), "{d} mask is writable: {m:?}");
    }
}

#[test]
fn default_capabilities() {
    let Some(t) = Test::new("caps_default") else {
        return;
    };
    let out = t.sh("c", "cat /proc/self/status", |_| {});
    // CAP_AUDIT_WRITE (29) | CAP_KILL (5) | CAP_NET_BIND_SERVICE (10)
    let want = caps_mask(&[29, 5, 10]);
    assert_eq!(want, 0x2000_0420);
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(hex(status_field(&out, f)), want, "{f}");
    }
    assert_eq!(hex(status_field(&out, "CapInh")), 0);
}

#[test]
fn custom_capabilities() {
    let Some(t) = Test::new("caps_custom") else {
        return;
    };
    let out = t.sh(
        "c",
        "cat /proc/self/status; chown 65534 /dev/null && echo chown-ok; hostname other 2>&1 || echo sethostname-denied",
        |c| set_caps(c, &["CAP_CHOWN", "CAP_SETUID", "CAP_NET_ADMIN"]),
    );
    // CHOWN 0, SETUID 7, NET_ADMIN 12
    let want = caps_mask(&[0, 7, 12]);
    for f in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(hex(status_field(&out, f)), want, "{f}: {out}");
    }
    assert!(out.contains("chown-ok"), "{out}");
    assert!(
        out.contains("sethostname-denied"),
        "CAP_SYS_ADMIN leaked: {out}"
    );
    // No capabilities at all.
    let out = t.sh("none", "cat /proc/self/status", |c| {
        c["process"].as_object_mut().unwrap().remove("capabilities");
    });
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(hex(status_field(&out, f)), 0, "{f}: {out}");
    }
}

#[test]
fn rlimits() {
    let Some(t) = Test::new("rlimits") else {
        return;
    };
    let out = t.sh("c", "ulimit -n; ulimit -Hn; ulimit -c", |c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
    });
    assert_eq!(out, "1000\n2000\n0\n");
}

#[test]
fn environment_is_exactly_the_configured_one() {
    let Some(t) = Test::new("env") else { return };
    let b = t.bundle("b", &["env"], |c| {
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY="]);
    });
    let id = t.id("c");
    let mut cmd = t.command(&["run", &id, "-b", b.to_str().unwrap()]);
    cmd.env("STRATA_TEST_LEAK", "host-only");
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    let mut lines = out.lines();
    lines.sort();
    assert_eq!(
        lines,
        ["EMPTY=", "FOO=bar baz", "PATH=/usr/bin:/bin"],
        "{out:#?}"
    );
    t.assert_no_leftovers(&id);
}

#[test]
fn cwd() {
    let Some(t) = Test::new("cwd") else { return };
    let out = t.sh("tmp", "pwd; touch f && ls", |c| {
        tmpfs_tmp(c);
        c["process"]["cwd"] = json!("/tmp");
    });
    assert_eq!(out, "/tmp\nf\n");
    let out = t.sh("etc", "pwd; ls", |c| c["process"]["cwd"] = json!("/etc"));
    assert_eq!(out, "/etc\ngroup\nhostname\npasswd\n");
}

#[test]
fn user_and_groups() {
    let Some(t) = Test::new("user") else { return };
    let out = t.sh(
        "c",
        "id -u; id -g; id -G; id; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        |c| c["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [5, 100]}),
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "65534");
    assert_eq!(l[1], "65534");
    let mut groups: Vec<&str> = l[2].split(' ').collect();
    groups.sort();
    assert_eq!(groups, ["100", "5", "65534"], "{out}");
    assert!(
        l[3].starts_with("uid=65534(nobody) gid=65534(nogroup)"),
        "{out}"
    );
    assert_eq!(
        status_field(&out, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["65534"; 4]
    );
    assert_eq!(
        status_field(&out, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["65534"; 4]
    );
    assert_eq!(status_field(&out, "Groups"), "5 100");
}

#[test]
fn umask() {
    let Some(t) = Test::new("umask") else { return };
    let out = t.sh("set", "umask; touch /tmp/f; stat -c %a /tmp/f", |c| {
        tmpfs_tmp(c);
        c["process"]["user"]["umask"] = json!(0o027);
    });
    assert_eq!(out, "0027\n640\n");
    assert_eq!(t.sh("default", "umask", |_| {}), "0022\n");
}

#[test]
fn no_new_privileges() {
    let Some(t) = Test::new("nnp") else { return };
    let out = t.sh("on", "grep NoNewPrivs /proc/self/status", |_| {});
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    let out = t.sh("off", "grep NoNewPrivs /proc/self/status", |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj() {
    let Some(t) = Test::new("oom") else { return };
    let out = t.sh("c", "cat /proc/self/oom_score_adj", |c| {
        c["process"]["oomScoreAdj"] = json!(500)
    });
    assert_eq!(out, "500\n");
}

#[test]
fn sysctl_is_set_inside_only() {
    let Some(t) = Test::new("sysctl") else { return };
    let host = || fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let before = host();
    let out = t.sh(
        "c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname",
        |c| {
            c["linux"]["sysctl"] =
                json!({"net.ipv4.ip_forward": "1", "kernel.domainname": "strata.test"})
        },
    );
    assert_eq!(out, "1\nstrata.test\n");
    assert_eq!(host(), before, "the host's ip_forward changed");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        "(none)\n"
    );
}

#[test]
fn dev_nodes_and_links() {
    let Some(t) = Test::new("dev") else { return };
    let out = t.sh(
        "c",
        "for d in null zero full random urandom tty fuse; do stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo \"$l -> $(readlink /dev/$l)\"; done; \
         head -c 4 /dev/zero | od -An -tx1; echo hi > /dev/null && echo null-ok",
        |c| {
            c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10,
                "minor": 229, "fileMode": 0o600, "uid": 65534, "gid": 5}]);
        },
    );
    let want = "\
/dev/null character special file 1:3 666 0:0
/dev/zero character special file 1:5 666 0:0
/dev/full character special file 1:7 666 0:0
/dev/random character special file 1:8 666 0:0
/dev/urandom character special file 1:9 666 0:0
/dev/tty character special file 5:0 666 0:0
/dev/fuse character special file a:e5 600 65534:5
fd -> /proc/self/fd
stdin -> /proc/self/fd/0
stdout -> /proc/self/fd/1
stderr -> /proc/self/fd/2
ptmx -> pts/ptmx
 00 00 00 00
null-ok
";
    assert_eq!(out, want);
}

#[test]
fn bind_mounts_rw_and_ro() {
    let Some(t) = Test::new("binds") else { return };
    let rw = t.mkdir("rw");
    let ro = t.mkdir("ro");
    fs::write(ro.join("marker"), "from-host\n").unwrap();
    let out = t.sh(
        "c",
        "echo from-container > /out/written; cat /ro/marker; \
         { echo x > /ro/new; } 2>&1; echo rc=$?; grep -E ' /(out|ro) ' /proc/self/mountinfo",
        |c| {
            bind_mount(c, &rw, "/out", false);
            bind_mount(c, &ro, "/ro", true);
        },
    );
    assert_eq!(
        fs::read_to_string(rw.join("written")).unwrap(),
        "from-container\n"
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "from-host");
    assert!(l[1].contains("Read-only file system"), "{out}");
    assert_eq!(l[2], "rc=1");
    assert!(!ro.join("new").exists());
    let m = parse_mountinfo(&l[3..].join("\n"));
    assert!(!find_mount(&m, "/out").unwrap().is_ro());
    assert!(find_mount(&m, "/ro").unwrap().is_ro());
    // A bind mount of a single file.
    let out = t.sh("file", "cat /etc/hostname", |c| {
        bind_mount(c, &ro.join("marker"), "/etc/hostname", true)
    });
    assert_eq!(out, "from-host\n");
}

#[test]
fn no_pivot() {
    let Some(t) = Test::new("no_pivot") else {
        return;
    };
    let b = t.bundle(
        "b",
        &[
            "sh",
            "-c",
            "hostname; ls /; echo ===; cat /proc/self/mountinfo",
        ],
        |_| {},
    );
    let id = t.id("c");
    let out = t.strata(&["run", "--no-pivot", &id, "-b", b.to_str().unwrap()]);
    out.ok();
    let (head, mi) = out.stdout.split_once("===\n").unwrap();
    let ls: Vec<&str> = head.lines().collect();
    assert_eq!(ls[0], "strata");
    assert!(ls.contains(&"bin") && ls.contains(&"linuxrc"), "{head}");
    assert!(!ls.contains(&"work"), "host root visible: {head}");
    assert_standard_mounts(mi, &[]);
    t.assert_no_leftovers(&id);
}

#[test]
fn host_cgroups_hold_the_init() {
    let Some(t) = Test::new("cgroups_host") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    let hierarchies = cgroup_mounts();
    assert!(!hierarchies.is_empty());
    for h in &hierarchies {
        let dirs = find_dirs_named(h, &id);
        assert_eq!(
            dirs.len(),
            1,
            "cgroup for {id} on {}: {dirs:?}",
            h.display()
        );
        let procs = fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "init {pid} not in {}: {procs}",
            dirs[0].display()
        );
    }
    // Still in place once started.
    t.strata(&["start", &id]).ok();
    assert_eq!(cgroup_dirs_of(&id).len(), hierarchies.len());
    assert!(processes_in_cgroup(&id).iter().any(|(p, _)| *p == pid));
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn cgroup_namespace_and_read_only_cgroupfs() {
    let Some(t) = Test::new("cgroupns") else {
        return;
    };
    let out = t.sh(
        "c",
        "cat /proc/self/cgroup; echo ===; ls /sys/fs/cgroup; echo ===; \
         for d in /sys/fs/cgroup/x /sys/fs/cgroup/memory/x /sys/fs/cgroup/unified/x; do \
           mkdir $d 2>&1; echo rc=$?; done",
        |_| {},
    );
    let parts: Vec<&str> = out.split("===\n").collect();
    let own: Vec<&str> = parts[0].lines().collect();
    assert!(!own.is_empty());
    for l in &own {
        assert!(
            l.ends_with(":/"),
            "not rooted at the container's cgroup: {}",
            parts[0]
        );
    }
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir();
    if v1 {
        assert!(parts[1].lines().any(|l| l == "memory"), "{}", parts[1]);
    }
    let errs: Vec<&str> = parts[2].lines().collect();
    let checked = if v1 { 3 } else { 1 };
    for pair in errs.chunks(2).take(checked) {
        assert!(pair[0].contains("Read-only file system"), "{}", parts[2]);
        assert_eq!(pair[1], "rc=1", "{}", parts[2]);
    }
}

#[test]
fn openat2_fallback_runs_with_the_same_mounts() {
    let Some(t) = Test::new("fallback") else {
        return;
    };
    let t = t.no_openat2();
    let rw = t.mkdir("rw");
    let out = t.sh(
        "c",
        "echo via-fallback > /out/f; cat /proc/timer_list | wc -c; ls -A /sys/firmware; \
         { echo x > /proc/sys/kernel/domainname; } 2>&1; echo ===; cat /proc/self/mountinfo",
        |c| bind_mount(c, &rw, "/out", false),
    );
    let (head, mi) = out.split_once("===\n").unwrap();
    assert_standard_mounts(mi, &["/out"]);
    let l: Vec<&str> = head.lines().collect();
    assert_eq!(l[0], "0", "{head}");
    assert!(l[1].contains("Read-only file system"), "{head}");
    assert!(find_mount(&parse_mountinfo(mi), "/out").is_some());
    assert_eq!(fs::read_to_string(rw.join("f")).unwrap(), "via-fallback\n");
}

#[test]
fn writable_root_when_not_readonly() {
    let Some(t) = Test::new("rw_root") else {
        return;
    };
    let rootfs = t.rootfs_copy("rootfs");
    let out = t.sh(
        "c",
        "echo hi > /newfile && cat /newfile; cat /proc/self/mountinfo",
        |c| {
            set_root(c, &rootfs);
            c["root"]["readonly"] = json!(false);
        },
    );
    let (first, mi) = out.split_once('\n').unwrap();
    assert_eq!(first, "hi");
    assert!(
        !find_mount(&parse_mountinfo(mi), "/").unwrap().is_ro(),
        "{mi}"
    );
    assert_eq!(fs::read_to_string(rootfs.join("newfile")).unwrap(), "hi\n");
}

#[test]
fn cgroups_path_is_used_and_removed() {
    let Some(t) = Test::new("cgroups_path") else {
        return;
    };
    let parent = t.id("parent");
    let child = t.id("child");
    let b = t.bundle("b", &["sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(format!("{parent}/{child}"));
    });
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    // The init's own view of its cgroups (from the host, outside its cgroup namespace).
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in own.lines() {
        assert!(l.ends_with(&format!("/{parent}/{child}")), "{own}");
    }
    let dirs = cgroup_dirs_of(&child);
    assert_eq!(dirs.len(), cgroup_mounts().len(), "{dirs:?}");
    for d in &dirs {
        assert_eq!(
            d.parent().unwrap().file_name().unwrap().to_str(),
            Some(parent.as_str())
        );
    }
    assert!(
        cgroup_dirs_of(&id).is_empty(),
        "the ID was used despite cgroupsPath"
    );
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    assert!(
        cgroup_dirs_of(&child).is_empty(),
        "{:?}",
        cgroup_dirs_of(&child)
    );
    assert!(
        cgroup_dirs_of(&parent).is_empty(),
        "created parent left: {:?}",
        cgroup_dirs_of(&parent)
    );
    assert!(processes_in_cgroup(&child).is_empty());
}

#[test]
fn joins_namespaces_by_path() {
    let Some(t) = Test::new("join_ns") else {
        return;
    };
    let a = t.bundle("a", &["sleep", "1000"], |_| {});
    let a_id = t.id("a");
    t.strata(&["run", "-d", &a_id, "-b", a.to_str().unwrap()])
        .ok();
    let a_pid = t.pid(&a_id);
    let link = |p: String| fs::read_link(p).unwrap().to_string_lossy().into_owned();
    let out = t.sh(
        "b",
        "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done; hostname",
        |c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            for n in ns.iter_mut() {
                if ["network", "ipc"].contains(&n["type"].as_str().unwrap()) {
                    let kind = if n["type"] == "network" { "net" } else { "ipc" };
                    n["path"] = json!(format!("/proc/{a_pid}/ns/{kind}"));
                }
            }
            c["hostname"] = json!("joiner");
        },
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], link(format!("/proc/{a_pid}/ns/net")));
    assert_eq!(l[1], link(format!("/proc/{a_pid}/ns/ipc")));
    assert_ne!(
        l[2],
        link(format!("/proc/{a_pid}/ns/uts")),
        "uts was not to be joined"
    );
    assert_ne!(l[3], link(format!("/proc/{a_pid}/ns/pid")));
    assert_eq!(l[4], "joiner");
    t.strata(&["delete", "--force", &a_id]).ok();
    t.assert_no_leftovers(&a_id);
}

#[test]
fn rshared_bind_stays_shared_inside() {
    let Some(t) = Test::new("rshared") else {
        return;
    };
    // A shared source, bound with rshared: inside, the mount is in a peer group (field 7
    // of mountinfo says `shared:N`), as with runc. Making the new root a slave after
    // pivot_root (instead of the old one) used to turn it private.
    let src = t.mkdir("src");
    let mk = |args: &[&str]| {
        let out = std::process::Command::new("mount")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount {args:?}: {out:?}");
    };
    mk(&["--bind", src.to_str().unwrap(), src.to_str().unwrap()]);
    mk(&["--make-shared", src.to_str().unwrap()]);
    let out = t.sh("b", "grep ' /shared ' /proc/self/mountinfo", |c| {
        add_mount(
            c,
            json!({"destination": "/shared", "type": "bind", "source": src,
                   "options": ["rbind", "rshared"]}),
        );
    });
    let _ = std::process::Command::new("umount").arg(&src).status();
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert!(
        fields.get(6).is_some_and(|f| f.starts_with("shared:")),
        "not shared inside: {out}"
    );
}

/// A read-only /dev (or any read-only tmpfs) is mounted read-write and made read-only at
/// the end, as runc does: /dev/pts, /dev/shm, the device nodes and links are made in it
/// first (strata used to fail with "create mount point /dev/pts: Read-only file system").
#[test]
fn read_only_dev_and_tmpfs() {
    for env in ["", "STRATA_NO_MOUNT_SETATTR"] {
        let Some(mut t) = Test::new("ro_dev") else {
            return;
        };
        if !env.is_empty() {
            t = t.with_env(env, "1");
        }
        let out = t.sh(
            "c",
            "awk '$5==\"/dev\" || $5==\"/tmp\" {print $5, $6}' /proc/self/mountinfo; \
             touch /dev/x 2>/dev/null && echo WROTE-DEV; touch /tmp/x 2>/dev/null && echo WROTE-TMP; \
             echo hi > /dev/null && test -c /dev/zero && test -d /dev/pts && test -L /dev/fd && echo devices-ok",
            |c| {
                for m in c["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == "/dev" {
                        m["options"].as_array_mut().unwrap().push(json!("ro"));
                    }
                }
                add_mount(
                    c,
                    json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=1777"]}),
                );
            },
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"devices-ok"), "{env}: {out}");
        assert!(!out.contains("WROTE"), "{env}: {out}");
        for mp in ["/dev ", "/tmp "] {
            let l = lines.iter().find(|l| l.starts_with(mp)).unwrap();
            assert!(l[mp.len()..].starts_with("ro,"), "{env}: {l}");
        }
    }
}

/// Without a mount namespace the container runs in the runtime's, as the spec and runc
/// have it (strata used to refuse): chrooted into its rootfs (exec too), its mounts made
/// in ours under a bind of the rootfs, which delete, or a failed create, detaches (runc
/// leaves them on the host). What would change the host itself is refused.
#[test]
fn without_a_mount_namespace() {
    let Some(t) = Test::new("no_mntns") else {
        return;
    };
    let rootfs = t.rootfs_copy("rootfs");
    let ours = fs::read_link("/proc/self/ns/mnt").unwrap();
    let mounted = || {
        host_mount_points()
            .into_iter()
            .filter(|m| Path::new(m).starts_with(&rootfs))
            .collect::<Vec<_>>()
    };
    let no_mntns = |c: &mut Value| {
        set_root(c, &rootfs);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    };
    let b = t.bundle("b", &["sleep", "1000"], no_mntns);
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    assert!(!mounted().is_empty(), "its mounts are in our namespace");
    let out = t.strata(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt; test -x /linuxrc && echo in-rootfs",
    ]);
    out.ok();
    assert_eq!(
        out.lines(),
        [ours.to_str().unwrap(), "in-rootfs"],
        "{out:#?}"
    );
    // Its cgroup mounts inside its rootfs are in our namespace too: another container
    // must still find the host's hierarchies, not those copies (read-only in a default
    // config), when it makes its cgroups.
    let other = t.bundle("other", &["true"], |_| {});
    t.strata(&["run", &t.id("other"), "-b", other.to_str().unwrap()])
        .ok();
    t.force_delete(&id);
    assert_eq!(mounted(), Vec::<String>::new(), "mounts left on the host");

    // A create that fails half-way leaves none either.
    let b = t.bundle("bad", &["true"], |c| {
        no_mntns(c);
        bind_mount(c, &t.dir.join("no-such-source"), "/mnt", false);
    });
    create_fails(&t, &t.id("bad"), &b, &["no-such-source"]);
    assert_eq!(mounted(), Vec::<String>::new(), "mounts left on the host");

    // Masks and rootfsPropagation would act on the host's mounts: refused, as in runc.
    let b = t.bundle("masked", &["true"], |c| {
        no_mntns(c);
        c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    });
    create_fails(&t, &t.id("masked"), &b, &["maskedPaths", "mount namespace"]);
    let b = t.bundle("prop", &["true"], |c| {
        no_mntns(c);
        c["linux"]["rootfsPropagation"] = json!("rshared");
    });
    create_fails(
        &t,
        &t.id("prop"),
        &b,
        &["rootfsPropagation", "mount namespace"],
    );
    assert_eq!(mounted(), Vec::<String>::new(), "mounts left on the host");
}
