//! `cgroups::stats` against the real kernel: our own cgroups on every v1 hierarchy and
//! the unified one, a real child that burns CPU, allocates memory and forks, then the
//! numbers and the runc-shaped JSON. If runc is installed, its `events --stats` output on
//! a real container is compared key by key with ours on the same cgroups.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata::cgroups::stats::{self, collect, event_json, event_line, Stats};

const MEM_LIMIT: u64 = 256 << 20;
const PIDS_LIMIT: u64 = 17;
/// dash does ~400k loop iterations a second here: ~50 ms of CPU.
const BURN: u32 = 20_000;

static N: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Our own cgroups: created dirs (removed on drop, after killing whatever is inside).
struct Cgroups {
    /// Controller dir name ("memory", "unified") → the new dir.
    dirs: BTreeMap<String, PathBuf>,
    child: Option<Child>,
}

impl Cgroups {
    /// A fresh uniquely named cgroup below our own on each wanted hierarchy, or None
    /// (after printing SKIP) if one of them is not mounted.
    fn new(want: &[&str]) -> Option<Cgroups> {
        let hs = strata::cgroups::hierarchies().expect("hierarchies");
        let name = format!(
            "strata-stats-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut cg = Cgroups {
            dirs: BTreeMap::new(),
            child: None,
        };
        for w in want {
            let Some(h) = hs.iter().find(|h| {
                if *w == "unified" {
                    h.v2
                } else {
                    !h.v2 && h.controllers.iter().any(|c| c == w)
                }
            }) else {
                println!("SKIP: no {w} cgroup hierarchy");
                return None;
            };
            let rel = h.own.strip_prefix(&h.mount_root).unwrap_or(&h.own);
            let rel = rel.strip_prefix("/").unwrap_or(rel);
            let dir = h.mountpoint.join(rel).join(&name);
            // "cpu,cpuacct" mounts: cpu and cpuacct are the same dir.
            if !cg.dirs.values().any(|d| d == &dir) {
                fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            }
            cg.dirs.insert(w.to_string(), dir);
        }
        Some(cg)
    }

    fn dir(&self, c: &str) -> &Path {
        &self.dirs[c]
    }

    fn all(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.dedup();
        v
    }

