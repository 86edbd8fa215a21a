//! Container lifecycle through the CLI: create/start/state/list/kill/delete, run, kill signals, spec, logs.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// A script for a container that traps TERM (pid 1 ignores un-handled signals from the
/// host), tells the host it is ready through /out/ready, and exits 42 on TERM.
const TRAP_TERM: &str =
    "trap 'echo term >> /out/log; exit 42' TERM; echo ready > /out/ready; while :; do sleep 0.1; done";

fn wait_file(p: &Path) {
    assert!(
        wait_until(Duration::from_secs(20), || p.exists()),
        "{} never appeared",
        p.display()
    );
}

/// The row for `id` in `strata list` (table) output, split on whitespace.
fn table_row(t: &Test, id: &str) -> Vec<String> {
    let out = t.strata(&["list"]);
    out.ok();
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{out:#?}"
    );
    lines
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|r| r.first().map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("{id} not in list: {out:#?}"))
}

/// The entry for `id` in `strata list -f json`.
fn json_entry(t: &Test, id: &str) -> Value {
    let out = t.strata(&["list", "-f", "json"]);
    out.ok();
    let all: Vec<Value> = serde_json::from_str(&out.stdout).expect("list -f json is a JSON array");
    all.into_iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in list -f json: {out:#?}"))
}

#[test]
fn create_start_kill_delete_with_state_at_each_step() {
    let Some(t) = Test::new("lifecycle") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle(
        "b",
        &["sh", "-c", "echo started > /out/started; exec sleep 1000"],
        |c| bind_mount(c, &out, "/out", false),
    );
    let id = t.id("c");
    let pid_file = t.dir.join("init.pid");
    t.strata(&[
        "create",
        "-b",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ])
    .ok();

    // created: a live init that has not run the program yet
    let st = t.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.0.2-dev");
    assert_eq!(st["bundle"], b.to_str().unwrap());
    assert_eq!(st["rootfs"], test_rootfs().to_str().unwrap());
    assert!(
        st["created"].as_str().is_some_and(|s| s.contains('T')),
        "{st}"
    );
    assert!(st["owner"].is_string(), "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{st}");
    assert!(process_alive(pid), "init pid {pid} is not alive");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert!(t.root.join(&id).join("exec.fifo").exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(!out.join("started").exists(), "program ran before start");

    // list: table, json, quiet
    let row = table_row(&t, &id);
    assert_eq!(row[1], pid.to_string());
    assert_eq!(row[2], "created");
    assert_eq!(row[3], b.to_str().unwrap());
    let e = json_entry(&t, &id);
    assert_eq!(e["status"], "created");
    assert_eq!(e["pid"], pid);
    assert_eq!(t.strata(&["list", "-q"]).ok().stdout, format!("{id}\n"));

    // start: running, and the program really runs
    t.strata(&["start", &id]).ok();
    assert_eq!(t.status(&id), "running");
    assert_eq!(t.pid(&id), pid);
    wait_file(&out.join("started"));
    assert_eq!(
        fs::read_to_string(out.join("started")).unwrap(),
        "started\n"
    );
    assert_eq!(table_row(&t, &id)[2], "running");

    // kill KILL: stopped, pid 0
    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    assert_eq!(t.pid(&id), 0);
    assert_eq!(json_entry(&t, &id)["status"], "stopped");

    // delete: gone
    t.strata(&["delete", &id]).ok();
    t.strata(&["state", &id]).assert_error(&["does not exist"]);
    assert_eq!(t.strata(&["list", "-q"]).ok().stdout, "");
    t.assert_no_leftovers(&id);
}

#[test]
fn create_with_flags_after_the_id() {
    let Some(t) = Test::new("flags_after_id") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", "echo hi > /out/m"], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let pid_file = t.dir.join("pid");
    t.strata(&[
        "create",
        &id,
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
    ])
    .ok();
    let st = t.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["bundle"], b.to_str().unwrap());
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        st["pid"].to_string()
    );
    t.strata(&["start", &id]).ok();
    wait_file(&out.join("m"));
    t.wait_status(&id, "stopped");
    assert_eq!(fs::read_to_string(out.join("m")).unwrap(), "hi\n");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn run_captures_output_and_deletes_the_container() {
    let Some(t) = Test::new("run_output") else {
        return;
    };
    let out = t.run(
        "c",
        &["sh", "-c", "echo out-line; echo err-line >&2"],
        |_| {},
    );
    out.ok();
    assert_eq!(out.stdout, "out-line\n");
    assert_eq!(out.stderr, "err-line\n");
    t.strata(&["state", &t.id("c")])
        .assert_error(&["does not exist"]);
}

#[test]
fn run_exit_codes() {
    let Some(t) = Test::new("run_exit") else {
        return;
    };
    for (tag, script, want) in [
        ("zero", "exit 0", 0),
        ("three", "exit 3", 3),
        ("max", "exit 255", 255),
    ] {
        let out = t.run(tag, &["sh", "-c", script], |_| {});
        assert_eq!(out.code, want, "{script}: {out:#?}");
    }
    // A pid-namespace init ignores even SIGKILL from inside its namespace, so the
    // self-kill test runs without a pid namespace: the shell really dies of signal 9.
    let out = t.run(
        "selfkill",
        &["sh", "-c", "kill -9 $$; echo survived"],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "pid");
        },
    );
    assert_eq!(out.code, 137, "{out:#?}");
    assert_eq!(out.stdout, "");
    let out = t.run(
        "selfterm",
        &["sh", "-c", "kill -TERM $$; echo survived"],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "pid");
        },
    );
    assert_eq!(out.code, 128 + 15, "{out:#?}");
}

