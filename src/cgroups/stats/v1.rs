//! cgroup v1 readers (runc's `libcontainer/cgroups/fs`): every controller is a hierarchy of
//! its own, so each reader runs on every dir and fills only what that dir has.

use super::{
    hugetlb_sizes, key_values, read, read_u64, Blkio, BlkioEntry, Hugetlb, MemoryEntry, Stats,
};
use std::path::Path;

/// runc hard-codes USER_HZ (`cpuacct.stat` ticks) as 100.
const CLOCK_TICKS: u64 = 100;

fn numbers(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// "0-3,5" → [0, 1, 2, 3, 5].
fn cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.trim().parse::<u16>().ok()),
        }
    }
    out
}

pub(super) fn read_v1(dir: &Path, s: &mut Stats) {
    v1_cpuacct(dir, s);
    v1_cpu(dir, s);
    v1_cpuset(dir, s);
    v1_memory(dir, s);
    v1_pids(dir, s);
    v1_blkio(dir, s);
    v1_hugetlb(dir, s);
}

fn v1_cpuacct(dir: &Path, s: &mut Stats) {
    let Some(total) = read_u64(dir, "cpuacct.usage") else {
        return;
    };
    let u = &mut s.cpu.usage;
    u.total = total;
    if let Some(st) = read(dir, "cpuacct.stat") {
        for (k, v) in key_values(&st) {
            match k.as_str() {
                "user" => u.user = v.saturating_mul(1_000_000_000 / CLOCK_TICKS),
                "system" => u.kernel = v.saturating_mul(1_000_000_000 / CLOCK_TICKS),
                _ => {}
            }
        }
    }
    u.percpu = read(dir, "cpuacct.usage_percpu")
        .map(|t| numbers(&t))
        .unwrap_or_default();
    // "cpu user system" header, then one line per CPU.
    if let Some(all) = read(dir, "cpuacct.usage_all") {
        for l in all.lines().skip(1) {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() != 3 {
                continue;
            }
            if let (Ok(user), Ok(sys)) = (f[1].parse(), f[2].parse()) {
                u.percpu_user.push(user);
                u.percpu_kernel.push(sys);
            }
        }
    } else {
        u.percpu_user = read(dir, "cpuacct.usage_percpu_user")
            .map(|t| numbers(&t))
            .unwrap_or_default();
        u.percpu_kernel = read(dir, "cpuacct.usage_percpu_sys")
            .map(|t| numbers(&t))
            .unwrap_or_default();
    }
}

fn v1_cpu(dir: &Path, s: &mut Stats) {
    let Some(st) = read(dir, "cpu.stat") else {
        return;
    };
    let t = &mut s.cpu.throttling;
    for (k, v) in key_values(&st) {
        match k.as_str() {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_time" => t.throttled_time = v,
            _ => {}
        }
    }
}

fn v1_cpuset(dir: &Path, s: &mut Stats) {
    let Some(cpus) = read(dir, "cpuset.cpus") else {
        return;
    };
    let c = &mut s.cpuset;
    c.cpus = cpu_list(&cpus);
    c.mems = read(dir, "cpuset.mems")
        .map(|m| cpu_list(&m))
        .unwrap_or_default();
    let u = |f: &str| read_u64(dir, f).unwrap_or(0);
    c.cpu_exclusive = u("cpuset.cpu_exclusive");
    c.mem_hardwall = u("cpuset.mem_hardwall");
    c.mem_exclusive = u("cpuset.mem_exclusive");
    c.memory_migrate = u("cpuset.memory_migrate");
    c.memory_spread_page = u("cpuset.memory_spread_page");
    c.memory_spread_slab = u("cpuset.memory_spread_slab");
    c.memory_pressure = u("cpuset.memory_pressure");
    c.sched_load_balance = u("cpuset.sched_load_balance");
    c.sched_relax_domain_level = read(dir, "cpuset.sched_relax_domain_level")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
}

/// memory[.<name>].{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}.
fn v1_memory_entry(dir: &Path, name: &str) -> MemoryEntry {
    let f = |what: &str| read_u64(dir, &format!("{name}.{what}")).unwrap_or(0);
    MemoryEntry {
        limit: f("limit_in_bytes"),
        usage: f("usage_in_bytes"),
        max: f("max_usage_in_bytes"),
        failcnt: f("failcnt"),
    }
}

fn v1_memory(dir: &Path, s: &mut Stats) {
    let Some(st) = read(dir, "memory.stat") else {
        return;
    };
    let m = &mut s.memory;
    m.raw = key_values(&st).into_iter().collect();
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = v1_memory_entry(dir, "memory");
    m.swap = v1_memory_entry(dir, "memory.memsw");
    m.kernel = v1_memory_entry(dir, "memory.kmem");
    m.kernel_tcp = v1_memory_entry(dir, "memory.kmem.tcp");
}

