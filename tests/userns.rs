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
         grep -c ' /dev/null ' /proc/self/mountinfo; hostname",
        |c| {
            map_ids(c);
            set_root(c, &rootfs);
            bind_mount(c, &shared, "/shared", false);
            c["hostname"] = json!("inner");
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
