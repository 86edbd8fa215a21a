//! OCI hooks: order, state on stdin, namespaces, args and env, timeouts, failures.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Write an executable `#!/bin/sh` script (host /bin/sh, or busybox's inside the container).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Records `<kind> <mount ns> <state JSON from stdin>` as one line of the log `$2`.
const RECORD: &str = r#"printf '%s %s ' "$1" "$(readlink /proc/self/ns/mnt)" >> "$2"
cat >> "$2"
echo >> "$2""#;

fn hook(path: &Path, args: &[&str]) -> Value {
    json!({"path": path, "args": args})
}

/// A process on the host whose command line is exactly `cmdline` (args joined by spaces).
fn host_process(cmdline: &str) -> Option<i32> {
    fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.trim() == cmdline && process_alive(pid)).then_some(pid)
    })
}

#[test]
fn all_six_kinds_run_in_order_with_the_state_and_in_the_right_namespace() {
    let Some(t) = Test::new("hooks-order") else {
        return;
    };
    // One dir, seen at the same path on the host and at /hk in the container, so that
    // every hook (startContainer runs after pivot_root) appends to the same log.
    let hk = t.mkdir("hk");
    let rec = script(&hk, "rec.sh", RECORD);
    let log = hk.join("log");
    let log_s = log.to_str().unwrap();
    let b = t.bundle(
        "b",
        &["sh", "-c", "echo ran > /hk/started; exec sleep 1000"],
        |c| {
            bind_mount(c, &hk, "/hk", false);
            c["annotations"] = json!({"org.example.hook": "yes"});
            let host = |k: &str| json!([hook(&rec, &["rec", k, log_s])]);
            c["hooks"] = json!({
                "prestart": host("prestart"),
                "createRuntime": host("createRuntime"),
                "createContainer": host("createContainer"),
                "startContainer": [hook(Path::new("/hk/rec.sh"), &["rec", "startContainer", "/hk/log"])],
                "poststart": host("poststart"),
                "poststop": host("poststop"),
            });
        },
    );
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    let container_mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(container_mnt, host_mnt);
    assert!(!hk.join("started").exists(), "program ran before start");
    t.strata(&["start", &id]).ok();
    assert!(
        wait_until(Duration::from_secs(20), || hk.join("started").exists()),
        "program never ran"
    );
    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);

    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<(&str, &str, Value)> = text
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let (k, ns, js) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let v = serde_json::from_str(js).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            (k, ns, v)
        })
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(kinds, KINDS, "{text}");
    let statuses = [
        "creating", "creating", "creating", "created", "running", "stopped",
    ];
    for ((kind, ns, st), status) in lines.iter().zip(statuses) {
        assert_eq!(st["status"], status, "{kind}: {st}");
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        assert_eq!(st["pid"], pid, "{kind}: {st}");
        assert_eq!(st["bundle"], b.to_str().unwrap(), "{kind}: {st}");
        assert_eq!(st["ociVersion"], "1.0.2-dev", "{kind}: {st}");
        assert_eq!(st["annotations"]["org.example.hook"], "yes", "{kind}: {st}");
        let want = if matches!(*kind, "createContainer" | "startContainer") {
            &container_mnt
        } else {
            &host_mnt
        };
        assert_eq!(
            Path::new(ns),
            want,
            "{kind} ran in the wrong mount namespace"
        );
    }
}

#[test]
fn args_and_env_are_passed_exactly() {
    let Some(t) = Test::new("hooks-argv") else {
        return;
    };
    let out = t.dir.join("argv");
    // busybox picks its applet from argv[0]: it runs as `sh` only if args[0] is argv[0].
    // The final `exit` keeps sh from exec'ing tr in its place ($$ would then be tr).
    let busybox = test_rootfs().join("bin/busybox");
    let body = format!(
        r#"echo "$0|$1|$2" > {o}; tr '\0' '\n' < /proc/$$/environ >> {o}; exit"#,
        o = out.display()
    );
    let r = t.run("r", &["true"], |c| {
        c["hooks"] = json!({"createRuntime": [{
            "path": busybox,
            "args": ["sh", "-c", body, "zero", "one", "two words"],
            "env": ["A=1", "B=two words", "EMPTY="],
        }]});
    });
    r.ok();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "zero|one|two words\nA=1\nB=two words\nEMPTY=\n"
    );
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_fails() {
    let Some(t) = Test::new("hooks-timeout") else {
        return;
    };
    // The shell forks sleep: the whole process group must die, not just the shell.
    let slow = script(&t.dir, "slow.sh", "sleep 1007");
    let b = t.bundle("b", &["true"], |c| {
        c["hooks"] = json!({"createRuntime": [{"path": slow, "timeout": 1}]});
    });
    create_fails(
        &t,
        &t.id("c"),
        &b,
        &[
            "hooks.createRuntime[0]",
            slow.to_str().unwrap(),
            "timed out after 1s",
        ],
    );
    assert_eq!(
        host_process("sleep 1007"),
        None,
        "the hook's child survived"
    );
}