#[test]
fn run_killed_from_the_host_exits_137() {
    let Some(t) = Test::new("run_hostkill") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", TRAP_TERM], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    wait_file(&out.join("ready"));
    t.strata(&["kill", &id, "KILL"]).ok();
    let res = run.wait(TIMEOUT);
    assert_eq!(res.code, 137, "{res:#?}");
    t.assert_no_leftovers(&id);
}

#[test]
fn run_detached_returns_and_keeps_running() {
    let Some(t) = Test::new("run_detach") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    let out = run_cmd(
        &mut t.command(&["run", "-d", &id, "-b", b.to_str().unwrap()]),
        Duration::from_secs(20),
    );
    out.ok();
    assert_eq!(t.status(&id), "running");
    let pid = t.pid(&id);
    assert!(process_alive(pid));
    t.strata(&["delete", &id]).assert_error(&["running"]);
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let Some(t) = Test::new("run_keep") else {
        return;
    };
    let b = t.bundle("b", &["sh", "-c", "exit 7"], |_| {});
    let id = t.id("c");
    let out = t.strata(&["run", "--keep", &id, "-b", b.to_str().unwrap()]);
    assert_eq!(out.code, 7, "{out:#?}");
    let st = t.state(&id);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["pid"], 0);
    assert_eq!(t.strata(&["list", "-q"]).ok().stdout, format!("{id}\n"));
    // still there a moment later: nothing deletes it behind our back
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(t.status(&id), "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn kill_with_named_and_numbered_signals() {
    let Some(t) = Test::new("kill_forms") else {
        return;
    };
    for (i, sig) in ["TERM", "SIGTERM", "15", "sigterm"].iter().enumerate() {
        let out = t.mkdir(&format!("out{i}"));
        let b = t.bundle(&format!("b{i}"), &["sh", "-c", TRAP_TERM], |c| {
            bind_mount(c, &out, "/out", false)
        });
        let id = t.id(&format!("c{i}"));
        let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
        wait_file(&out.join("ready"));
        t.strata(&["kill", &id, sig]).ok();
        let res = run.wait(TIMEOUT);
        assert_eq!(res.code, 42, "kill {sig}: {res:#?}");
        assert_eq!(fs::read_to_string(out.join("log")).unwrap(), "term\n");
        t.assert_no_leftovers(&id);
    }
}

