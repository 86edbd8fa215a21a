//! `update` of a running container against the real kernel: new limits take effect
//! (forks refused, then allowed again), and every flag lands in its cgroup file.

mod cgroup_support;
mod common;

use cgroup_support::*;
use common::*;
use serde_json::json;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// 6. update

/// The fork-prober's log, "<iteration> <n>" per started sleep and "<iteration> end" when
/// the iteration is over: (iteration, sleeps started) of every finished iteration, and
/// the highest iteration seen at all.
fn iterations(log: &Path) -> (Vec<(u64, usize)>, u64) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut counts: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut ended = Vec::new();
    let mut last = 0;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(it), Some(what)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(it) = it.parse::<u64>() else { continue };
        last = last.max(it);
        if what == "end" {
            ended.push(it);
        } else {
            *counts.entry(it).or_default() += 1;
        }
    }
    let done = ended
        .into_iter()
        .map(|it| (it, counts.get(&it).copied().unwrap_or(0)))
        .collect();
    (done, last)
}

/// After a limit change at iteration `after`, wait for an iteration started later that
/// managed exactly `want` forks; none may manage more.
#[track_caller]
fn expect_forks(log: &Path, after: u64, want: usize) {
    let mut seen = vec![];
    let ok = wait_until(Duration::from_secs(30), || {
        let (done, _) = iterations(log);
        seen = done.into_iter().filter(|(it, _)| *it > after).collect();
        seen.iter().any(|(_, n)| *n == want)
    });
    assert!(
        ok,
        "no iteration after #{after} started exactly {want} sleeps: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, n)| *n <= want),
        "more than {want} forks after the limit: {seen:?}"
    );
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let Some(t) = Test::new("cg_update") else {
        return;
    };
    if !have_controllers(
        "update_changes_limits_of_a_running_container",
        &["memory", "pids", "cpu"],
    ) {
        return;
    }
    let out = t.mkdir("out");
    let log = out.join("log");
    // 4 MB of tmpfs ballast (unreclaimable without swap), then every ~0.5 s a subshell
    // tries to start 6 short sleeps; pid 1 itself needs only one more process at a time.
    let script = "head -c 4000000 /dev/zero > /dev/shm/ballast; it=0; while :; do it=$((it+1)); \
                  ( for i in 1 2 3 4 5 6; do sleep 0.3 & echo \"$it $i\" >> /out/log; done; wait ) 2>>/out/err; \
                  echo \"$it end\" >> /out/log; sleep 0.5; done";
    let (id, pid) = run_detached(&t, "c", &["sh", "-c", script], |c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
        bind_mount(c, &out, "/out", false);
    });
    let mem = cgroup_dir(pid, "memory");
    let pids = cgroup_dir(pid, "pids");
    let cpu = cgroup_dir(pid, "cpu");
    assert_eq!(read(&pids.join("pids.max")), "50");
    expect_forks(&log, 0, 6);

    // Flags.
    t.strata(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "7",
        "--cpu-quota",
        "30000",
        &id,
    ])
    .ok();
    let (_, at) = iterations(&log);
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (64 * MIB).to_string()
    );
    assert_eq!(read(&pids.join("pids.max")), "7");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "30000");
    // pid 1 + subshell + 5 sleeps.
    expect_forks(&log, at, 5);

    t.strata(&["update", "--pids-limit", "3", &id]).ok();
    let (_, at) = iterations(&log);
    assert_eq!(read(&pids.join("pids.max")), "3");
    expect_forks(&log, at, 1);
    let err = read(&out.join("err"));
    assert!(err.contains("can't fork"), "{err:?}");
    assert_eq!(t.status(&id), "running");

    // -r - : linux.resources JSON on stdin.
    let mut r = Running::spawn_stdin(&mut t.command(&["update", "-r", "-", &id]), Stdio::piped());
    {
        let mut stdin = r.child.stdin.take().unwrap();
        stdin
            .write_all(br#"{"pids": {"limit": 20}, "cpu": {"shares": 256, "period": 200000}}"#)
            .unwrap();
    }
    r.wait(TIMEOUT).ok();
    let (_, at) = iterations(&log);
    assert_eq!(read(&pids.join("pids.max")), "20");
    assert_eq!(read(&cpu.join("cpu.shares")), "256");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "200000");
    expect_forks(&log, at, 6);

    // -r FILE.
    let f = t.dir.join("res.json");
    fs::write(
        &f,
        r#"{"memory": {"limit": 100663296, "reservation": 33554432}}"#,
    )
    .unwrap();
    t.strata(&["update", "-r", f.to_str().unwrap(), &id]).ok();
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "100663296");
    assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "33554432");

    // A limit below what the container holds: the kernel refuses, the old value stays.
    let usage: u64 = read(&mem.join("memory.usage_in_bytes")).parse().unwrap();
    assert!(usage > 4_000_000, "ballast not charged: {usage}");
    let out_err = t.strata(&["update", "--memory", "1k", &id]);
    out_err.assert_error(&[
        "linux.resources.memory.limit",
        "1024",
        "memory.limit_in_bytes",
    ]);
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "100663296");
    assert_eq!(t.status(&id), "running");
    // Nothing to change, and garbage on stdin, are errors too.
    t.strata(&["update", &id])
        .assert_error(&["nothing to change"]);
    let mut r = Running::spawn_stdin(&mut t.command(&["update", "-r", "-", &id]), Stdio::piped());
    r.child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{not json")
        .unwrap();
    let bad = r.wait(TIMEOUT);
    assert_eq!(bad.code, 1, "{bad:#?}");
    assert_eq!(read(&pids.join("pids.max")), "20");

    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);

    // update of a stopped container.
    let (id2, _) = run_detached(&t, "stopped", &["true"], |_| {});
    t.wait_status(&id2, "stopped");
    t.strata(&["update", "--pids-limit", "5", &id2])
        .assert_error(&[&id2, "stopped"]);
    t.strata(&["delete", &id2]).ok();
    t.assert_no_leftovers(&id2);
}