#[test]
fn a_failing_create_hook_fails_create_with_its_stderr_and_leaves_nothing() {
    let Some(t) = Test::new("hooks-fail") else {
        return;
    };
    let bad = script(
        &t.dir,
        "bad.sh",
        "echo some output; echo '  no network for you  ' >&2; exit 3",
    );
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let b = t.bundle(kind, &["true"], |c| {
            c["hooks"] = json!({ kind: [{"path": "/bin/true"}, {"path": bad}] });
        });
        create_fails(
            &t,
            &t.id(kind),
            &b,
            &[
                &format!("hooks.{kind}[1]"),
                bad.to_str().unwrap(),
                "exit status 3: no network for you",
            ],
        );
    }
}

#[test]
fn a_failing_start_container_hook_stops_the_container_before_its_program() {
    let Some(t) = Test::new("hooks-startc") else {
        return;
    };
    let hk = t.mkdir("hk");
    script(&hk, "bad.sh", "echo 'not today' >&2; exit 4");
    let b = t.bundle("b", &["sh", "-c", "echo ran > /hk/started"], |c| {
        bind_mount(c, &hk, "/hk", false);
        c["hooks"] = json!({"startContainer": [{"path": "/hk/bad.sh"}]});
    });
    // run hears it over the init's channel.
    let id = t.id("run");
    t.strata(&["run", &id, "-b", b.to_str().unwrap()])
        .assert_error(&[
            "hooks.startContainer[0] /hk/bad.sh",
            "exit status 4: not today",
        ]);
    t.assert_no_leftovers(&id);
    // start watches the init through its execve (runc's start would not hear of it).
    let id = t.id("cs");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    t.strata(&["start", &id]).assert_error(&[
        "hooks.startContainer[0] /hk/bad.sh",
        "exit status 4: not today",
    ]);
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    assert!(!hk.join("started").exists(), "the program ran");
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let Some(t) = Test::new("hooks-warn") else {
        return;
    };
    let bad = script(&t.dir, "bad.sh", "echo \"$1 broke\" >&2; exit 1");
    let after = script(
        &t.dir,
        "after.sh",
        &format!("echo \"$1\" >> {}/ran", t.dir.display()),
    );
    let r = t.run("r", &["true"], |c| {
        c["hooks"] = json!({
            "poststart": [hook(&bad, &["bad", "poststart"]), hook(&after, &["after", "poststart"])],
            "poststop": [hook(&bad, &["bad", "poststop"]), hook(&after, &["after", "poststop"])],
        });
    });
    r.ok();
    for kind in ["poststart", "poststop"] {
        let want = format!(
            "hooks.{kind}[0] {}: exit status 1: {kind} broke",
            bad.display()
        );
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains("warning") && l.contains(&want)),
            "no warning {want:?}: {r:#?}"
        );
    }
    // The hooks after a failed one still run.
    assert_eq!(
        fs::read_to_string(t.dir.join("ran")).unwrap(),
        "poststart\npoststop\n"
    );
}

#[test]
fn poststop_comes_from_the_saved_state_not_the_bundle() {
    let Some(t) = Test::new("hooks-saved") else {
        return;
    };
    let mark = script(
        &t.dir,
        "mark.sh",
        &format!("cat > {}/stopped", t.dir.display()),
    );
    let b = t.bundle("b", &["true"], |c| {
        c["hooks"] = json!({"poststop": [{"path": mark}]});
    });
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    // The bundle changes after create: delete must not care.
    let mut cfg: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("hooks");
    t.bundle_from("b", &cfg);
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    let st: Value =
        serde_json::from_str(&fs::read_to_string(t.dir.join("stopped")).unwrap()).unwrap();
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["id"], id.as_str());
}

#[test]
fn bad_hooks_in_config_are_refused() {
    let Some(t) = Test::new("hooks-config") else {
        return;
    };
    let cases = [
        (
            "rel",
            json!({"createRuntime": [{"path": "x"}]}),
            r#"config.json: hooks.createRuntime[0].path "x": must be absolute"#,
        ),
        (
            "zero",
            json!({"poststop": [{"path": "/bin/true"}, {"path": "/bin/true", "timeout": 0}]}),
            "config.json: hooks.poststop[1].timeout 0: must be greater than zero",
        ),
        (
            "missing",
            json!({"createRuntime": [{"path": "/nonexistent/hook"}]}),
            "hooks.createRuntime[0] /nonexistent/hook: exec: No such file or directory",
        ),
    ];
    for (tag, hooks, needle) in cases {
        let b = t.bundle(tag, &["true"], |c| c["hooks"] = hooks);
        create_fails(&t, &t.id(tag), &b, &[needle]);
    }
}
