//! Bad bundles, IDs and command misuse: one clear `strata: ` error line and nothing left behind.

mod common;

use common::*;
use serde_json::json;
use std::fs;

#[test]
fn missing_bundle_dir() {
    let Some(t) = Test::new("no_bundle") else {
        return;
    };
    let b = t.dir.join("no-such-bundle");
    create_fails(&t, &t.id("c"), &b, &["no-such-bundle"]);
}

#[test]
fn missing_config_json() {
    let Some(t) = Test::new("no_config") else {
        return;
    };
    let b = t.mkdir("empty-bundle");
    create_fails(&t, &t.id("c"), &b, &["config.json", "no such file"]);
}

#[test]
fn invalid_json() {
    let Some(t) = Test::new("bad_json") else {
        return;
    };
    let b = t.mkdir("b");
    fs::write(
        b.join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": [,\n}\n",
    )
    .unwrap();
    let id = t.id("c");
    let out = t.strata(&["create", &id, "-b", b.to_str().unwrap()]);
    out.assert_error(&["config.json"]);
    // file:line:column, the position of the stray comma
    let pos = format!("{}:3:", b.join("config.json").display());
    let line = out.stderr.trim();
    let rest = &line[line
        .find(&pos)
        .unwrap_or_else(|| panic!("no {pos} in {line}"))
        + pos.len()..];
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert!(
        !col.is_empty() && rest[col.len()..].starts_with(':'),
        "no column: {line}"
    );
    t.assert_no_leftovers(&id);
    // Valid JSON of the wrong shape is reported the same way.
    fs::write(b.join("config.json"), "{\"ociVersion\": 3}").unwrap();
    t.strata(&["create", &id, "-b", b.to_str().unwrap()])
        .assert_error(&["config.json:1:"]);
    t.assert_no_leftovers(&id);
}

#[test]
fn missing_rootfs() {
    let Some(t) = Test::new("no_rootfs") else {
        return;
    };
    let gone = t.dir.join("no-such-rootfs");
    let b = t.bundle("b", &["true"], |c| set_root(c, &gone));
    create_fails(&t, &t.id("c"), &b, &["no-such-rootfs"]);
    // A relative root.path missing from the bundle.
    let b = t.bundle("rel", &["true"], |c| c["root"]["path"] = json!("rootfs"));
    create_fails(&t, &t.id("rel"), &b, &["rootfs", "root.path"]);
}

#[test]
fn empty_args() {
    let Some(t) = Test::new("empty_args") else {
        return;
    };
    let b = t.bundle("b", &[], |_| {});
    create_fails(&t, &t.id("c"), &b, &["process.args"]);
    let b = t.bundle("blank", &[""], |_| {});
    create_fails(&t, &t.id("blank"), &b, &["process.args"]);
}

