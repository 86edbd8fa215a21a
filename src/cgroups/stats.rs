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

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// runc hard-codes USER_HZ (`cpuacct.stat` ticks) as 100.
const CLOCK_TICKS: u64 = 100;

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
            read_v2(d, &mut s);
        }
    } else {
        for d in v1 {
            read_v1(d, &mut s);
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

fn key_value(dir: &Path, file: &str, key: &str) -> Option<u64> {
    key_values(&read(dir, file)?)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

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

// ---------------------------------------------------------------------------------------
// cgroup v1

fn read_v1(dir: &Path, s: &mut Stats) {
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

// ---------------------------------------------------------------------------------------
// cgroup v2

fn read_v2(dir: &Path, s: &mut Stats) {
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
    use super::*;

    #[test]
    fn parses_like_runc() {
        assert_eq!(parse_uint("max\n"), Some(u64::MAX));
        assert_eq!(parse_uint("-1"), Some(0));
        assert_eq!(parse_uint(" 42\n"), Some(42));
        assert_eq!(parse_uint("x"), None);
        assert_eq!(cpu_list("0-3,5\n"), vec![0, 1, 2, 3, 5]);
        assert_eq!(cpu_list("\n"), Vec::<u16>::new());
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
