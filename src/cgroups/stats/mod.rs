//! `events --stats`: read a container's cgroup counters into runc's `types.Stats` shape.
//!
//! Field names, nesting, units and `omitempty` follow runc 1.1 (`types/events.go` and the
//! `libcontainer/cgroups/fs` / `fs2` readers): a Go struct field without `omitempty` (or
//! a nested struct, which Go never omits) is always printed, an `omitempty` number, slice,
//! string or map is left out when zero/empty. Like runc's cgroupfs driver on a hybrid
//! host, the cgroup2 dir is only read when no v1 dir is given (runc's v1 manager ignores
//! the unified path for stats). Missing controllers or files leave their fields zero.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

mod v1;
mod v2;

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn zero(v: &u64) -> bool {
    *v == 0
}

/// runc-shaped stats of a container (serde Serialize, field names as runc's JSON).
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Stats {
    /// CPU time and CFS throttling.
    pub cpu: Cpu,
    /// The v1 cpuset settings (all zero on cgroup2, as in runc).
    pub cpuset: CpuSet,
    /// Memory usage, limits and memory.stat.
    pub memory: Memory,
    /// Task count and limit.
    pub pids: Pids,
    /// Block I/O counters.
    pub blkio: Blkio,
    /// Per huge page size ("2MB", "1GB"); always printed, `{}` when none.
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT (not supported: always `{}`).
    pub intel_rdt: IntelRdt,
    /// Network interfaces (runc fills these only for its own veth configs: always null).
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

/// `cpu`: usage and throttling.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Cpu {
    /// CPU time used, in nanoseconds.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling counters.
    pub throttling: Throttling,
}

/// `cpu.usage`, all in nanoseconds.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    /// Total per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time.
    pub kernel: u64,
    /// User-mode time.
    pub user: u64,
}

/// `cpu.throttling`.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Throttling {
    /// Enforcement periods that elapsed.
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// `cpuset` (v1 `cpuset.*` files).
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct CpuSet {
    /// cpuset.cpus, expanded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// cpuset.cpu_exclusive.
    pub cpu_exclusive: u64,
    /// cpuset.mems, expanded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// cpuset.mem_hardwall.
    pub mem_hardwall: u64,
    /// cpuset.mem_exclusive.
    pub mem_exclusive: u64,
    /// cpuset.memory_migrate.
    pub memory_migrate: u64,
    /// cpuset.memory_spread_page.
    pub memory_spread_page: u64,
    /// cpuset.memory_spread_slab.
    pub memory_spread_slab: u64,
    /// cpuset.memory_pressure.
    pub memory_pressure: u64,
    /// cpuset.sched_load_balance.
    pub sched_load_balance: u64,
    /// cpuset.sched_relax_domain_level.
    pub sched_relax_domain_level: i64,
}

/// One `memory.*` counter set, in bytes.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    /// The limit (v1: 9223372036854771712 when unlimited; v2: u64::MAX for "max").
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// `memory`.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Memory {
    /// Page cache: memory.stat "cache" (v1) or "file" (v2).
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    /// memory.usage_in_bytes & co. (v1), memory.current/max (v2).
    pub usage: MemoryEntry,
    /// memory.memsw.* (v1), memory + memory.swap.* (v2), i.e. memory plus swap.
    pub swap: MemoryEntry,
    /// memory.kmem.* (v1 only).
    pub kernel: MemoryEntry,
    /// memory.kmem.tcp.* (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every line of memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// `pids`.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Pids {
    /// pids.current (v2 without the controller: lines of cgroup.procs).
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    /// pids.max, 0 for "max".
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

/// One blkio line: device, operation, value.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct BlkioEntry {
    /// Device major number.
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    /// Device minor number.
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard", "Total" (or none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The counter.
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