#[test]
fn program_not_found() {
    let Some(t) = Test::new("no_prog") else {
        return;
    };
    // Worded as runc words them: docker and podman turn "executable file not found" and
    // "no such file or directory" into exit code 127, "permission denied" into 126.
    let b = t.bundle("b", &["no-such-program-xyz"], |_| {});
    create_fails(
        &t,
        &t.id("c"),
        &b,
        &[r#"exec: "no-such-program-xyz": executable file not found in $PATH"#],
    );
    let b = t.bundle("abs", &["/bin/no-such-program-abs"], |_| {});
    create_fails(
        &t,
        &t.id("abs"),
        &b,
        &[
            r#"exec: "/bin/no-such-program-abs": stat /bin/no-such-program-abs: no such file or directory"#,
        ],
    );
    // A directory, or a file without an x bit, is not a program.
    let b = t.bundle("dir", &["/etc"], |_| {});
    create_fails(
        &t,
        &t.id("dir"),
        &b,
        &[r#"exec: "/etc": permission denied"#],
    );
    let b = t.bundle("noexec", &["/etc/passwd"], |_| {});
    create_fails(
        &t,
        &t.id("noexec"),
        &b,
        &[r#"exec: "/etc/passwd": permission denied"#],
    );
}

#[test]
fn missing_cwd() {
    let Some(t) = Test::new("no_cwd") else { return };
    let b = t.bundle("b", &["true"], |c| {
        c["process"]["cwd"] = json!("/no/such/dir")
    });
    create_fails(&t, &t.id("c"), &b, &["/no/such/dir"]);
    let b = t.bundle("rel", &["true"], |c| {
        c["process"]["cwd"] = json!("relative/dir")
    });
    create_fails(&t, &t.id("rel"), &b, &["relative/dir"]);
}

#[test]
fn failing_bind_mount() {
    let Some(t) = Test::new("bad_mount") else {
        return;
    };
    let src = t.dir.join("no-such-source");
    let b = t.bundle("b", &["true"], |c| bind_mount(c, &src, "/mnt", false));
    create_fails(&t, &t.id("c"), &b, &[src.to_str().unwrap()]);
    // An unknown filesystem type names the mount.
    let b = t.bundle("fs", &["true"], |c| {
        add_mount(
            c,
            json!({"destination": "/mnt", "type": "nosuchfs", "source": "x"}),
        )
    });
    create_fails(&t, &t.id("fs"), &b, &["/mnt"]);
}

#[test]
fn duplicate_id() {
    let Some(t) = Test::new("dup_id") else { return };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    t.strata(&["create", &id, "-b", b.to_str().unwrap()])
        .assert_error(&[&id, "already exists"]);
    t.strata(&["run", &id, "-b", b.to_str().unwrap()])
        .assert_error(&[&id, "already exists"]);
    // The first container is intact and still works.
    assert_eq!(t.status(&id), "created");
    assert_eq!(t.pid(&id), pid);
    assert_eq!(cgroup_dirs_of(&id).len(), cgroup_mounts().len());
    t.strata(&["start", &id]).ok();
    assert_eq!(t.status(&id), "running");
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn invalid_ids() {
    let Some(t) = Test::new("bad_ids") else {
        return;
    };
    let b = t.bundle("b", &["true"], |_| {});
    let long = "x".repeat(2000);
    let before: Vec<_> = fs::read_dir(&t.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for id in ["../x", "a/b", "/", "", &long, "..", "a b", "x\ny"] {
        for cmd in ["create", "run"] {
            t.strata(&[cmd, id, "-b", b.to_str().unwrap()])
                .assert_error(&["invalid container ID"]);
        }
        for cmd in ["state", "start", "kill", "delete"] {
            let out = t.strata(&[cmd, id]);
            assert_ne!(out.code, 0, "{out:#?}");
            assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
        }
    }
    // Nothing was created, neither in the state root nor next to it.
    let root_entries = fs::read_dir(&t.root).map(|r| r.count()).unwrap_or(0);
    assert_eq!(root_entries, 0);
    let after: Vec<_> = fs::read_dir(&t.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        after.iter().all(|n| before.contains(n) || n == "state"),
        "{after:?}"
    );
    for name in ["x", "b", &long] {
        assert!(cgroup_dirs_of(name).is_empty(), "cgroup {name} created");
    }
}

#[test]
fn unknown_container() {
    let Some(t) = Test::new("unknown") else {
        return;
    };
    let id = t.id("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        t.strata(&args).assert_error(&[&id, "does not exist"]);
    }
    // Like runc, a forced delete of what is not there is a quiet success.
    let out = t.strata(&["delete", "--force", &id]);
    out.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    t.assert_no_leftovers(&id);
}

#[test]
fn start_twice_and_start_stopped() {
    let Some(t) = Test::new("start_twice") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    t.strata(&["start", &id]).assert_error(&["running"]);
    assert_eq!(t.status(&id), "running");
    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["start", &id]).assert_error(&["stopped"]);
    t.strata(&["kill", &id, "KILL"])
        .assert_error(&["not running"]);
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn pid_file_in_a_missing_directory() {
    let Some(t) = Test::new("bad_pidfile") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let pf = t.dir.join("no-such-dir/pid");
    let id = t.id("c");
    t.strata(&[
        "create",
        &id,
        "-b",
        b.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
    ])
    .assert_error(&["--pid-file", "no-such-dir/pid"]);
    t.assert_no_leftovers(&id);
}

#[test]
fn delete_running_needs_force() {
    let Some(t) = Test::new("delete_force") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let pid = t.pid(&id);
    t.strata(&["delete", &id])
        .assert_error(&[&id, "running", "--force"]);
    assert_eq!(t.status(&id), "running");
    assert!(process_alive(pid));
    t.strata(&["delete", "--force", &id]).ok();
    assert!(!process_alive(pid), "init survived delete --force");
    t.assert_no_leftovers(&id);
    // A created (never started) container is deleted without --force, like runc.
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn terminal_and_userns_misuse_is_refused() {
    let Some(t) = Test::new("unsupported") else {
        return;
    };
    let b = t.bundle("b", &["true"], |_| {});
    let bs = b.to_str().unwrap();
    let id = t.id("c");
    let sock = t.dir.join("console.sock");
    // No terminal to send.
    t.strata(&[
        "create",
        &id,
        "-b",
        bs,
        "--console-socket",
        sock.to_str().unwrap(),
    ])
    .assert_error(&["--console-socket", "process.terminal is false"]);
    t.assert_no_leftovers(&id);
    // A terminal, but nowhere to send it (runc's rule for detached containers).
    let b = t.bundle("tty", &["true"], |c| c["process"]["terminal"] = json!(true));
    t.strata(&["create", &id, "-b", b.to_str().unwrap()])
        .assert_error(&["process.terminal", "--console-socket"]);
    t.assert_no_leftovers(&id);
    // A socket path nobody listens on.
    t.strata(&[
        "create",
        &id,
        "-b",
        b.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
    ])
    .assert_error(&["--console-socket", "console.sock"]);
    t.assert_no_leftovers(&id);
    // A new user namespace needs maps; maps need a new user namespace.
    let b = t.bundle("userns", &["true"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}))
    });
    create_fails(&t, &id, &b, &["uidMappings", "gidMappings"]);
    let b = t.bundle("maps", &["true"], |c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
    });
    create_fails(&t, &id, &b, &["uidMappings", "new user namespace"]);
    // A sysctl that is not namespaced would change the host: refused.
    let b = t.bundle("sysctl", &["true"], |c| {
        c["linux"]["sysctl"] = json!({"vm.overcommit_memory": "1"})
    });
    create_fails(&t, &id, &b, &["vm.overcommit_memory"]);
}

#[test]
fn host_wide_settings_without_their_namespace_are_refused() {
    let Some(t) = Test::new("no_ns") else { return };
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let drop_ns = |c: &mut serde_json::Value, ty: &str| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != ty)
    };
    let b = t.bundle("uts", &["true"], |c| drop_ns(c, "uts"));
    create_fails(&t, &t.id("uts"), &b, &["hostname", "uts"]);
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    let b = t.bundle("net", &["true"], |c| {
        drop_ns(c, "network");
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    create_fails(&t, &t.id("net"), &b, &["net.ipv4.ip_forward"]);
    // Without a mount namespace the container would run in ours: masks are refused.
    let b = t.bundle("mnt", &["true"], |c| drop_ns(c, "mount"));
    create_fails(&t, &t.id("mnt"), &b, &["maskedPaths", "mount namespace"]);
}

/// A namespace listed twice is refused, as runc does ("duplicated ns"), new or by path.
#[test]
fn a_namespace_listed_twice_is_refused() {
    let Some(t) = Test::new("ns_twice") else {
        return;
    };
    for (tag, extra) in [
        ("new", json!({"type": "pid"})),
        ("path", json!({"type": "network", "path": "/proc/1/ns/net"})),
    ] {
        let b = t.bundle(tag, &["true"], |c| {
            c["linux"]["namespaces"].as_array_mut().unwrap().push(extra);
        });
        create_fails(&t, &t.id(tag), &b, &["linux.namespaces", "listed twice"]);
    }
}

/// A program that passes every check but whose execve fails (its interpreter is
/// missing) is reported once, and the container is gone.
#[test]
fn exec_failure_is_reported_once() {
    let Some(t) = Test::new("exec_fail") else {
        return;
    };
    let rootfs = t.rootfs_copy("rootfs");
    let script = rootfs.join("bin/badscript");
    fs::write(&script, "#!/no/such/interpreter\necho hi\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let b = t.bundle("b", &["/bin/badscript"], |c| set_root(c, &rootfs));
    let id = t.id("c");
    let out = t.strata(&["run", &id, "-b", b.to_str().unwrap()]);
    t.assert_no_leftovers(&id);
    assert_eq!(out.stdout, "");
    out.assert_error(&["/bin/badscript"]);
}

/// runc refuses to mount over anything inside /proc but a few harmless files
/// (CVE-2019-16884: a bind over /proc/self/attr/* disables the LSM profile).
#[test]
fn mounts_inside_proc_are_refused() {
    let Some(t) = Test::new("proc_mount") else {
        return;
    };
    let fake = t.dir.join("fake");
    fs::write(&fake, "fake\n").unwrap();
    for (i, dest) in ["/proc/self/attr/current", "/proc/sys/kernel/core_pattern"]
        .iter()
        .enumerate()
    {
        let b = t.bundle(&format!("b{i}"), &["cat", dest], |c| {
            add_mount(
                c,
                json!({"destination": dest, "type": "bind", "source": fake, "options": ["bind"]}),
            )
        });
        create_fails(&t, &t.id(&format!("c{i}")), &b, &[dest, "/proc"]);
    }
}
