//! cgroup v2 readers (runc's `libcontainer/cgroups/fs2`): one unified dir, whose files are
//! mapped onto the v1-shaped `Stats` that runc prints for both.

use super::{
    hugetlb_sizes, key_values, read, read_u64, Blkio, BlkioEntry, Hugetlb, MemoryEntry, Stats,
};
use std::path::Path;

fn key_value(dir: &Path, file: &str, key: &str) -> Option<u64> {
    key_values(&read(dir, file)?)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

pub(super) fn read_v2(dir: &Path, s: &mut Stats) {
    v2_cpu(dir, s);
    v2_memory(dir, s);
    v2_pids(dir, s);
    v2_io(dir, s);
    v2_hugetlb(dir, s);
}

/// cpu.stat exists even without the cpu controller (usage only).
fn v2_cpu(dir: &Path, s: &mut Stats) {
    let Some(st) = read(dir, "cpu.stat") else {
        return;
    };
    let (u, t) = (&mut s.cpu.usage, &mut s.cpu.throttling);
    for (k, v) in key_values(&st) {
        match k.as_str() {
            "usage_usec" => u.total = v.saturating_mul(1000),
            "user_usec" => u.user = v.saturating_mul(1000),
            "system_usec" => u.kernel = v.saturating_mul(1000),
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_usec" => t.throttled_time = v.saturating_mul(1000),
            _ => {}
        }
    }
}

/// memory[.swap].{current,max} plus peak and the "max" event count where the kernel has them.
fn v2_memory_entry(dir: &Path, name: &str) -> Option<MemoryEntry> {
    Some(MemoryEntry {
        usage: read_u64(dir, &format!("{name}.current"))?,
        limit: read_u64(dir, &format!("{name}.max")).unwrap_or(u64::MAX),
        max: read_u64(dir, &format!("{name}.peak")).unwrap_or(0),
        failcnt: key_value(dir, &format!("{name}.events"), "max").unwrap_or(0),
    })
}

fn v2_memory(dir: &Path, s: &mut Stats) {
    // Without the memory controller there is no memory.stat: nothing to report.
    let Some(st) = read(dir, "memory.stat") else {
        return;
    };
    let m = &mut s.memory;
    m.raw = key_values(&st).into_iter().collect();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    let Some(usage) = v2_memory_entry(dir, "memory") else {
        return;
    };
    // v1 reports memory+swap; v2's swap files count swap alone: add them up like runc
    // (which does so even without swap accounting, from zero). A swap peak would not
    // add up: no "max" for swap.
    let mut swap = v2_memory_entry(dir, "memory.swap").unwrap_or_default();
    swap.usage = swap.usage.saturating_add(usage.usage);
    if swap.limit != u64::MAX {
        swap.limit = swap.limit.saturating_add(usage.limit);
    }
    swap.max = 0;
    m.swap = swap;
    m.usage = usage;
}

fn v2_pids(dir: &Path, s: &mut Stats) {
    match read_u64(dir, "pids.current") {
        Some(current) => {
            s.pids.current = current;
            s.pids.limit = match read_u64(dir, "pids.max") {
                Some(u64::MAX) | None => 0,
                Some(v) => v,
            };
        }
        // No pids controller: count the processes, as runc does.
        None => {
            let procs = read(dir, "cgroup.procs").or_else(|| read(dir, "cgroup.threads"));
            if let Some(p) = procs {
                s.pids.current = p.lines().filter(|l| !l.trim().is_empty()).count() as u64;
                s.pids.limit = 0;
            }
        }
    }
}

/// io.stat "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ..." mapped onto v1's tables.
fn v2_io(dir: &Path, s: &mut Stats) {
    let Some(st) = read(dir, "io.stat") else {
        return;
    };
    let mut b = Blkio::default();
    for l in st.lines() {
        let mut it = l.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for item in it {
            let Some((key, val)) = item.split_once('=') else {
                continue;
            };
            let (op, table) = match key {
                "rbytes" => ("Read", &mut b.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut b.io_service_bytes_recursive),
                "rios" => ("Read", &mut b.io_serviced_recursive),
                "wios" => ("Write", &mut b.io_serviced_recursive),
                _ => continue,
            };
            if let Ok(value) = val.parse() {
                table.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value,
                });
            }
        }
    }
    s.blkio = b;
}

fn v2_hugetlb(dir: &Path, s: &mut Stats) {
    for size in hugetlb_sizes(dir, ".current") {
        let h = Hugetlb {
            usage: read_u64(dir, &format!("hugetlb.{size}.current")).unwrap_or(0),
            max: 0,
            failcnt: key_value(dir, &format!("hugetlb.{size}.events"), "max").unwrap_or(0),
        };
        s.hugetlb.insert(size, h);
    }
}

#[cfg(test)]
mod tests {
    use super::super::collect;
    use super::*;
    use std::fs;

    /// cgroup2 files in their kernel formats (this host's cgroup2 has no memory, pids or
    /// io controller to try them on): a plain dir with cgroup.controllers counts as v2.
    #[test]
    fn cgroup2_files() {
        let dir = std::env::temp_dir().join(format!("strata-v2-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for (f, text) in [
            ("cgroup.controllers", "cpu io memory pids hugetlb\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\n\
                 nr_throttled 2\nthrottled_usec 30\n",
            ),
            ("memory.stat", "anon 4096\nfile 8192\n"),
            ("memory.current", "12288\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "65536\n"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "100\n"),
            ("memory.swap.max", "1000\n"),
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
            (
                "io.stat",
                "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 3\n"),
            ("hugetlb.2MB.rsvd.current", "0\n"),
        ] {
            fs::write(dir.join(f), text).unwrap();
        }
        let s = collect(std::slice::from_ref(&dir));
        fs::remove_dir_all(&dir).unwrap();
        let u = &s.cpu.usage;
        assert_eq!((u.total, u.user, u.kernel), (1_500_000, 1_000_000, 500_000));
        let t = &s.cpu.throttling;
        assert_eq!(
            (t.periods, t.throttled_periods, t.throttled_time),
            (7, 2, 30_000)
        );
        let m = &s.memory;
        assert_eq!(m.cache, 8192);
        assert_eq!(
            m.usage,
            MemoryEntry {
                limit: u64::MAX,
                usage: 12288,
                max: 65536,
                failcnt: 5
            }
        );
        // memory + swap, as v1 counts it; an unlimited memory.max keeps it unlimited.
        assert_eq!((m.swap.usage, m.swap.limit), (12388, u64::MAX));
        assert_eq!((s.pids.current, s.pids.limit), (4, 0));
        let b = serde_json::to_value(&s.blkio).unwrap();
        assert_eq!(
            b,
            serde_json::json!({
                "ioServiceBytesRecursive": [
                    {"major": 8, "op": "Read", "value": 1024},
                    {"major": 8, "op": "Write", "value": 2048}],
                "ioServicedRecursive": [
                    {"major": 8, "op": "Read", "value": 1},
                    {"major": 8, "op": "Write", "value": 2}]
            })
        );
        assert_eq!(
            serde_json::to_value(&s.hugetlb).unwrap(),
            serde_json::json!({"2MB": {"usage": 2097152, "failcnt": 3}})
        );
    }
}
