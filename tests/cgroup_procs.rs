//! A container's processes through its cgroups: ps, kill --all, delete --force without a
//! pid namespace, and events (stats, the OOM stream).

mod cgroup_support;
mod common;

use cgroup_support::*;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// 5. ps

#[test]
fn ps_lists_the_container_processes() {
    let Some(t) = Test::new("cg_ps") else {
        return;
    };
    let (id, pid) = run_detached(
        &t,
        "c",
        &["sh", "-c", "sleep 1001 & exec sleep 1002"],
        |_| {},
    );
    assert!(
        wait_until(Duration::from_secs(20), || pids_running(&id, "sleep 1001")
            .len()
            == 1
            && pids_running(&id, "sleep 1002") == vec![pid]),
        "{:?}",
        processes_in_cgroup(&id)
    );
    let child = pids_running(&id, "sleep 1001")[0];

    let out = t.strata(&["ps", "--format", "json", &id]);
    out.ok();
    let mut listed: Vec<i32> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ps json ({e}): {out:#?}"));
    listed.sort();
    let mut want = vec![pid, child];
    want.sort();
    assert_eq!(listed, want, "{out:#?}");
    let out = t.strata(&["ps", "-f", "json", &id]);
    out.ok();
    assert_eq!(
        serde_json::from_str::<Value>(out.stdout.trim())
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Table: ps -ef's header and exactly the container's two lines.
    let out = t.strata(&["ps", &id]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.len() == 3, "{out:#?}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    let col = header.iter().position(|h| *h == "PID").expect("PID header");
    let mut rows: Vec<i32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    rows.sort();
    assert_eq!(rows, want, "{out:#?}");
    assert!(out.stdout.contains("sleep 1001"), "{out:#?}");
    assert!(out.stdout.contains("sleep 1002"), "{out:#?}");

    // Custom ps arguments after `--`.
    let out = t.strata(&["ps", &id, "--", "-o", "pid,comm"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"],
        "{out:#?}"
    );
    assert_eq!(lines.len(), 3, "{out:#?}");
    for l in &lines[1..] {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 2, "{out:#?}");
        assert!(want.contains(&f[0].parse().unwrap()), "{out:#?}");
        assert_eq!(f[1], "sleep", "{out:#?}");
    }

    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
    // ps of a container that is gone is an error; of a stopped one, empty (as in runc).
    let out = t.strata(&["ps", &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    let (id2, _) = run_detached(&t, "stopped", &["true"], |_| {});
    t.wait_status(&id2, "stopped");
    let out = t.strata(&["ps", "-f", "json", &id2]);
    out.ok();
    assert_eq!(out.stdout, "null\n");
    t.strata(&["delete", &id2]).ok();
    t.assert_no_leftovers(&id2);
}

// ---------------------------------------------------------------------------------------
// 7. kill --all, delete --force without a pid namespace

#[test]
fn kill_all_signals_every_process() {
    let Some(t) = Test::new("cg_killall") else {
        return;
    };
    let out = t.mkdir("out");
    let script = "trap 'echo term >> /out/log' TERM; for i in 1 2 3; do sleep 1000 & done; \
                  echo ready > /out/ready; while :; do sleep 0.1; done";
    let (id, pid) = run_detached(&t, "c", &["sh", "-c", script], |c| {
        bind_mount(c, &out, "/out", false)
    });
    wait_file(&out.join("ready"));
    wait_for_pids(&id, "sleep 1000", 3);
    let sleeps = pids_running(&id, "sleep 1000");

    t.strata(&["kill", "--all", &id, "TERM"]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || sleeps
            .iter()
            .all(|p| !process_alive(*p))),
        "children survived kill --all TERM: {:?}",
        processes_in_cgroup(&id)
    );
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(
            out.join("log")
        )
        .is_ok_and(|s| s.contains("term"))),
        "pid 1's trap did not run"
    );
    assert!(process_alive(pid), "pid 1 traps TERM and should live on");
    assert_eq!(t.status(&id), "running");

    t.strata(&["kill", "-a", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn delete_force_without_pid_namespace_kills_the_whole_cgroup() {
    let Some(t) = Test::new("cg_nopidns") else {
        return;
    };
    let out = t.mkdir("out");
    let script =
        "sleep 1000 & sleep 1000 & setsid sleep 1000 & echo ready > /out/ready; exec sleep 1001";
    let (id, pid) = run_detached(&t, "c", &["sh", "-c", script], |c| {
        no_pid_ns(c);
        bind_mount(c, &out, "/out", false);
    });
    wait_file(&out.join("ready"));
    wait_for_pids(&id, "sleep 1000", 3);
    let mut all: Vec<i32> = processes_in_cgroup(&id)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(all.contains(&pid));
    assert_eq!(all.len(), 4, "{:?}", processes_in_cgroup(&id));
    // kill --all also reaches them without a pid namespace: STOP them all first.
    t.strata(&["kill", "--all", &id, "STOP"]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || all
            .iter()
            .all(|p| proc_state(*p) == "T")),
        "not every process stopped: {:?}",
        all.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    t.strata(&["delete", "--force", &id]).ok();
    all.retain(|p| process_alive(*p));
    assert!(all.is_empty(), "survived delete --force: {all:?}");
    t.assert_no_leftovers(&id);
}

/// `events --stats` prints one runc-shaped stats event with the container's real numbers,
/// and the streaming `events` reports an `oom` event when the kernel OOM-kills in it.
#[test]
fn events_stats_and_oom_stream() {
    let Some(t) = Test::new("cg_events") else {
        return;
    };
    if !have_controllers("events_stats_and_oom_stream", &["memory", "pids"]) {
        return;
    }
    let limit = 32 * MIB;
    // pid 1 sleeps, then a child builds a 100 MB string and is OOM-killed; pid 1 lives on.
    let script = r#"sleep 1; awk 'BEGIN{s=sprintf("%100000000s",""); print length(s)}'; sleep 30"#;
    let b = t.bundle("ev", &["sh", "-c", script], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": limit});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    let id = t.id("ev");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();

    let snap = t.strata(&["events", "--stats", &id]);
    snap.ok();
    let ev: Value =
        serde_json::from_str(snap.stdout.trim()).expect("events --stats is one JSON object");
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], json!(limit), "{ev}");
    assert_eq!(ev["data"]["pids"]["limit"], json!(50), "{ev}");
    assert!(
        ev["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "{ev}"
    );
    assert!(
        ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );

    // The stream: stats every 500 ms, and the oom event within the awk's lifetime.
    let stream = Running::spawn(&mut t.command(&["events", "--interval", "500ms", &id]));
    let seen = wait_until(Duration::from_secs(10), || {
        let dir = id_dir(&id, "memory");
        read(&dir.join("memory.oom_control")).contains("oom_kill 1")
    });
    assert!(seen, "the hog was never OOM-killed");
    std::thread::sleep(Duration::from_millis(500));
    t.strata(&["delete", "--force", &id]).ok();
    // The stream ends by itself once the container is gone.
    let out = stream.wait(Duration::from_secs(5));
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["type"] == "oom" && e["id"] == id.as_str()),
        "no oom event: {}",
        out.stdout
    );
    assert!(
        lines.iter().filter(|e| e["type"] == "stats").count() >= 2,
        "stats events: {}",
        out.stdout
    );
    t.assert_no_leftovers(&id);
}
