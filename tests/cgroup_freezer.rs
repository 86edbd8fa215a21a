//! Pause and resume through the freezer against the real kernel: a running and a created
//! container, update and ps of a paused one, SIGKILL and delete --force of a paused one.

mod cgroup_support;
mod common;

use cgroup_support::*;
use common::*;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// 4. freezer: pause / resume

#[test]
fn pause_freezes_and_resume_thaws() {
    let Some(t) = Test::new("cg_pause") else {
        return;
    };
    if !have_controllers("pause_freezes_and_resume_thaws", &["freezer"]) {
        return;
    }
    let out = t.mkdir("out");
    let counter = out.join("counter");
    let script =
        "sleep 1000 & i=0; while :; do i=$((i+1)); echo $i >> /out/counter; sleep 0.05; done";
    let (id, pid) = run_detached(&t, "c", &["sh", "-c", script], |c| {
        bind_mount(c, &out, "/out", false)
    });
    assert!(wait_until(Duration::from_secs(20), || file_len(&counter) > 10));
    assert_eq!(t.status(&id), "running");

    t.strata(&["pause", &id]).ok();
    assert_eq!(t.status(&id), "paused");
    let freezer = cgroup_dir(pid, "freezer");
    let fstate = read(&freezer.join("freezer.state"));
    let all = processes_in_cgroup(&id);
    assert!(all.len() >= 2, "{all:?}");
    for (p, cmd) in &all {
        let s = proc_state(*p);
        assert!(
            s == "D" || fstate == "FROZEN",
            "{p} ({cmd}) is in state {s} while freezer.state is {fstate}"
        );
    }
    assert_eq!(fstate, "FROZEN");
    let frozen_len = file_len(&counter);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        file_len(&counter),
        frozen_len,
        "the counter grew while paused"
    );
    // `list` agrees.
    let list = t.strata(&["list", "-f", "json"]);
    list.ok();
    let entries: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    let e = entries.iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert_eq!(e["status"], "paused", "{e}");
    // Pausing again is refused or harmless, never a crash; it stays paused.
    let again = t.strata(&["pause", &id]);
    assert!(again.code == 0 || again.code == 1, "{again:#?}");
    assert_eq!(t.status(&id), "paused");

    t.strata(&["resume", &id]).ok();
    assert_eq!(t.status(&id), "running");
    assert_eq!(read(&freezer.join("freezer.state")), "THAWED");
    assert!(
        wait_until(Duration::from_secs(5), || file_len(&counter)
            > frozen_len + 10),
        "the counter did not grow again after resume"
    );
    // resume of a running container is an error.
    t.strata(&["resume", &id]).assert_error(&[&id, "running"]);
    assert_eq!(t.status(&id), "running");
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);

    // pause of a stopped container is an error.
    let (id2, _) = run_detached(&t, "stopped", &["true"], |_| {});
    t.wait_status(&id2, "stopped");
    t.strata(&["pause", &id2]).assert_error(&[&id2, "stopped"]);
    t.strata(&["resume", &id2]).assert_error(&[&id2, "stopped"]);
    assert_eq!(t.status(&id2), "stopped");
    t.strata(&["delete", &id2]).ok();
    t.assert_no_leftovers(&id2);
    // pause of a container that does not exist.
    let ghost = t.id("ghost");
    let out = t.strata(&["pause", &ghost]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains(&ghost), "{out:#?}");
}

// ---------------------------------------------------------------------------------------
// 8. delete --force of a paused container; no cgroup dir on any hierarchy afterwards

#[test]
fn delete_force_of_a_paused_container() {
    let Some(t) = Test::new("cg_delpaused") else {
        return;
    };
    if !have_controllers("delete_force_of_a_paused_container", &["freezer"]) {
        return;
    }
    let (id, pid) = run_detached(
        &t,
        "c",
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1001"],
        |_| {},
    );
    wait_for_pids(&id, "sleep 1000", 2);
    let procs: Vec<i32> = processes_in_cgroup(&id)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(procs.len(), 3);
    // Present on every hierarchy, v1 and unified alike, while it lives.
    let hs = hierarchies();
    for h in &hs {
        let d = find_dirs_named(&h.mountpoint, &id);
        assert_eq!(d.len(), 1, "{id} on {}: {d:?}", h.mountpoint.display());
    }
    if hier("").is_none() {
        eprintln!("note: no cgroup2 hierarchy on this host; only v1 checked");
    }
    t.strata(&["pause", &id]).ok();
    assert_eq!(t.status(&id), "paused");
    // Plain delete refuses a paused container.
    t.strata(&["delete", &id]).assert_error(&[&id, "paused"]);
    assert_eq!(t.status(&id), "paused");
    let t0 = Instant::now();
    t.strata(&["delete", "--force", &id]).ok();
    assert!(t0.elapsed() < Duration::from_secs(10));
    for p in &procs {
        assert!(!process_alive(*p), "{p} survived (init {pid})");
    }
    for h in &hs {
        let d = find_dirs_named(&h.mountpoint, &id);
        assert!(d.is_empty(), "left on {}: {d:?}", h.mountpoint.display());
    }
    t.assert_no_leftovers(&id);
    // Idempotent.
    t.strata(&["delete", "--force", &id]).ok();

    // After a plain create + delete (never started) too.
    let b = t.bundle("created", &["true"], |_| {});
    let id2 = t.id("created");
    t.strata(&["create", &id2, "-b", b.to_str().unwrap()]).ok();
    assert_eq!(cgroup_dirs_of(&id2).len(), hs.len());
    t.strata(&["delete", &id2]).ok();
    t.assert_no_leftovers(&id2);
}