#[test]
fn kill_defaults_to_term() {
    let Some(t) = Test::new("kill_default") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", TRAP_TERM], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    wait_file(&out.join("ready"));
    t.strata(&["kill", &id]).ok();
    assert_eq!(run.wait(TIMEOUT).code, 42);
    t.assert_no_leftovers(&id);
}

#[test]
fn kill_all_signals_every_process() {
    let Some(t) = Test::new("kill_all") else {
        return;
    };
    let out = t.mkdir("out");
    // A child shell with its own TERM trap; the init waits for it in its own trap.
    let script = r#"
        (trap 'echo child >> /out/log; exit 0' TERM; echo x > /out/child-ready; while :; do sleep 0.1; done) &
        c=$!
        trap "wait $c; echo init >> /out/log; exit 42" TERM
        echo x > /out/ready
        while :; do sleep 0.1; done"#;
    let b = t.bundle("b", &["sh", "-c", script], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    wait_file(&out.join("ready"));
    wait_file(&out.join("child-ready"));
    t.strata(&["kill", "--all", &id, "TERM"]).ok();
    let res = run.wait(TIMEOUT);
    assert_eq!(res.code, 42, "{res:#?}");
    assert_eq!(
        fs::read_to_string(out.join("log")).unwrap(),
        "child\ninit\n"
    );
    t.assert_no_leftovers(&id);
}

#[test]
fn kill_unknown_signal_leaves_container_alone() {
    let Some(t) = Test::new("kill_unknown") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", TRAP_TERM], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    wait_file(&out.join("ready"));
    let pid = t.pid(&id);
    for bad in ["SIGFOO", "FOO", "65", "999"] {
        t.strata(&["kill", &id, bad]).assert_error(&["signal"]);
    }
    // 0 is kill(2)'s liveness check, as in runc: fine while running, an error once stopped.
    t.strata(&["kill", &id, "0"]).ok();
    t.strata(&["kill", &id, "SIGFOO"])
        .assert_error(&["unknown signal", "SIGFOO"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(t.status(&id), "running");
    assert_eq!(t.pid(&id), pid);
    assert!(!out.join("log").exists(), "a signal reached the container");
    t.strata(&["kill", &id, "TERM"]).ok();
    t.wait_status(&id, "stopped");
    assert_eq!(fs::read_to_string(out.join("log")).unwrap(), "term\n");
    t.strata(&["kill", &id, "0"]).assert_error(&["not running"]);
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn foreground_run_forwards_signals() {
    let Some(t) = Test::new("run_forward") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", TRAP_TERM], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    wait_file(&out.join("ready"));
    // SIGTERM to the strata process itself reaches the container's init.
    assert_eq!(
        unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) },
        0
    );
    let res = run.wait(TIMEOUT);
    assert_eq!(res.code, 42, "{res:#?}");
    assert_eq!(fs::read_to_string(out.join("log")).unwrap(), "term\n");
    t.assert_no_leftovers(&id);
}

#[test]
fn foreground_run_passes_stdin() {
    let Some(t) = Test::new("run_stdin") else {
        return;
    };
    let b = t.bundle("b", &["sh", "-c", "tr a-z A-Z"], |_| {});
    let input = t.dir.join("input");
    fs::write(&input, "piped in\n").unwrap();
    let id = t.id("c");
    let mut cmd = t.command(&["run", &id, "-b", b.to_str().unwrap()]);
    let res = Running::spawn_stdin(&mut cmd, fs::File::open(&input).unwrap().into()).wait(TIMEOUT);
    res.ok();
    assert_eq!(res.stdout, "PIPED IN\n");
    t.assert_no_leftovers(&id);
}

/// runc's behaviour: a foreground `run` whose container is force-deleted by another
/// command reports the kill (137) and says nothing.
#[test]
fn foreground_run_survives_delete_force() {
    let Some(t) = Test::new("run_deleted") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle("b", &["sh", "-c", TRAP_TERM], |c| {
        bind_mount(c, &out, "/out", false)
    });
    let id = t.id("c");
    let run = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    wait_file(&out.join("ready"));
    t.strata(&["delete", "--force", &id]).ok();
    let res = run.wait(TIMEOUT);
    t.assert_no_leftovers(&id);
    assert_eq!((res.code, res.stderr.as_str()), (137, ""), "{res:#?}");
}

#[test]
fn bundle_defaults_to_the_current_directory() {
    let Some(t) = Test::new("bundle_cwd") else {
        return;
    };
    let b = t.bundle("b", &["echo", "from-cwd-bundle"], |_| {});
    let id = t.id("c");
    let mut cmd = t.command(&["run", &id]);
    cmd.current_dir(&b);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(out.stdout, "from-cwd-bundle\n");
    t.assert_no_leftovers(&id);
    // A relative -b is resolved against the cwd, and `state` shows it absolute.
    let mut cmd = t.command(&["create", &id, "-b", "b"]);
    cmd.current_dir(&t.dir);
    run_cmd(&mut cmd, TIMEOUT).ok();
    assert_eq!(t.state(&id)["bundle"], b.to_str().unwrap());
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn state_shows_annotations() {
    let Some(t) = Test::new("annotations") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |c| {
        c["annotations"] = serde_json::json!({"org.strata.test": "yes", "k": "v w"})
    });
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let st = t.state(&id);
    assert_eq!(st["annotations"]["org.strata.test"], "yes", "{st}");
    assert_eq!(st["annotations"]["k"], "v w", "{st}");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn pid_file_for_run_detached() {
    let Some(t) = Test::new("run_pidfile") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    let pf = t.dir.join("run.pid");
    t.strata(&[
        "run",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "-b",
        b.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(fs::read_to_string(&pf).unwrap(), t.pid(&id).to_string());
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn spec_writes_a_runnable_default_config() {
    let Some(t) = Test::new("spec") else { return };
    let b = t.mkdir("b");
    t.strata(&["spec", "-b", b.to_str().unwrap()]).ok();
    let cfg_path = b.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(cfg["root"]["readonly"], true);
    // Refuses to overwrite.
    t.strata(&["spec", "-b", b.to_str().unwrap()])
        .assert_error(&["exists"]);
    // Made non-interactive and pointed at the rootfs, it runs.
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["sh", "-c", "hostname; echo $$"]);
    set_root(&mut cfg, test_rootfs());
    let b = t.bundle_from("b2", &cfg);
    let id = t.id("c");
    let out = t.strata(&["run", &id, "-b", b.to_str().unwrap()]);
    out.ok();
    assert_eq!(out.stdout, "strata\n1\n");
    t.assert_no_leftovers(&id);
    // --rootless asks for a user namespace mapping our uid.
    let r = t.mkdir("rootless");
    t.strata(&["spec", "--rootless", "-b", r.to_str().unwrap()])
        .ok();
    let rl: Value = serde_json::from_slice(&fs::read(r.join("config.json")).unwrap()).unwrap();
    assert!(rl["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    assert_eq!(rl["linux"]["uidMappings"][0]["hostID"], 0);
}

/// Validates `file` against the runtime-spec's config schema (as shipped in `schema`),
/// with Python's jsonschema; Some(errors) (empty when valid), or None when no python3
/// with jsonschema is installed.
fn schema_errors(schema: &Path, file: &Path) -> Option<String> {
    const CHECK: &str = r#"
import json, pathlib, sys
import jsonschema
d = pathlib.Path(sys.argv[1])
store = {}
for f in d.glob("*.json"):
    s = json.load(open(f))
    store["file://" + str(f)] = s
    store[f.name] = s
schema = store["config-schema.json"]
resolver = jsonschema.RefResolver("file://" + str(d) + "/", schema, store=store)
v = jsonschema.Draft4Validator(schema, resolver=resolver)
for e in v.iter_errors(json.load(open(sys.argv[2]))):
    print("/".join(map(str, e.path)) + ": " + e.message)
"#;
    // Debian's python3-jsonschema is for the system python, whatever else is on PATH.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).is_file())?;
    let out = std::process::Command::new(python)
        .args(["-W", "ignore", "-c", CHECK])
        .arg(schema)
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 jsonschema: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `strata spec` (and `--rootless`) writes a config the runtime-spec's own JSON schema
/// accepts. The schema comes from Debian's golang-github-opencontainers-specs-dev.
#[test]
fn spec_output_validates_against_the_runtime_spec_schema() {
    let Some(t) = Test::new("spec_schema") else {
        return;
    };
    let schema = Path::new("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema");
    if !schema.join("config-schema.json").is_file() {
        eprintln!("SKIP: spec_output_validates_against_the_runtime_spec_schema: no runtime-spec schema at {} (golang-github-opencontainers-specs-dev)", schema.display());
        return;
    }
    for (tag, args) in [("plain", vec![]), ("rootless", vec!["--rootless"])] {
        let b = t.mkdir(tag);
        let mut a = vec!["spec", "-b", b.to_str().unwrap()];
        a.extend(args);
        t.strata(&a).ok();
        let Some(errors) = schema_errors(schema, &b.join("config.json")) else {
            eprintln!("SKIP: spec_output_validates_against_the_runtime_spec_schema: no python3 with jsonschema");
            return;
        };
        assert_eq!(errors, "", "strata spec {tag}: schema errors");
    }
    // The check can fail: a config the schema refuses is reported.
    let bad = t.dir.join("bad.json");
    fs::write(&bad, r#"{"ociVersion": 1, "process": {"cwd": 5}}"#).unwrap();
    assert_ne!(schema_errors(schema, &bad).unwrap(), "");
}

#[test]
fn log_file_in_json() {
    let Some(t) = Test::new("log_json") else {
        return;
    };
    let log = t.dir.join("strata.log");
    let ls = log.to_str().unwrap();
    let ghost = t.id("ghost");
    t.strata(&["--log", ls, "--log-format", "json", "state", &ghost])
        .assert_error(&["does not exist"]);
    let b = t.bundle("b", &["true"], |_| {});
    let id = t.id("c");
    t.strata(&[
        "--log",
        ls,
        "--log-format",
        "json",
        "--debug",
        "run",
        &id,
        "-b",
        b.to_str().unwrap(),
    ])
    .ok();
    t.assert_no_leftovers(&id);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "error"
            && l["msg"].as_str().unwrap().contains(&ghost)
            && l["time"].is_string()),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "debug"),
        "--debug logged nothing: {text}"
    );
}

#[test]
fn without_pid_namespace_leftover_children_are_killed() {
    let Some(t) = Test::new("no_pidns") else {
        return;
    };
    let script = "sleep 1000 & echo $! > /out/child; exit 3";
    let out = t.mkdir("out");
    let edit = |c: &mut Value| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
        bind_mount(c, &out, "/out", false);
    };
    // Foreground: run returns the init's code and reaps the orphaned sleep.
    let res = t.run("fg", &["sh", "-c", script], edit);
    assert_eq!(res.code, 3, "{res:#?}");
    let child: i32 = fs::read_to_string(out.join("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!process_alive(child), "background child {child} survived");
    // Detached: stopped once the init exits, though its child lives on; delete kills it.
    let b = t.bundle("d", &["sh", "-c", script], edit);
    let id = t.id("d");
    fs::remove_file(out.join("child")).unwrap();
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    wait_file(&out.join("child"));
    t.wait_status(&id, "stopped");
    assert!(
        !processes_in_cgroup(&id).is_empty(),
        "the child should still be there"
    );
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}
