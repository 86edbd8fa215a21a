//! Concurrent commands on one container, `state` under a held lock, and many fast exits without a hang.

mod common;

use common::*;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Every output of `cmds` run from one thread each, all at once.
fn race_mixed<'a>(t: &Test, cmds: &[Vec<&'a str>]) -> Vec<(&'a str, Output)> {
    std::thread::scope(|s| {
        let hs: Vec<_> = cmds
            .iter()
            .map(|c| s.spawn(move || (c[0], t.strata(c))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `state` output during a race: valid JSON for this container, or a clean error (which
/// should say "does not exist": see `state_racing_delete_says_does_not_exist`).
#[track_caller]
fn check_state(out: &Output, id: &str, allowed: &[&str]) {
    if out.code != 0 {
        return out.assert_error(&[id]);
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("corrupt state output ({e}): {out:#?}"));
    assert_eq!(v["id"], id);
    assert!(allowed.contains(&v["status"].as_str().unwrap()), "{out:#?}");
}

#[test]
fn parallel_state_and_delete_have_one_winner() {
    let Some(t) = Test::new("parallel") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    for round in 0..3 {
        let id = t.id(&round.to_string());
        t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
            .ok();
        // kill and state race on the running container.
        let cmds: Vec<Vec<&str>> = (0..12)
            .map(|i| {
                if i % 2 == 0 {
                    vec!["state", &id]
                } else {
                    vec!["kill", &id, "KILL"]
                }
            })
            .collect();
        let mut kills = 0;
        for (cmd, out) in race_mixed(&t, &cmds) {
            match (cmd, out.code) {
                ("state", _) => check_state(&out, &id, &["running", "stopped"]),
                (_, 0) => kills += 1,
                _ => out.assert_error(&[&id, "not running"]),
            }
        }
        assert!(kills >= 1);
        t.wait_status(&id, "stopped");
        // state and delete race on the stopped container: exactly one delete wins.
        let cmds: Vec<Vec<&str>> = (0..16)
            .map(|i| {
                if i % 4 == 0 {
                    vec!["state", &id]
                } else {
                    vec!["delete", &id]
                }
            })
            .collect();
        let results = race_mixed(&t, &cmds);
        let mut deleted = 0;
        for (cmd, out) in &results {
            match (*cmd, out.code) {
                ("state", _) => check_state(out, &id, &["stopped"]),
                (_, 0) => deleted += 1,
                _ => out.assert_error(&[&id, "does not exist"]),
            }
        }
        assert_eq!(deleted, 1, "exactly one delete must win: {results:#?}");
        t.strata(&["state", &id]).assert_error(&["does not exist"]);
        t.assert_no_leftovers(&id);
    }
}

/// runc: `delete --force` of a container that is gone succeeds quietly, also when it
/// was deleted by a concurrent command while this one waited for the lock.
#[test]
fn parallel_delete_force_is_idempotent() {
    let Some(t) = Test::new("parallel_force") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    for round in 0..3 {
        let id = t.id(&round.to_string());
        t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
            .ok();
        let cmds: Vec<Vec<&str>> = (0..18)
            .map(|i| match i % 3 {
                0 => vec!["state", &id],
                1 => vec!["kill", &id, "KILL"],
                _ => vec!["delete", "--force", &id],
            })
            .collect();
        for (cmd, out) in race_mixed(&t, &cmds) {
            match cmd {
                "state" => check_state(&out, &id, &["running", "stopped"]),
                "kill" if out.code != 0 => out.assert_error(&[&id]),
                "delete" => assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:#?}"),
                _ => {}
            }
        }
        t.strata(&["state", &id]).assert_error(&["does not exist"]);
        t.assert_no_leftovers(&id);
    }
}

/// `state` (which takes no lock) racing a `delete` reports "does not exist", not a
/// half-vanished state dir.
#[test]
fn state_racing_delete_says_does_not_exist() {
    let Some(t) = Test::new("state_race") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    for round in 0..150 {
        let id = t.id(&round.to_string());
        t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
        let failures: Vec<Output> = std::thread::scope(|s| {
            let pollers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let t0 = Instant::now();
                        loop {
                            let out = t.strata(&["state", &id]);
                            if out.code != 0 || t0.elapsed() > Duration::from_secs(10) {
                                return out;
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20));
            t.strata(&["delete", &id]).ok();
            pollers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for out in &failures {
            out.assert_error(&[&id, "does not exist"]);
        }
        t.assert_no_leftovers(&id);
    }
}

#[test]
fn state_answers_while_the_lock_is_held() {
    let Some(t) = Test::new("locked") else { return };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    // Hold the state dir's lock as a long-running strata command would.
    let dir = std::fs::File::open(t.root.join(&id)).unwrap();
    assert_eq!(unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) }, 0);
    let kill = Running::spawn(&mut t.command(&["kill", &id, "KILL"]));
    let t0 = Instant::now();
    let out = run_cmd(&mut t.command(&["state", &id]), Duration::from_secs(5));
    out.ok();
    assert!(out.stdout.contains("\"running\""), "{out:#?}");
    run_cmd(&mut t.command(&["list", "-q"]), Duration::from_secs(5)).ok();
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The kill waits for the lock: the container is still running.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.status(&id), "running", "kill did not wait for the lock");
    drop(dir);
    kill.wait(TIMEOUT).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn many_fast_exits_never_hang() {
    let Some(t) = Test::new("fast_exit") else {
        return;
    };
    let b = t.bundle("b", &["/bin/true"], |_| {});
    let t0 = Instant::now();
    for i in 0..200 {
        let id = t.id(&i.to_string());
        let out = run_cmd(
            &mut t.command(&["run", &id, "-b", b.to_str().unwrap()]),
            Duration::from_secs(5),
        );
        assert_eq!(out.code, 0, "run #{i}: {out:#?}");
        assert_eq!(out.stdout, "");
        t.assert_no_leftovers(&id);
    }
    eprintln!("200 runs of /bin/true in {:?}", t0.elapsed());
}

/// Run `args` from `n` threads at once; returns every output.
fn race(t: &Test, n: usize, args: &[&str]) -> Vec<Output> {
    let cmds = vec![args.to_vec(); n];
    race_mixed(t, &cmds).into_iter().map(|(_, o)| o).collect()
}

#[test]
fn parallel_create_and_start_have_one_winner() {
    let Some(t) = Test::new("race_create") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    for round in 0..3 {
        let id = t.id(&round.to_string());
        let outs = race(&t, 6, &["create", &id, "-b", b.to_str().unwrap()]);
        let winners = outs.iter().filter(|o| o.code == 0).count();
        assert_eq!(winners, 1, "{outs:#?}");
        for o in outs.iter().filter(|o| o.code != 0) {
            o.assert_error(&[&id, "already exists"]);
        }
        assert_eq!(t.status(&id), "created");
        assert_eq!(cgroup_dirs_of(&id).len(), cgroup_mounts().len());
        let outs = race(&t, 6, &["start", &id]);
        assert_eq!(outs.iter().filter(|o| o.code == 0).count(), 1, "{outs:#?}");
        for o in outs.iter().filter(|o| o.code != 0) {
            o.assert_error(&["running"]);
        }
        assert_eq!(t.status(&id), "running");
        t.strata(&["delete", "--force", &id]).ok();
        t.assert_no_leftovers(&id);
    }
}

#[test]
fn parallel_creates_under_a_new_shared_parent_cgroup() {
    // containerd's 4 parallel runs under a new /<namespace>: a create that finds the
    // parent just made by another, whose v1 cpuset is still empty, must fill it first
    // (the kernel refuses a child cpuset wider than its parent's with EACCES).
    let Some(t) = Test::new("par_parent") else {
        return;
    };
    for round in 0..4 {
        let parent = t.id(&format!("p{round}"));
        let ids: Vec<String> = (0..6).map(|i| t.id(&format!("r{round}c{i}"))).collect();
        let bundles: Vec<_> = ids
            .iter()
            .map(|id| {
                t.bundle(id, &["sleep", "1000"], |c| {
                    c["linux"]["cgroupsPath"] = serde_json::json!(format!("{parent}/{id}"));
                })
            })
            .collect();
        let cmds: Vec<Vec<&str>> = ids
            .iter()
            .zip(&bundles)
            .map(|(id, b)| vec!["create", id.as_str(), "-b", b.to_str().unwrap()])
            .collect();
        for (_, out) in race_mixed(&t, &cmds) {
            out.ok();
        }
        for d in cgroup_dirs_of(&parent) {
            let cpus = d.join("cpuset.cpus");
            if cpus.exists() && !d.join("cgroup.controllers").exists() {
                let v = std::fs::read_to_string(&cpus).unwrap();
                assert!(!v.trim().is_empty(), "{} is empty", cpus.display());
            }
        }
        for id in &ids {
            assert_eq!(t.status(id), "created");
            t.strata(&["delete", "--force", id]).ok();
            t.assert_no_leftovers(id);
        }
        assert!(cgroup_dirs_of(&parent).is_empty(), "{parent} left behind");
        let left: Vec<_> = std::fs::read_dir(&t.root).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_parent_cgroup_made_again_by_someone_else_is_left_alone() {
    // Root A makes the parent; root B's container keeps it busy when A's leaves, so A
    // keeps it noted. Once B's container goes (B never noted it: it stays, as with runc),
    // an admin removes it and makes it again. A's next container must not remove it.
    let (Some(a), Some(b)) = (Test::new("reborn_a"), Test::new("reborn_b")) else {
        return;
    };
    let parent = a.id("p");
    let under = |t: &Test, id: &str| {
        let bundle = t.bundle(id, &["sleep", "1000"], |c| {
            c["linux"]["cgroupsPath"] = serde_json::json!(format!("{parent}/{id}"));
        });
        t.strata(&["create", id, "-b", bundle.to_str().unwrap()])
            .ok();
    };
    let (c1, c2, c3) = (a.id("c1"), b.id("c2"), a.id("c3"));
    under(&a, &c1);
    under(&b, &c2);
    let dirs = cgroup_dirs_of(&parent);
    assert_eq!(dirs.len(), cgroup_mounts().len(), "{dirs:?}");
    a.strata(&["delete", "--force", &c1]).ok();
    b.strata(&["delete", "--force", &c2]).ok();
    assert_eq!(
        cgroup_dirs_of(&parent),
        dirs,
        "B removed a parent it did not make"
    );
    for d in &dirs {
        std::fs::remove_dir(d).unwrap();
        std::fs::create_dir(d).unwrap();
    }
    under(&a, &c3);
    a.strata(&["delete", "--force", &c3]).ok();
    a.assert_no_leftovers(&c3);
    assert_eq!(
        cgroup_dirs_of(&parent),
        dirs,
        "A removed a parent made again by another"
    );
    for d in &dirs {
        std::fs::remove_dir(d).unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(&a.root).unwrap().flatten().collect();
    assert!(left.is_empty(), "the stale note stays: {left:?}");
}

#[test]
fn a_closed_stdout_ends_state_quietly() {
    // `strata state ID | grep -q ...`: the reader may be gone before we write. runc dies
    // of SIGPIPE without a word; a panic message ("failed printing to stdout") is noise.
    let Some(t) = Test::new("epipe") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    for args in [
        vec!["state", id.as_str()],
        vec!["list"],
        vec!["ps", id.as_str()],
    ] {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        let out = t
            .command(&args)
            .stdout(std::process::Stdio::from(w))
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {out:?}"
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}