fn v1_pids(dir: &Path, s: &mut Stats) {
    let Some(current) = read_u64(dir, "pids.current") else {
        return;
    };
    s.pids.current = current;
    s.pids.limit = match read_u64(dir, "pids.max") {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    };
}

/// A blkio file: "MAJ:MIN Op value" or "MAJ:MIN value" lines, "Total N" skipped.
/// None if the file is missing, unreadable, malformed or has no entry (runc's nil).
fn blkio_file(dir: &Path, file: &str) -> Option<Vec<BlkioEntry>> {
    let text = read(dir, file)?;
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split([' ', ':']).filter(|x| !x.is_empty()).collect();
        if f.len() < 3 {
            if (f.len() == 2 && f[0] == "Total") || f.is_empty() {
                continue;
            }
            return None;
        }
        let (op, val) = if f.len() == 4 {
            (f[2].to_string(), f[3])
        } else {
            (String::new(), f[2])
        };
        out.push(BlkioEntry {
            major: f[0].parse().ok()?,
            minor: f[1].parse().ok()?,
            op,
            value: val.parse().ok()?,
        });
    }
    (!out.is_empty()).then_some(out)
}

fn v1_blkio(dir: &Path, s: &mut Stats) {
    type Field = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let sectors: Field = |b| &mut b.sectors_recursive;
    let svc_time: Field = |b| &mut b.io_service_time_recursive;
    let wait: Field = |b| &mut b.io_wait_time_recursive;
    let merged: Field = |b| &mut b.io_merged_recursive;
    let queued: Field = |b| &mut b.io_queued_recursive;
    let time: Field = |b| &mut b.io_time_recursive;
    let serviced: Field = |b| &mut b.io_serviced_recursive;
    let bytes: Field = |b| &mut b.io_service_bytes_recursive;
    // runc's order: BFQ debug, BFQ, CFQ, throttle recursive, throttle. A group is used if
    // its first file has entries; a later file without entries ends the search.
    let groups: [&[(&str, Field)]; 5] = [
        &[
            ("blkio.bfq.sectors_recursive", sectors),
            ("blkio.bfq.io_service_time_recursive", svc_time),
            ("blkio.bfq.io_wait_time_recursive", wait),
            ("blkio.bfq.io_merged_recursive", merged),
            ("blkio.bfq.io_queued_recursive", queued),
            ("blkio.bfq.time_recursive", time),
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.sectors_recursive", sectors),
            ("blkio.io_service_time_recursive", svc_time),
            ("blkio.io_wait_time_recursive", wait),
            ("blkio.io_merged_recursive", merged),
            ("blkio.io_queued_recursive", queued),
            ("blkio.time_recursive", time),
            ("blkio.io_serviced_recursive", serviced),
            ("blkio.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", serviced),
            ("blkio.throttle.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced", serviced),
            ("blkio.throttle.io_service_bytes", bytes),
        ],
    ];
    for group in groups {
        for (i, (file, field)) in group.iter().enumerate() {
            match blkio_file(dir, file) {
                Some(entries) => *field(&mut s.blkio) = entries,
                None if i == 0 => break,
                None => return,
            }
            if i == group.len() - 1 {
                return;
            }
        }
    }
}

fn v1_hugetlb(dir: &Path, s: &mut Stats) {
    for size in hugetlb_sizes(dir, ".usage_in_bytes") {
        let f = |what: &str| read_u64(dir, &format!("hugetlb.{size}.{what}")).unwrap_or(0);
        let h = Hugetlb {
            usage: f("usage_in_bytes"),
            max: f("max_usage_in_bytes"),
            failcnt: f("failcnt"),
        };
        s.hugetlb.insert(size, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn parses_cpu_lists_like_runc() {
        assert_eq!(cpu_list("0-3,5\n"), vec![0, 1, 2, 3, 5]);
        assert_eq!(cpu_list("\n"), Vec::<u16>::new());
    }

    #[test]
    fn blkio_lines() {
        let dir = std::env::temp_dir().join(format!("strata-blkio-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("blkio.throttle.io_serviced_recursive"),
            "8:0 Read 3\n8:0 Write 4\nTotal 7\n",
        )
        .unwrap();
        fs::write(
            dir.join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        )
        .unwrap();
        fs::write(dir.join("blkio.throttle.io_serviced"), "Total 0\n").unwrap();
        let mut s = Stats::default();
        v1_blkio(&dir, &mut s);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
        assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 4096);
        let j = serde_json::to_value(&s.blkio).unwrap();
        assert_eq!(
            j["ioServiceBytesRecursive"][1],
            serde_json::json!({"major": 8, "op": "Write"})
        );
    }
}