/// `blkio`.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Blkio {
    /// Bytes transferred.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued operations (CFQ/BFQ debug only); runc's tag is "ioQueueRecursive".
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time (CFQ/BFQ debug only).
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time (CFQ/BFQ debug only).
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged operations (CFQ/BFQ debug only).
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Device time (CFQ/BFQ debug only).
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors transferred (CFQ/BFQ debug only).
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// One huge page size's counters.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    /// Peak bytes (v1 only).
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    /// Allocation failures (v1 failcnt, v2 hugetlb.<size>.events "max").
    pub failcnt: u64,
}

/// `intel_rdt`: every runc field is omitempty, and Strata has no RDT support: `{}`.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct IntelRdt {}

/// One entry of `network_interfaces` (runc's untagged Go field names).
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInterface {
    /// Interface name.
    pub name: String,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Dropped on receive.
    pub rx_dropped: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Dropped on send.
    pub tx_dropped: u64,
}

/// Collect stats from the container's cgroup dirs: `paths` holds one dir per mounted hierarchy
/// (v1 controller dirs like /sys/fs/cgroup/memory/<c>, and/or a cgroup2 dir); detect per dir
/// whether it is v1 (by the files present / the mount) or v2 and read what is there. Missing
/// controllers or files are simply left out (zero/absent), never an error.
pub fn collect(paths: &[PathBuf]) -> Stats {
    let mut s = Stats::default();
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for p in paths {
        match is_v2(p) {
            Some(true) => v2.push(p),
            Some(false) => v1.push(p),
            None => {}
        }
    }
    if v1.is_empty() {
        for d in v2 {
            v2::read_v2(d, &mut s);
        }
    } else {
        for d in v1 {
            v1::read_v1(d, &mut s);
        }
    }
    s
}

/// The `{"type":"stats","id":..,"data":..}` event runc prints.
pub fn event_json(id: &str, stats: &Stats) -> serde_json::Value {
    serde_json::json!({ "type": "stats", "id": id, "data": stats })
}

/// The same event as one line of text with runc's key order (`type`, `id`, `data`, and
/// every struct in field order); serde_json's `Value` sorts keys. No trailing newline.
pub fn event_line(id: &str, stats: &Stats) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        id: &'a str,
        data: &'a Stats,
    }
    serde_json::to_string(&Event {
        kind: "stats",
        id,
        data: stats,
    })
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Which kind of dir

/// Some(true) for cgroup2, Some(false) for a v1 hierarchy, None if `dir` is unusable.
fn is_v2(dir: &Path) -> Option<bool> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    match st.f_type as i64 {
        CGROUP2_SUPER_MAGIC => Some(true),
        CGROUP_SUPER_MAGIC => Some(false),
        // Not a cgroup mount (a copy, a test fixture): judge by the files.
        _ => Some(dir.join("cgroup.controllers").exists()),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing helpers

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

/// runc's ParseUint: "max" is u64::MAX, a negative number is 0.
fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<i64>().ok().filter(|v| *v < 0).map(|_| 0))
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file).and_then(|s| parse_uint(&s))
}

/// "key value" lines (memory.stat, cpu.stat, memory.events) in file order.
fn key_values(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_string(), parse_uint(v)?))
        })
        .collect()
}

/// Huge page sizes that have files like `hugetlb.2MB.<suffix>` in `dir`.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return vec![];
    };
    let mut sizes: Vec<String> = rd
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.is_empty() && !size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_runc() {
        assert_eq!(parse_uint("max\n"), Some(u64::MAX));
        assert_eq!(parse_uint("-1"), Some(0));
        assert_eq!(parse_uint(" 42\n"), Some(42));
        assert_eq!(parse_uint("x"), None);
        assert_eq!(
            key_values("user 5\nsystem 7\n"),
            vec![("user".into(), 5), ("system".into(), 7)]
        );
    }

    #[test]
    fn zero_stats_have_runc_shape() {
        let v = event_json("c1", &Stats::default());
        let want = serde_json::json!({
            "type": "stats", "id": "c1",
            "data": {
                "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                    "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                    "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
                "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                    "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
                "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {},
                "network_interfaces": null
            }
        });
        assert_eq!(v, want);
        let line = event_line("c1", &Stats::default());
        assert!(
            line.starts_with(r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"kernel":0"#),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, want);
    }
}