    fn v1(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|(k, _)| *k != "unified")
            .map(|(_, d)| d.clone())
            .collect();
        v.dedup();
        v
    }

    fn set(&self, c: &str, file: &str, val: &str) {
        let p = self.dir(c).join(file);
        fs::write(&p, val).unwrap_or_else(|e| panic!("write {val} to {}: {e}", p.display()));
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for _ in 0..100 {
            let mut any = false;
            for d in self.dirs.values() {
                for pid in fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    any = true;
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if !any {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for d in self.dirs.values() {
            for _ in 0..200 {
                match fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// A shell that joins `dirs`, burns CPU, holds 20 MB for a moment, leaves two sleepers,
/// says "ready", then burns CPU again each time it reads a line and says "done".
fn spawn_worker(cg: &mut Cgroups, dirs: &[PathBuf]) -> (ChildStdin, BufReader<ChildStdout>) {
    let joins: String = dirs
        .iter()
        .map(|d| format!("echo $$ > '{}/cgroup.procs' || exit 1; ", d.display()))
        .collect();
    let script = format!(
        "{joins}
        burn() {{ i=0; while [ $i -lt {BURN} ]; do i=$((i+1)); done; }}
        burn
        head -c 20000000 /dev/zero | tail > /dev/null
        sleep 1000 & sleep 1000 &
        echo ready
        while read x; do burn; echo done; done"
    );
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    cg.child = Some(child);
    expect_line(&mut out, "ready");
    (stdin, out)
}

fn expect_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut l = String::new();
    out.read_line(&mut l).expect("read worker");
    assert_eq!(l.trim(), want, "worker said {l:?}");
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(|k| k.as_str())
        .collect()
}

#[test]
fn v1_hierarchies_real_numbers_and_runc_json() {
    if !is_root() {
        println!("SKIP: not root");
        return;
    }
    let Some(mut cg) = Cgroups::new(&["cpu", "cpuacct", "memory", "pids", "blkio"]) else {
        return;
    };
    cg.set("memory", "memory.limit_in_bytes", &MEM_LIMIT.to_string());
    cg.set("pids", "pids.max", &PIDS_LIMIT.to_string());
    // 20 ms per 100 ms: ~50 ms of burning must be throttled.
    cg.set("cpu", "cpu.cfs_period_us", "100000");
    cg.set("cpu", "cpu.cfs_quota_us", "20000");
    let dirs = cg.v1();
    let (mut stdin, mut out) = spawn_worker(&mut cg, &dirs);

    let s1 = collect(&dirs);
    let u = &s1.cpu.usage;
    assert!(u.total > 0, "{s1:#?}");
    let ncpu = fs::read_to_string(cg.dir("cpuacct").join("cpuacct.usage_percpu"))
        .unwrap()
        .split_whitespace()
        .count();
    assert_eq!(u.percpu.len(), ncpu);
    assert_eq!(u.percpu_user.len(), ncpu);
    assert_eq!(u.percpu_kernel.len(), ncpu);
    // Everything inside is idle now: the per-CPU numbers add up to the total.
    let sum: u64 = u.percpu.iter().sum();
    assert!(
        sum.abs_diff(u.total) <= u.total / 100,
        "{sum} vs {}",
        u.total
    );
    // cpuacct.stat ticks → ns: multiples of 10 ms.
    assert_eq!(u.user % 10_000_000, 0);
    assert_eq!(u.kernel % 10_000_000, 0);
    assert!(s1.cpu.throttling.periods > 0, "{:?}", s1.cpu.throttling);
    assert!(
        s1.cpu.throttling.throttled_periods > 0,
        "{:?}",
        s1.cpu.throttling
    );
    assert!(
        s1.cpu.throttling.throttled_time > 0,
        "{:?}",
        s1.cpu.throttling
    );

    let m = &s1.memory;
    assert!(m.usage.usage > 0, "{m:#?}");
    assert_eq!(m.usage.limit, MEM_LIMIT);
    assert!(
        m.usage.max >= 20_000_000,
        "the 20 MB tail shows in the peak: {m:#?}"
    );
    assert!(m.usage.max >= m.usage.usage);
    assert!(m.raw.contains_key("total_cache"), "{:?}", m.raw.keys());
    assert_eq!(m.cache, m.raw["cache"]);
    assert!(m.raw["hierarchical_memory_limit"] <= MEM_LIMIT);
    // memsw exists on this kind of kernel: mem+swap ≥ mem.
    if cg
        .dir("memory")
        .join("memory.memsw.usage_in_bytes")
        .exists()
    {
        // Two files read one after the other: allow for a charge or uncharge between.
        assert!(m.swap.usage + (4 << 20) >= m.usage.usage, "{m:#?}");
    }
    assert_eq!(s1.pids.current, 3, "sh and two sleeps: {:?}", s1.pids);
    assert_eq!(s1.pids.limit, PIDS_LIMIT);
    assert!(s1.hugetlb.is_empty() || cg.dirs.contains_key("hugetlb"));

    // More work → more CPU time.
    writeln!(stdin, "go").unwrap();
    expect_line(&mut out, "done");
    let s2 = collect(&dirs);
    assert!(
        s2.cpu.usage.total > s1.cpu.usage.total,
        "{} then {}",
        s1.cpu.usage.total,
        s2.cpu.usage.total
    );
    assert!(s2.cpu.throttling.periods >= s1.cpu.throttling.periods);
    assert_eq!(s2.pids.current, 3);

    // runc's JSON: names, nesting, omitempty.
    let v = event_json("stats-test", &s2);
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "stats-test");
    let d = &v["data"];
    assert_eq!(
        keys(d),
        vec![
            "blkio",
            "cpu",
            "cpuset",
            "hugetlb",
            "intel_rdt",
            "memory",
            "network_interfaces",
            "pids"
        ]
    );
    assert_eq!(
        keys(&d["cpu"]["usage"]),
        vec![
            "kernel",
            "percpu",
            "percpu_kernel",
            "percpu_user",
            "total",
            "user"
        ]
    );
    assert_eq!(
        keys(&d["cpu"]["throttling"]),
        vec!["periods", "throttledPeriods", "throttledTime"]
    );
    // omitempty: "cache" only when there is page cache.
    assert_eq!(d["memory"].get("cache").is_some(), s2.memory.cache > 0);
    for k in ["usage", "swap", "kernel", "kernelTCP", "raw"] {
        assert!(
            d["memory"].get(k).is_some(),
            "memory.{k} missing: {}",
            d["memory"]
        );
    }
    assert_eq!(d["memory"]["usage"]["limit"], MEM_LIMIT);
    assert!(d["memory"]["usage"]["max"].as_u64().unwrap() >= 20_000_000);
    assert_eq!(d["memory"]["usage"]["failcnt"], 0);
    assert_eq!(
        d["pids"],
        serde_json::json!({"current": 3, "limit": PIDS_LIMIT})
    );
    assert!(d["hugetlb"].is_object());
    assert_eq!(d["intel_rdt"], serde_json::json!({}));
    assert!(d["network_interfaces"].is_null());
    assert!(d["blkio"].is_object());
    for (_, entries) in d["blkio"].as_object().unwrap() {
        for e in entries.as_array().unwrap() {
            assert!(e.get("value").is_some() || e.get("op").is_some(), "{e}");
        }
    }
    // The text form keeps runc's order and says the same.
    let line = event_line("stats-test", &s2);
    println!("{line}");
    assert!(
        line.starts_with(r#"{"type":"stats","id":"stats-test","data":{"cpu":{"usage":{"total":"#)
    );
    assert!(line.contains(r#""throttling":{"periods":"#), "{line}");
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
}

#[test]
fn cgroup2_dir_alone_and_hybrid_precedence() {
    if !is_root() {
        println!("SKIP: not root");
        return;
    }
    let Some(mut cg) = Cgroups::new(&["pids", "unified"]) else {
        return;
    };
    cg.set("pids", "pids.max", &PIDS_LIMIT.to_string());
    let uni = cg.dir("unified").to_path_buf();
    let all = cg.all();
    let (mut stdin, mut out) = spawn_worker(&mut cg, &all);

    // cgroup2 alone: cpu.stat is there even without the cpu controller; pids either from
    // the pids controller or counted from cgroup.procs.
    let s1 = collect(std::slice::from_ref(&uni));
    assert!(s1.cpu.usage.total > 0, "{s1:#?}");
    assert_eq!(s1.cpu.usage.total % 1000, 0, "usage_usec → ns");
    assert!(s1.cpu.usage.user + s1.cpu.usage.kernel > 0);
    assert!(s1.cpu.usage.percpu.is_empty());
    assert_eq!(s1.pids.current, 3, "{:?}", s1.pids);
    if uni.join("memory.current").exists() {
        assert!(s1.memory.usage.usage > 0);
        assert!(!s1.memory.raw.is_empty());
    } else {
        assert_eq!(s1.memory, stats::Memory::default());
    }
    let sizes: Vec<String> = fs::read_dir(&uni)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            let s = n.strip_prefix("hugetlb.")?.strip_suffix(".current")?;
            (!s.contains('.')).then(|| s.to_string())
        })
        .collect();
    for s in &sizes {
        assert_eq!(s1.hugetlb[s].failcnt, 0);
        assert_eq!(s1.hugetlb[s].max, 0, "no peak on cgroup2");
    }
    let j = event_json("v2", &s1);
    for s in &sizes {
        assert_eq!(j["data"]["hugetlb"][s], serde_json::json!({"failcnt": 0}));
    }
    assert_eq!(j["data"]["cpuset"]["cpu_exclusive"], 0);
    assert!(j["data"]["cpuset"].get("cpus").is_none());

    writeln!(stdin, "go").unwrap();
    expect_line(&mut out, "done");
    let s2 = collect(std::slice::from_ref(&uni));
    assert!(s2.cpu.usage.total > s1.cpu.usage.total);

    // Hybrid: like runc's v1 driver, the unified dir is not read when v1 dirs are given.
    let h = collect(&cg.all());
    assert_eq!(h.pids.limit, PIDS_LIMIT);
    assert_eq!(h.pids.current, 3);
    assert_eq!(h.cpu.usage.total, 0, "no cpuacct dir given: {h:#?}");
    assert!(h.hugetlb.is_empty());
}

#[test]
fn missing_and_foreign_dirs_give_empty_stats() {
    let tmp = std::env::temp_dir().join(format!("strata-stats-empty-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    let s = collect(&[PathBuf::from("/nonexistent/strata/cgroup"), tmp.clone()]);
    fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(s, Stats::default());
    assert_eq!(collect(&[]), Stats::default());
}

// ---------------------------------------------------------------------------------------
// Against runc itself

fn runc() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("runc"))
        .find(|p| p.is_file())
}

/// Same keys at every level; arrays of the same length.
fn same_shape(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            assert_eq!(kx, ky, "keys differ at {at}");
            for k in x.keys() {
                same_shape(&x[k], &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "lengths differ at {at}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same_shape(p, q, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(_), Value::Number(_)) | (Value::Null, Value::Null) => {}
        _ => assert_eq!(a, b, "at {at}"),
    }
}

#[test]
fn same_json_shape_as_runc_events_stats() {
    if !is_root() {
        println!("SKIP: not root");
        return;
    }
    let Some(runc) = runc() else {
        println!("SKIP: runc is not installed");
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rootfs = manifest.join("bundles/busybox/rootfs");
    if !rootfs.join("bin/sh").exists() {
        println!("SKIP: no busybox rootfs at {}", rootfs.display());
        return;
    }
    let tag = format!("strata-stats-runc-{}", std::process::id());
    let tmp = std::env::temp_dir().join(&tag);
    let (bundle, root) = (tmp.join("bundle"), tmp.join("root"));
    fs::create_dir_all(&bundle).unwrap();
    let mut cfg: Value = serde_json::from_str(
        &fs::read_to_string(manifest.join("bundles/busybox/config.json")).unwrap(),
    )
    .unwrap();
    cfg["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    cfg["process"]["terminal"] = Value::Bool(false);
    cfg["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000 & sleep 1000 & wait"
    ]);
    cfg["linux"]["cgroupsPath"] = Value::String(format!("/{tag}"));
    cfg["linux"]["resources"]["memory"] = serde_json::json!({"limit": MEM_LIMIT});
    cfg["linux"]["resources"]["pids"] = serde_json::json!({"limit": PIDS_LIMIT});
    fs::write(bundle.join("config.json"), cfg.to_string()).unwrap();

    struct Cleanup(PathBuf, PathBuf, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new(&self.0)
                .arg("--root")
                .arg(&self.1)
                .args(["delete", "-f", &self.2])
                .output();
            let _ = fs::remove_dir_all(self.1.parent().unwrap());
        }
    }
    let _cleanup = Cleanup(runc.clone(), root.clone(), tag.clone());
    let errlog = tmp.join("runc.err");
    let st = Command::new(&runc)
        .arg("--root")
        .arg(&root)
        .args(["run", "-d", "-b"])
        .arg(&bundle)
        .arg(&tag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // The container inherits runc's stdio: no pipe, or we would wait for its EOF.
        .stderr(fs::File::create(&errlog).unwrap())
        .status()
        .unwrap();
    if !st.success() {
        let err = fs::read_to_string(&errlog).unwrap_or_default();
        println!("SKIP: runc run failed: {err}");
        return;
    }
    // Let the busy loop finish and the sleepers start.
    let state: Value = serde_json::from_slice(
        &Command::new(&runc)
            .arg("--root")
            .arg(&root)
            .args(["state", &tag])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let hs = strata::cgroups::hierarchies().unwrap();
    let procfile = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut paths = Vec::new();
    for h in &hs {
        let line = procfile.lines().find(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls) = (it.next(), it.next().unwrap_or(""));
            if h.v2 {
                ctrls.is_empty()
            } else {
                let set: Vec<&str> = ctrls.split(',').collect();
                h.controllers.iter().all(|c| set.contains(&c.as_str()))
            }
        });
        if let Some(l) = line {
            let p = l.splitn(3, ':').nth(2).unwrap();
            let rel = Path::new(p)
                .strip_prefix(&h.mount_root)
                .unwrap_or(Path::new(p));
            paths.push(h.mountpoint.join(rel.strip_prefix("/").unwrap_or(rel)));
        }
    }
    let pids_dir = paths
        .iter()
        .find(|p| p.join("pids.current").exists())
        .cloned();
    let settled = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        pids_dir
            .as_ref()
            .and_then(|d| fs::read_to_string(d.join("pids.current")).ok())
            .is_some_and(|s| s.trim() == "3")
    });
    assert!(settled, "container never reached 3 tasks");
    std::thread::sleep(Duration::from_millis(300));

    let theirs = Command::new(&runc)
        .arg("--root")
        .arg(&root)
        .args(["events", "--stats", &tag])
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let ours_stats = collect(&paths);
    let theirs_text = String::from_utf8(theirs.stdout).unwrap();
    let theirs: Value = serde_json::from_str(theirs_text.trim()).unwrap();
    let ours: Value = serde_json::from_str(&event_line(&tag, &ours_stats)).unwrap();
    println!("runc:  {}", theirs_text.trim());
    println!("ours:  {}", event_line(&tag, &ours_stats));

    same_shape(&ours, &theirs, "event");
    let (o, t) = (&ours["data"], &theirs["data"]);
    for stable in [
        o["cpuset"] == t["cpuset"],
        o["pids"] == t["pids"],
        o["memory"]["usage"]["limit"] == t["memory"]["usage"]["limit"],
        o["memory"]["swap"]["limit"] == t["memory"]["swap"]["limit"],
        o["memory"]["raw"]["hierarchical_memory_limit"]
            == t["memory"]["raw"]["hierarchical_memory_limit"],
        o["cpu"]["usage"]["total"] == t["cpu"]["usage"]["total"],
        o["hugetlb"] == t["hugetlb"],
        o["blkio"] == t["blkio"],
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            stable.1,
            "stable value #{} differs:\nours  {o}\nrunc  {t}",
            stable.0
        );
    }
    // Same key order in the text, too (Go prints struct fields in order, map keys sorted).
    let order = |s: &str| -> Vec<usize> {
        [
            "\"cpu\"",
            "\"cpuset\"",
            "\"memory\"",
            "\"pids\"",
            "\"blkio\"",
            "\"hugetlb\"",
            "\"intel_rdt\"",
        ]
        .iter()
        .map(|k| s.find(k).unwrap())
        .collect()
    };
    let (ol, tl) = (order(&event_line(&tag, &ours_stats)), order(&theirs_text));
    assert!(ol.windows(2).all(|w| w[0] < w[1]) && tl.windows(2).all(|w| w[0] < w[1]));
}
