//! User namespaces: id maps, files owned by mapped ids, device nodes and /sys without
//! privileges over the host, exec into such a container, and rootless mode (strata run
//! by an unprivileged user) through the basic lifecycle.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const HOST_BASE: u32 = 100000;

fn map_ids(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
}

/// A rootfs copy owned by the mapped root, as an image unpacked for a userns would be.
fn mapped_rootfs(t: &Test) -> std::path::PathBuf {
    let r = t.rootfs_copy("mapped-rootfs");
    let out = Command::new("chown")
        .args(["-R", &format!("{HOST_BASE}:{HOST_BASE}")])
        .arg(&r)
        .output()
        .unwrap();
    assert!(out.status.success(), "chown: {out:?}");
    r
}

#[test]
fn mapped_ids_inside_and_outside() {
    let Some(t) = Test::new("userns_ids") else {
        return;
    };
    let rootfs = mapped_rootfs(&t);
    let shared = t.mkdir("shared");
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = t.sh(
        "ids",
        "id; cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u:%g' /bin/busybox; \
         touch /shared/made; echo x > /dev/null && echo devnull-ok; \
         grep -c ' /dev/null ' /proc/self/mountinfo; hostname; cat /proc/sys/net/ipv4/ip_forward",
        |c| {
            map_ids(c);
            set_root(c, &rootfs);
            bind_mount(c, &shared, "/shared", false);
            c["hostname"] = json!("inner");
            // Written through a procfs instance made inside the user namespace.
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "uid=0(root) gid=0(root)", "{out}");
    for map in &lines[1..3] {
        let f: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(f, ["0", "100000", "65536"], "{out}");
    }
    // The image's files, owned by host 100000, are root's inside.
    assert_eq!(lines[3], "0:0", "{out}");
    // What the container's root creates belongs to the mapped id on the host.
    let md = std::fs::metadata(shared.join("made")).unwrap();
    assert_eq!((md.uid(), md.gid()), (HOST_BASE, HOST_BASE));
    // mknod is not allowed in a user namespace: the host's node is bound instead.
    assert_eq!(lines[4], "devnull-ok", "{out}");
    assert_eq!(lines[5], "1", "/dev/null is a bind mount: {out}");
    assert_eq!(lines[6], "inner", "{out}");
    assert_eq!(lines[7], "1", "{out}");
}

#[test]
fn userns_without_netns_binds_host_sys() {
    let Some(t) = Test::new("userns_sys") else {
        return;
    };
    let rootfs = mapped_rootfs(&t);
    // sysfs may only be mounted by the owner of the network namespace; the host's /sys
    // is bound instead (read-only, as configured).
    let out = t.sh(
        "sys",
        "test -d /sys/kernel && echo has-kernel; touch /sys/x 2>&1 || echo ro",
        |c| {
            map_ids(c);
            set_root(c, &rootfs);
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
        },
    );
    assert!(out.contains("has-kernel"), "{out}");
    assert!(out.lines().last() == Some("ro"), "{out}");
}

#[test]
fn exec_joins_the_user_namespace() {
    let Some(t) = Test::new("userns_exec") else {
        return;
    };
    let rootfs = mapped_rootfs(&t);
    let id = t.id("c");
    let b = t.bundle("b", &["sleep", "60"], |c| {
        map_ids(c);
        set_root(c, &rootfs);
    });
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let pid = t.pid(&id);
    let out = t.strata(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/user",
    ]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "0");
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(lines[1], init_ns.to_str().unwrap());
    let host_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(init_ns, host_ns);
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

// --- idmapped mounts ----------------------------------------------------------------

/// Idmapped mounts need Linux 5.12, and on tmpfs (the test dirs' home on some hosts) 6.3.
fn idmap_unsupported() -> bool {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let dir = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
    let tmpfs = unsafe { libc::statfs(dir.as_ptr(), &mut st) } == 0 && st.f_type == 0x0102_1994;
    let ok = kernel_at_least(5, 12) && (!tmpfs || kernel_at_least(6, 3));
    if !ok {
        eprintln!("SKIP: this kernel cannot idmap the test directory's filesystem");
    }
    !ok
}

/// A host directory with one file owned by root and one by uid/gid 1000.
fn owned_files(t: &Test, tag: &str) -> std::path::PathBuf {
    let dir = t.mkdir(tag);
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("root-file"), "r").unwrap();
    std::fs::write(dir.join("user-file"), "u").unwrap();
    std::os::unix::fs::chown(dir.join("user-file"), Some(1000), Some(1000)).unwrap();
    dir
}