#[test]
fn update_of_a_paused_container_and_ps_of_it() {
    let Some(t) = Test::new("cg_uppaused") else {
        return;
    };
    if !have_controllers(
        "update_of_a_paused_container_and_ps_of_it",
        &["pids", "freezer"],
    ) {
        return;
    }
    let (id, pid) = run_detached(&t, "c", &["sleep", "1000"], |_| {});
    t.strata(&["pause", &id]).ok();
    t.strata(&["update", "--pids-limit", "9", &id]).ok();
    assert_eq!(read(&cgroup_dir(pid, "pids").join("pids.max")), "9");
    let out = t.strata(&["ps", "-f", "json", &id]);
    out.ok();
    assert_eq!(
        serde_json::from_str::<Vec<i32>>(out.stdout.trim()).unwrap(),
        vec![pid]
    );
    assert_eq!(t.status(&id), "paused");
    t.strata(&["resume", &id]).ok();
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

// ---------------------------------------------------------------------------------------
// Pause corners: a created container; SIGKILL of a paused one

/// Thaws a container's cgroups when dropped, so that a failing test can still clean up.
struct ThawOnDrop(Vec<PathBuf>);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            let _ = fs::write(d.join("cgroup.freeze"), "0");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_and_resume_of_a_created_container() {
    let Some(t) = Test::new("cg_pausecreated") else {
        return;
    };
    if !have_controllers("pause_and_resume_of_a_created_container", &["freezer"]) {
        return;
    }
    let out = t.mkdir("out");
    let b = t.bundle(
        "c",
        &["sh", "-c", "echo started > /out/started; exec sleep 1000"],
        |c| bind_mount(c, &out, "/out", false),
    );
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    let _thaw = ThawOnDrop(vec![cgroup_dir(pid, "freezer")]);
    t.strata(&["pause", &id]).ok();
    assert_eq!(
        read(&cgroup_dir(pid, "freezer").join("freezer.state")),
        "FROZEN"
    );
    // runc reports a frozen container as paused, whatever it was before.
    assert_eq!(t.status(&id), "paused");
    t.strata(&["resume", &id]).ok();
    assert_eq!(t.status(&id), "created");
    t.strata(&["start", &id]).ok();
    wait_file(&out.join("started"));
    // And a created + paused container can be deleted promptly.
    let (id2, pid2) = {
        let b2 = t.bundle("d", &["true"], |_| {});
        let id2 = t.id("d");
        t.strata(&["create", &id2, "-b", b2.to_str().unwrap()]).ok();
        let p = t.pid(&id2);
        (id2, p)
    };
    let _thaw2 = ThawOnDrop(vec![cgroup_dir(pid2, "freezer")]);
    t.strata(&["pause", &id2]).ok();
    let t0 = Instant::now();
    t.strata(&["delete", "--force", &id2]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "delete --force took {:?}",
        t0.elapsed()
    );
    t.assert_no_leftovers(&id2);
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn sigkill_reaches_a_paused_container() {
    let Some(t) = Test::new("cg_killpaused") else {
        return;
    };
    if !have_controllers("sigkill_reaches_a_paused_container", &["freezer"]) {
        return;
    }
    let (id, pid) = run_detached(&t, "c", &["sleep", "1000"], |_| {});
    t.strata(&["pause", &id]).ok();
    assert_eq!(t.status(&id), "paused");
    t.strata(&["kill", &id, "KILL"]).ok();
    let ok = wait_until(Duration::from_secs(5), || !process_alive(pid));
    let st = t.status(&id);
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
    assert!(ok, "init {pid} still alive 5 s after SIGKILL; status {st}");
    assert_eq!(st, "stopped");
}