#[test]
fn update_every_flag() {
    let Some(t) = Test::new("cg_upflags") else {
        return;
    };
    if !have_controllers("update_every_flag", &["memory", "cpu", "cpuset", "pids"]) {
        return;
    }
    let (id, pid) = run_detached(&t, "c", &["sleep", "1000"], |_| {});
    let mem = cgroup_dir(pid, "memory");
    let cpu = cgroup_dir(pid, "cpu");
    let cpuset = cgroup_dir(pid, "cpuset");
    let pids = cgroup_dir(pid, "pids");
    let up = |args: &[&str]| {
        let mut a = vec!["update"];
        a.extend_from_slice(args);
        a.push(&id);
        t.strata(&a).ok();
    };

    // cpuset: the init's affinity follows.
    let cpus = read(
        &hier("cpuset")
            .unwrap()
            .mountpoint
            .join("cpuset.effective_cpus"),
    );
    let last = cpus
        .split(',')
        .next_back()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    up(&["--cpuset-cpus", &last, "--cpuset-mems", "0"]);
    assert_eq!(read(&cpuset.join("cpuset.cpus")), last);
    assert_eq!(read(&cpuset.join("cpuset.mems")), "0");
    let allowed = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|s| s.trim().to_string())
        })
        .unwrap();
    assert_eq!(allowed, last);

    // cpu: a period lower than the quota in force must still work (period first).
    up(&[
        "--cpu-period",
        "200000",
        "--cpu-quota",
        "150000",
        "--cpu-share",
        "700",
    ]);
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "200000");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "150000");
    assert_eq!(read(&cpu.join("cpu.shares")), "700");
    up(&["--cpu-period", "50000", "--cpu-quota", "25000"]);
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
    up(&["--cpu-quota", "-1"]);
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
    if cpu.join("cpu.cfs_burst_us").exists() {
        up(&["--cpu-quota", "40000", "--cpu-burst", "4000"]);
        assert_eq!(read(&cpu.join("cpu.cfs_burst_us")), "4000");
    }
    if cpu.join("cpu.rt_runtime_us").exists() {
        up(&["--cpu-rt-period", "900000", "--cpu-rt-runtime", "20000"]);
        assert_eq!(read(&cpu.join("cpu.rt_period_us")), "900000");
        assert_eq!(read(&cpu.join("cpu.rt_runtime_us")), "20000");
    }
    if cpu.join("cpu.idle").exists() {
        up(&["--cpu-idle", "1"]);
        assert_eq!(read(&cpu.join("cpu.idle")), "1");
        up(&["--cpu-idle", "0"]);
        assert_eq!(read(&cpu.join("cpu.idle")), "0");
    }

    // memory, and memory+swap in both directions when the host accounts swap.
    up(&["--memory", "64m", "--memory-reservation", "8m"]);
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (64 * MIB).to_string()
    );
    assert_eq!(
        read(&mem.join("memory.soft_limit_in_bytes")),
        (8 * MIB).to_string()
    );
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        let both = |l: u64, s: u64| {
            assert_eq!(
                read(&mem.join("memory.limit_in_bytes")),
                (l * MIB).to_string()
            );
            assert_eq!(
                read(&mem.join("memory.memsw.limit_in_bytes")),
                (s * MIB).to_string()
            );
        };
        up(&["--memory", "64m", "--memory-swap", "128m"]);
        both(64, 128);
        // Both above the current memsw: swap must be written first.
        up(&["--memory", "200m", "--memory-swap", "256m"]);
        both(200, 256);
        // Both below the current limit: the limit must be written first.
        up(&["--memory", "32m", "--memory-swap", "48m"]);
        both(32, 48);
        // memory alone above memsw is refused by the kernel (docker documents this too).
        t.strata(&["update", "--memory", "100m", &id])
            .assert_error(&["linux.resources.memory.limit"]);
        both(32, 48);
        // swap below the limit is refused.
        t.strata(&["update", "--memory-swap", "16m", &id])
            .assert_error(&["linux.resources.memory.swap", "memory.memsw.limit_in_bytes"]);
        both(32, 48);
        up(&["--memory", "-1", "--memory-swap", "-1"]);
    } else {
        eprintln!("note: no memory.memsw.* on this host; swap updates not checked");
        up(&["--memory", "-1"]);
    }
    assert!(
        read(&mem.join("memory.limit_in_bytes"))
            .parse::<u64>()
            .unwrap()
            > 1 << 40
    );

    // pids: -1 is unlimited.
    up(&["--pids-limit", "12"]);
    assert_eq!(read(&pids.join("pids.max")), "12");
    up(&["--pids-limit", "-1"]);
    assert_eq!(read(&pids.join("pids.max")), "max");

    // Bad flag values are refused before anything is written.
    for bad in [["--memory", "lots"], ["--pids-limit", "x"]] {
        let out = t.strata(&["update", bad[0], bad[1], &id]);
        assert_ne!(out.code, 0, "{out:#?}");
    }
    assert_eq!(t.status(&id), "running");
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}