fn idmapped_bind(c: &mut Value, source: &Path, dest: &str, opts: &[&str], extra: Value) {
    let mut m = json!({"destination": dest, "type": "bind", "source": source, "options": opts});
    if let Value::Object(o) = extra {
        m.as_object_mut().unwrap().extend(o);
    }
    add_mount(c, m);
}

#[test]
fn idmap_mount_shows_host_owners_as_the_container_sees_its_own() {
    let Some(t) = Test::new("idmap_implied") else {
        return;
    };
    if idmap_unsupported() {
        return;
    }
    let rootfs = mapped_rootfs(&t);
    let data = owned_files(&t, "data");
    let out = t.sh(
        "c",
        "stat -c '%u:%g %n' /data/root-file /data/user-file /plain/root-file; \
         touch /data/made-inside; ls /proc/self/fd | tr '\\n' ' '; echo; \
         grep ' /data ' /proc/self/mountinfo",
        |c| {
            map_ids(c);
            set_root(c, &rootfs);
            idmapped_bind(c, &data, "/data", &["rbind", "idmap"], json!({}));
            // The same directory without idmap: host root is nobody in the namespace.
            bind_mount(c, &data, "/plain", false);
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0:0 /data/root-file", "{out}");
    assert_eq!(lines[1], "1000:1000 /data/user-file", "{out}");
    assert_eq!(lines[2], "65534:65534 /plain/root-file", "{out}");
    // What the container's root makes there belongs to the host's root, not to 100000.
    let md = std::fs::metadata(data.join("made-inside")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    // The parent's tree fd did not reach the container's program.
    assert_eq!(
        lines[3].trim(),
        "0 1 2 3",
        "only stdio and ls's own dir fd: {out}"
    );
    assert!(lines[4].contains("idmapped"), "{out}");
}

#[test]
fn a_joined_user_namespace_owns_the_new_namespaces_and_idmaps() {
    let Some(t) = Test::new("idmap_joined") else {
        return;
    };
    if idmap_unsupported() {
        return;
    }
    let rootfs = mapped_rootfs(&t);
    let data = owned_files(&t, "data");
    let holder = t.id("holder");
    let b = t.bundle("holder", &["sleep", "60"], |c| {
        map_ids(c);
        set_root(c, &rootfs);
    });
    t.strata(&["run", "-d", &holder, "-b", b.to_str().unwrap()])
        .ok();
    let userns = format!("/proc/{}/ns/user", t.pid(&holder));
    // The Kubernetes shape: join the pod's user namespace, make the rest new in it.
    let out = t.sh(
        "c",
        "stat -c '%u:%g' /data/user-file; echo $$; hostname; id -u",
        |c| {
            set_root(c, &rootfs);
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user", "path": userns}));
            idmapped_bind(c, &data, "/data", &["rbind", "idmap"], json!({}));
            c["hostname"] = json!("joined");
        },
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1000:1000", "1", "joined", "0"],
        "{out}"
    );
    // Detached: the state's pid is the forked init; exec and kill reach it.
    let id = t.id("d");
    let b = t.bundle("d", &["sleep", "60"], |c| {
        set_root(c, &rootfs);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": userns}));
    });
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let pid = t.pid(&id);
    let ns = |p: i32, n: &str| std::fs::read_link(format!("/proc/{p}/ns/{n}")).unwrap();
    assert_eq!(ns(pid, "user"), std::fs::read_link(&userns).unwrap());
    assert_ne!(ns(pid, "pid"), ns(std::process::id() as i32, "pid"));
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .starts_with("sleep"));
    let out = t.strata(&[
        "exec",
        &id,
        "sh",
        "-c",
        "tr '\\0' ' ' </proc/1/cmdline; echo; id -u",
    ]);
    assert_eq!(out.ok().lines(), ["sleep 60", "0"]);
    t.strata(&["kill", &id, "KILL"]).ok();
    assert!(wait_until(TIMEOUT, || !process_alive(pid)));
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    t.strata(&["delete", "--force", &holder]).ok();
    t.assert_no_leftovers(&holder);
}

/// A new user namespace that joins a namespace the host's user namespace owns (here the
/// network namespace of a plain container, as with a pod's or the host's network): it is
/// joined first, then the user namespace is made, then the rest in it, so the container
/// still owns its hostname.
#[test]
fn a_new_user_namespace_joins_host_owned_namespaces() {
    let Some(t) = Test::new("userns_join_host") else {
        return;
    };
    let rootfs = mapped_rootfs(&t);
    let holder = t.id("holder");
    let b = t.bundle("holder", &["sleep", "60"], |_| {});
    t.strata(&["run", "-d", &holder, "-b", b.to_str().unwrap()])
        .ok();
    let hpid = t.pid(&holder);
    let ns = |p: i32, n: &str| {
        std::fs::read_link(format!("/proc/{p}/ns/{n}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let join = |c: &mut Value, types: &[(&str, &str)]| {
        map_ids(c);
        set_root(c, &rootfs);
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            for (typ, file) in types {
                if n["type"] == *typ {
                    n["path"] = json!(format!("/proc/{hpid}/ns/{file}"));
                }
            }
        }
        c["hostname"] = json!("own-uts");
    };
    let joined = |c: &mut Value| join(c, &[("network", "net")]);
    let out = t.sh(
        "c",
        "readlink /proc/self/ns/net; id -u; hostname; cat /proc/self/uid_map",
        joined,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [ns(hpid, "net"), "0".into(), "own-uts".into()],
        "{out}"
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    // An ipc namespace it does not own cannot get its /dev/mqueue (runc fails alike): a
    // clear error, and nothing left.
    let bad = t.id("ipc");
    let b = t.bundle("ipc", &["true"], |c| join(c, &[("ipc", "ipc")]));
    let out = t.strata(&["run", &bad, "-b", b.to_str().unwrap()]);
    out.assert_error(&["mount mqueue on /dev/mqueue"]);
    t.assert_no_leftovers(&bad);
    // Detached, and `exec` enters the host-owned namespace before the user namespace.
    let id = t.id("d");
    let b = t.bundle("d", &["sleep", "60"], joined);
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let pid = t.pid(&id);
    assert_ne!(ns(pid, "user"), ns(std::process::id() as i32, "user"));
    let out = t.strata(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/self/ns/net; id -u; hostname",
    ]);
    assert_eq!(
        out.ok().lines(),
        [ns(hpid, "net"), "0".into(), "own-uts".into()]
    );
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
    t.strata(&["delete", "--force", &holder]).ok();
    t.assert_no_leftovers(&holder);
}

#[test]
fn idmap_mount_with_its_own_mappings_needs_no_user_namespace() {
    let Some(t) = Test::new("idmap_explicit") else {
        return;
    };
    if idmap_unsupported() {
        return;
    }
    let data = owned_files(&t, "data");
    let maps = json!({
        "uidMappings": [{"containerID": 0, "hostID": 4321, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 4322, "size": 1}],
    });
    let out = t.sh(
        "c",
        "stat -c '%u:%g' /data/root-file /data/user-file; cat /proc/self/uid_map",
        |c| idmapped_bind(c, &data, "/data", &["bind", "ro"], maps.clone()),
    );
    let lines: Vec<&str> = out.lines().collect();
    // On-disk 0 is shown as hostID; 1000 is outside the mapping.
    assert_eq!(lines[0], "4321:4322", "{out}");
    assert_eq!(lines[1], "65534:65534", "{out}");
    // The container itself stays in the host's user namespace.
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{out}"
    );
}

/// A tmpfs mounted below a bind source; unmounted when the test ends, even on panic.
struct SubMount(std::path::PathBuf);
impl Drop for SubMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn ridmap_maps_the_mounts_below_and_idmap_does_not() {
    let Some(t) = Test::new("ridmap") else {
        return;
    };
    if !kernel_at_least(6, 3) {
        eprintln!("SKIP: tmpfs can be idmapped from Linux 6.3 on");
        return;
    }
    let rootfs = mapped_rootfs(&t);
    let data = owned_files(&t, "data");
    let sub = data.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=755", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = SubMount(sub.clone());
    std::fs::write(sub.join("f"), "f").unwrap();
    for (opt, want) in [("idmap", "65534:65534"), ("ridmap", "0:0")] {
        let out = t.sh(opt, "stat -c '%u:%g' /data/root-file /data/sub/f", |c| {
            map_ids(c);
            set_root(c, &rootfs);
            idmapped_bind(c, &data, "/data", &["rbind", opt], json!({}));
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["0:0", want], "{opt}: {out}");
    }
}

fn mount_cmd(args: &[&str], path: &Path) {
    let st = Command::new("mount").args(args).arg(path).status().unwrap();
    assert!(st.success(), "mount {args:?} {}", path.display());
}

/// CVE-class check: an idmapped tree must be built in the container's own mount
/// namespace. Cloned on the host, it would be a peer of a shared host mount (what the
/// container mounts below it would show up on the host) and its submounts would not be
/// locked (the container's root could unmount them and see what they cover).
#[test]
fn idmapped_trees_are_slaves_with_locked_submounts() {
    let Some(t) = Test::new("idmap_shared") else {
        return;
    };
    if idmap_unsupported() {
        return;
    }
    let rootfs = mapped_rootfs(&t);
    let data = owned_files(&t, "data");
    let sub = data.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::create_dir(data.join("new")).unwrap();
    // The host side, as on a systemd host: a shared mount with a mount below it.
    mount_cmd(&["--bind", data.to_str().unwrap()], &data);
    let _bind = SubMount(data.clone());
    mount_cmd(&["--make-shared"], &data);
    mount_cmd(&["-t", "tmpfs", "-o", "mode=755", "tmpfs"], &sub);
    let _sub = SubMount(sub.clone());
    let _leak = SubMount(data.join("new"));
    let out = t.sh(
        "c",
        "mount -t tmpfs t /data/new && echo mounted; \
         umount /data/sub 2>/dev/null && echo unmounted || echo locked",
        |c| {
            map_ids(c);
            set_root(c, &rootfs);
            idmapped_bind(c, &data, "/data", &["rbind", "ridmap"], json!({}));
            let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = caps.clone();
            }
        },
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["mounted", "locked"],
        "{out}"
    );
    let host = host_mount_points();
    let new = data.join("new");
    assert!(
        !host.iter().any(|m| Path::new(m) == new),
        "the container's mount propagated to the host"
    );
}

#[test]
fn idmap_mounts_refuse_what_cannot_work() {
    let Some(t) = Test::new("idmap_bad") else {
        return;
    };
    if idmap_unsupported() {
        return;
    }
    let data = owned_files(&t, "data");
    let cases: [(&str, Value, &[&str]); 4] = [
        (
            "no-userns",
            json!({"destination": "/data", "type": "bind", "source": data, "options": ["bind", "idmap"]}),
            &["/data", "idmap", "user namespace"],
        ),
        (
            "not-bind",
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            &["/data", "bind mounts"],
        ),
        (
            "uid-only",
            json!({"destination": "/data", "type": "bind", "source": data, "options": ["bind"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            &["/data", "both uidMappings and gidMappings"],
        ),
        (
            "bad-map",
            json!({"destination": "/data", "type": "bind", "source": data, "options": ["bind"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1},
                                   {"containerID": 0, "hostID": 2, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            &["/data", "uidMappings", "uid_map"],
        ),
    ];
    for (tag, m, needles) in cases {
        let id = t.id(tag);
        let b = t.bundle(tag, &["true"], |c| add_mount(c, m));
        create_fails(&t, &id, &b, needles);
    }
}

const USER: &str = "1000";

/// strata as an unprivileged user, with its own XDG_RUNTIME_DIR (and so state root).
fn rootless(xdg: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", USER, "--regid", USER, "--clear-groups"])
        .arg("env")
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
        .arg(STRATA)
        .args(args);
    run_cmd(&mut c, TIMEOUT)
}

/// Host facts the rootless tests need: setpriv(1), user namespaces an unprivileged user
/// may make (kernel.unprivileged_userns_clone, user.max_user_namespaces, Ubuntu's
/// AppArmor restriction), and a test rootfs that user can reach.
fn rootless_possible(test: &str) -> bool {
    let sysctl = |k: &str| std::fs::read_to_string(format!("/proc/sys/{k}")).ok();
    let why = if Command::new("setpriv").arg("--version").output().is_err() {
        Some("no setpriv(1) (util-linux)".to_string())
    } else if sysctl("kernel/unprivileged_userns_clone").is_some_and(|v| v.trim() == "0") {
        Some("kernel.unprivileged_userns_clone is 0".into())
    } else if sysctl("user/max_user_namespaces").is_some_and(|v| v.trim() == "0") {
        Some("user.max_user_namespaces is 0".into())
    } else if sysctl("kernel/apparmor_restrict_unprivileged_userns")
        .is_some_and(|v| v.trim() == "1")
    {
        Some("kernel.apparmor_restrict_unprivileged_userns is 1".into())
    } else {
        let busybox = test_rootfs().join("bin/busybox");
        let reach = Command::new("setpriv")
            .args([
                "--reuid",
                USER,
                "--regid",
                USER,
                "--clear-groups",
                "test",
                "-x",
            ])
            .arg(&busybox)
            .status()
            .is_ok_and(|s| s.success());
        (!reach).then(|| format!("uid {USER} cannot reach {}", busybox.display()))
    };
    if let Some(why) = &why {
        eprintln!("SKIP: {test}: {why}");
    }
    why.is_none()
}

/// A directory in the test's sandbox owned by the unprivileged user.
fn user_dir(t: &Test, tag: &str) -> std::path::PathBuf {
    let dir = t.mkdir(tag);
    let st = Command::new("chown")
        .args([USER, dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

fn rootless_bundle(t: &Test, tag: &str, args: &[&str]) -> std::path::PathBuf {
    // `spec` writes into the bundle, so the user must own it.
    let dir = user_dir(t, tag);
    let out = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--clear-groups"])
        .arg(STRATA)
        .args(["spec", "--rootless", "--bundle"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "spec --rootless: {out:?}");
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(args);
    set_root(&mut cfg, test_rootfs());
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    dir
}

#[test]
fn rootless_lifecycle() {
    let Some(t) = Test::new("rootless") else {
        return;
    };
    if !rootless_possible("rootless_lifecycle") {
        return;
    }
    let xdg = user_dir(&t, "xdg");
    let id = t.id("c");

    let b = rootless_bundle(&t, "once", &["sh", "-c", "id; cat /proc/self/uid_map"]);
    let out = rootless(&xdg, &["run", &id, "-b", b.to_str().unwrap()]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "uid=0(root) gid=0(root)");
    let f: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(f, ["0", USER, "1"]);

    let b = rootless_bundle(&t, "long", &["sleep", "60"]);
    rootless(&xdg, &["create", &id, "-b", b.to_str().unwrap()]).ok();
    // Default state root for a non-root user: $XDG_RUNTIME_DIR/strata.
    assert!(xdg.join("strata").join(&id).join("state.json").exists());
    rootless(&xdg, &["start", &id]).ok();
    let st: Value = serde_json::from_str(&rootless(&xdg, &["state", &id]).ok().stdout).unwrap();
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    let out = rootless(&xdg, &["exec", &id, "id", "-u"]);
    assert_eq!(out.ok().stdout.trim(), "0");
    rootless(&xdg, &["kill", &id, "KILL"]).ok();
    assert!(wait_until(TIMEOUT, || !process_alive(pid)));
    rootless(&xdg, &["delete", &id]).ok();
    assert!(!xdg.join("strata").join(&id).exists());
    assert!(!process_alive(pid));
}

#[test]
fn rootless_refuses_limits_it_cannot_keep() {
    let Some(t) = Test::new("rootless_limits") else {
        return;
    };
    if !rootless_possible("rootless_refuses_limits_it_cannot_keep") {
        return;
    }
    let xdg = user_dir(&t, "xdg");
    let id = t.id("c");
    let b = rootless_bundle(&t, "lim", &["true"]);
    let path = b.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["linux"]["resources"] = json!({"pids": {"limit": 10}});
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    rootless(&xdg, &["run", &id, "-b", b.to_str().unwrap()]).assert_error(&[
        "rootless",
        "linux.resources",
        "not writable",
    ]);
    assert!(!xdg.join("strata").join(&id).exists());
}

/// A bind source the container's root cannot reach (a 0700 directory of the host's root
/// on the way): runc opens bind sources before it enters the user namespace, so it
/// works; strata used to fail with EACCES. The parent clones the source in the init's
/// mount namespace (host rights, the container's locks) and hands the tree over.
#[test]
fn bind_source_behind_a_private_directory() {
    let Some(t) = Test::new("userns_private_src") else {
        return;
    };
    let secret = t.mkdir("secret");
    let data = t.mkdir("secret/data");
    std::fs::write(data.join("f"), "behind\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let file = secret.join("file");
    std::fs::write(&file, "a file\n").unwrap();
    let rootfs = mapped_rootfs(&t);
    let out = t.sh("c", "cat /data/f /mnt/file", |c| {
        map_ids(c);
        set_root(c, &rootfs);
        bind_mount(c, &data, "/data", true);
        add_mount(
            c,
            json!({"destination": "/mnt/file", "type": "bind", "source": file, "options": ["bind", "ro"]}),
        );
    });
    assert_eq!(out, "behind\na file\n");
}
