//! `linux.resources` → the cgroup files that enforce them, for v1 and for v2, and the
//! code that writes them (at create and on `update`). Every failure names the resource,
//! the value and the file.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::fs;
use std::path::{Path, PathBuf};

/// One file write: which config field asked for it, the file, the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub field: String,
    pub file: String,
    pub value: String,
}

fn w(field: &str, file: impl Into<String>, value: impl ToString) -> Write {
    Write {
        field: field.into(),
        file: file.into(),
        value: value.to_string(),
    }
}

/// runc's rule: a zero resource value means "not set" (docker, for one, sends
/// `blockIO.weight: 0`, and `cpu.period`/`cpu.quota` 0 on every update).
fn nz<T: PartialEq + Default>(v: Option<T>) -> Option<T> {
    v.filter(|x| *x != T::default())
}

/// Is this a cgroup2 directory?
pub fn is_v2(dir: &Path) -> bool {
    dir.join("cgroup.controllers").exists()
}

fn v1_memory(m: &LinuxMemory, out: &mut Vec<Write>) {
    if let Some(v) = nz(m.reservation()) {
        out.push(w("memory.reservation", "memory.soft_limit_in_bytes", v));
    }
    // limit and swap (memsw = memory+swap) are ordered at write time: see apply_v1_memory.
    if let Some(v) = m.swappiness() {
        out.push(w("memory.swappiness", "memory.swappiness", v));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(w("memory.disableOOMKiller", "memory.oom_control", 1));
    }
    if let Some(v) = nz(m.kernel()) {
        out.push(w("memory.kernel", "memory.kmem.limit_in_bytes", v));
    }
    if let Some(v) = nz(m.kernel_tcp()) {
        out.push(w("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", v));
    }
}

fn v1_cpu(c: &LinuxCpu, out: &mut Vec<Write>) {
    if let Some(v) = nz(c.shares()) {
        out.push(w("cpu.shares", "cpu.shares", v));
    }
    // The period first: a quota is checked against the period in force.
    if let Some(v) = nz(c.period()) {
        out.push(w("cpu.period", "cpu.cfs_period_us", v));
    }
    if let Some(v) = nz(c.quota()) {
        out.push(w(
            "cpu.quota",
            "cpu.cfs_quota_us",
            if v <= 0 { -1 } else { v },
        ));
    }
    if let Some(v) = c.burst() {
        out.push(w("cpu.burst", "cpu.cfs_burst_us", v));
    }
    if let Some(v) = nz(c.realtime_period()) {
        out.push(w("cpu.realtimePeriod", "cpu.rt_period_us", v));
    }
    if let Some(v) = nz(c.realtime_runtime()) {
        out.push(w("cpu.realtimeRuntime", "cpu.rt_runtime_us", v));
    }
    if let Some(v) = c.idle() {
        out.push(w("cpu.idle", "cpu.idle", v));
    }
    cpuset(c, out);
}

fn cpuset(c: &LinuxCpu, out: &mut Vec<Write>) {
    if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpu.cpus", "cpuset.cpus", v));
    }
    if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpu.mems", "cpuset.mems", v));
    }
}

fn v1_blkio(b: &LinuxBlockIo, out: &mut Vec<Write>) {
    if let Some(v) = nz(b.weight()) {
        out.push(w("blockIO.weight", "blkio.weight", v));
    }
    if let Some(v) = nz(b.leaf_weight()) {
        out.push(w("blockIO.leafWeight", "blkio.leaf_weight", v));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = nz(d.weight()) {
            out.push(w(
                "blockIO.weightDevice",
                "blkio.weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
        if let Some(v) = nz(d.leaf_weight()) {
            out.push(w(
                "blockIO.weightDevice",
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    for (field, file, devs) in [
        (
            "blockIO.throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in devs.iter().flatten() {
            out.push(w(
                field,
                file,
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
}

fn pids(r: &LinuxResources, out: &mut Vec<Write>) {
    if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        out.push(w("pids.limit", "pids.max", v));
    }
}

/// The writes a v1 (or hybrid) host needs, hugetlb included (v1 files).
pub fn plan_v1(r: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        v1_memory(m, &mut out);
    }
    if let Some(c) = r.cpu() {
        v1_cpu(c, &mut out);
    }
    pids(r, &mut out);
    if let Some(b) = r.block_io() {
        v1_blkio(b, &mut out);
    }
    for h in r.hugepage_limits().iter().flatten() {
        out.push(w(
            "hugepageLimits",
            format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit(),
        ));
    }
    if let Some(n) = r.network() {
        if let Some(id) = nz(n.class_id()) {
            out.push(w("network.classID", "net_cls.classid", id));
        }
        for p in n.priorities().iter().flatten() {
            out.push(w(
                "network.priorities",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            ));
        }
    }
    out
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), runc's conversion.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000), runc's conversion.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

/// The writes a cgroup2 host needs. Fields v2 has no file for are refused by name.
pub fn plan_v2(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(m) = r.memory() {
        if let Some(v) = nz(m.reservation()) {
            out.push(w("memory.reservation", "memory.low", max(v)));
        }
        if let Some(v) = nz(m.limit()) {
            out.push(w("memory.limit", "memory.max", max(v)));
        }
        // v1's swap is memory+swap; v2's memory.swap.max is swap alone.
        if let Some(s) = nz(m.swap()) {
            let v = match (s, nz(m.limit())) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        bail!("linux.resources.memory.swap {s} is below memory.limit {l} (swap counts memory+swap)");
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            out.push(w("memory.swap", "memory.swap.max", v));
        }
        if m.swappiness().is_some_and(|s| s != 0) {
            bail!("linux.resources.memory.swappiness: not supported on cgroup v2");
        }
        if m.disable_oom_killer() == Some(true) {
            bail!("linux.resources.memory.disableOOMKiller: not supported on cgroup v2");
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = nz(c.shares()) {
            out.push(w("cpu.shares", "cpu.weight", shares_to_weight(v)));
        }
        if nz(c.quota()).is_some() || nz(c.period()).is_some() {
            let q = c
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            // runc: no period (0) leaves the kernel's
            let v = match nz(c.period()) {
                Some(p) => format!("{q} {p}"),
                None => q,
            };
            out.push(w("cpu.quota", "cpu.max", v));
        }
        if let Some(v) = c.burst() {
            out.push(w("cpu.burst", "cpu.max.burst", v));
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            bail!("linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2");
        }
        if let Some(v) = c.idle() {
            out.push(w("cpu.idle", "cpu.idle", v));
        }
        cpuset(c, &mut out);
    }
    pids(r, &mut out);
    if let Some(b) = r.block_io() {
        if let Some(v) = nz(b.weight()) {
            out.push(w("blockIO.weight", "io.weight", blkio_to_io_weight(v)));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = nz(d.weight()) {
                out.push(w(
                    "blockIO.weightDevice",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(v)),
                ));
            }
        }
        for (field, key, devs) in [
            (
                "blockIO.throttleReadBpsDevice",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "blockIO.throttleWriteBpsDevice",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "blockIO.throttleReadIOPSDevice",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "blockIO.throttleWriteIOPSDevice",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ] {
            for d in devs.iter().flatten() {
                out.push(w(
                    field,
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                ));
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        out.push(w(
            "hugepageLimits",
            format!("hugetlb.{}.max", h.page_size()),
            max(h.limit()),
        ));
    }
    if r.network()
        .as_ref()
        .is_some_and(|n| n.class_id().is_some() || n.priorities().is_some())
    {
        bail!("linux.resources.network: net_cls/net_prio do not exist on cgroup v2");
    }
    Ok(out)
}

fn unified(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            bail!("linux.resources.unified: invalid key {k:?}");
        }
        out.push(w("unified", k.clone(), v));
    }
    Ok(out)
}

fn write_file(dir: &Path, wr: &Write) -> Result<()> {
    let f = dir.join(&wr.file);
    fs::write(&f, &wr.value).with_context(|| {
        format!(
            "linux.resources.{}: write {:?} to {}",
            wr.field,
            wr.value,
            f.display()
        )
    })
}

/// v2 controllers must be enabled in every ancestor's cgroup.subtree_control for the
/// container's files (memory.max, ...) to exist. Best effort: a busy ancestor (with
/// processes of its own) refuses, and then the missing file is reported by name.
fn enable_v2_controller(dir: &Path, controller: &str) {
    let mut anc: Vec<PathBuf> = dir.ancestors().skip(1).map(Path::to_path_buf).collect();
    anc.reverse();
    for a in anc {
        let avail = fs::read_to_string(a.join("cgroup.controllers")).unwrap_or_default();
        if !avail.split_whitespace().any(|c| c == controller) {
            continue;
        }
        let on = fs::read_to_string(a.join("cgroup.subtree_control")).unwrap_or_default();
        if !on.split_whitespace().any(|c| c == controller) {
            let _ = fs::write(a.join("cgroup.subtree_control"), format!("+{controller}"));
        }
    }
}

fn write_v2(dir: &Path, wr: &Write) -> Result<()> {
    let controller = wr.file.split('.').next().unwrap_or("");
    if !dir.join(&wr.file).exists() {
        enable_v2_controller(dir, controller);
    }
    if !dir.join(&wr.file).exists() {
        bail!(
            "linux.resources.{}: {} does not exist (the cgroup v2 controller {controller:?} is not available in {})",
            wr.field,
            wr.file,
            dir.display()
        );
    }
    write_file(dir, wr)
}

// v1 memory+swap: memsw must stay ≥ limit at every step, so the order depends on
// whether the limit grows past the current memsw limit.
fn apply_v1_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = nz(m.limit()).map(|v| w("memory.limit", "memory.limit_in_bytes", v));
    let swap = nz(m.swap()).map(|v| w("memory.swap", "memory.memsw.limit_in_bytes", v));
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let cur: i64 = fs::read_to_string(dir.join(&s.file))
                .with_context(|| {
                    format!(
                        "linux.resources.memory.swap: {} (is swap accounting enabled?)",
                        dir.join(&s.file).display()
                    )
                })?
                .trim()
                .parse()
                .unwrap_or(i64::MAX);
            let new_limit: i64 = m.limit().unwrap_or(0);
            if new_limit < 0 || new_limit > cur {
                write_file(dir, &s)?;
                write_file(dir, &l)
            } else {
                write_file(dir, &l)?;
                write_file(dir, &s)
            }
        }
        (Some(l), None) => write_file(dir, &l),
        (None, Some(s)) => write_file(dir, &s),
        (None, None) => Ok(()),
    }
}

fn is_einval(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.raw_os_error() == Some(libc::EINVAL))
}

/// The directory among `paths` that holds `file` (the v1 controller that owns it).
fn owner<'a>(paths: &'a [PathBuf], file: &str) -> Option<&'a PathBuf> {
    paths.iter().find(|p| !is_v2(p) && p.join(file).exists())
}

/// Apply `r` to the container's cgroup dirs (one per hierarchy).
pub fn apply(paths: &[PathBuf], r: &LinuxResources) -> Result<()> {
    let v2 = paths.iter().find(|p| is_v2(p));
    let any_v1 = paths.iter().any(|p| !is_v2(p));
    let unified = unified(r)?;
    if !any_v1 {
        let dir = v2.context("no cgroup hierarchy to apply linux.resources to")?;
        for wr in plan_v2(r)?.iter().chain(&unified) {
            write_v2(dir, wr)?;
        }
        return Ok(());
    }
    if !unified.is_empty() && v2.is_none() {
        bail!("linux.resources.unified: this host has no cgroup v2 hierarchy (cgroup v1 only)");
    }
    if let Some(m) = r.memory() {
        if nz(m.limit()).is_some() || nz(m.swap()).is_some() {
            let dir = owner(paths, "memory.limit_in_bytes")
                .context("linux.resources.memory: no memory cgroup on this host")?;
            apply_v1_memory(dir, m)?;
        }
    }
    let writes = plan_v1(r);
    let quota_follows = writes.iter().any(|w| w.file == "cpu.cfs_quota_us");
    // A period smaller than the current one can be refused (EINVAL) while the old quota
    // over it would exceed a parent's limit: write it again after the quota, as runc does.
    let mut period_again = None;
    for mut wr in writes {
        // Kernels with only the BFQ scheduler name the weight files blkio.bfq.*.
        if wr.file.starts_with("blkio.")
            && wr.file.contains("weight")
            && owner(paths, &wr.file).is_none()
        {
            let bfq = wr.file.replacen("blkio.", "blkio.bfq.", 1);
            if owner(paths, &bfq).is_some() {
                wr.file = bfq;
            }
        }
        match owner(paths, &wr.file) {
            Some(dir) if wr.file == "cpu.cfs_period_us" && quota_follows => {
                if let Err(e) = write_file(dir, &wr) {
                    if !is_einval(&e) {
                        return Err(e);
                    }
                    period_again = Some((dir.clone(), wr));
                }
            }
            Some(dir) => {
                write_file(dir, &wr)?;
                if wr.file == "cpu.cfs_quota_us" {
                    if let Some((d, p)) = period_again.take() {
                        write_file(&d, &p)?;
                    }
                }
            }
            // Hybrid hosts may have hugetlb only on the unified hierarchy.
            None if wr.file.starts_with("hugetlb.") && v2.is_some() => {
                let v2w = Write {
                    file: wr.file.replace(".limit_in_bytes", ".max"),
                    ..wr.clone()
                };
                write_v2(v2.unwrap(), &v2w)?
            }
            None => bail!(
                "linux.resources.{}: this host has no {} (controller not mounted or not supported)",
                wr.field,
                wr.file
            ),
        }
    }
    for wr in &unified {
        write_v2(v2.unwrap(), wr)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(j: serde_json::Value) -> LinuxResources {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn v1_and_v2_mapping() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152, "reservation": 524288},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 10},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]
        }));
        let v1 = plan_v1(&r);
        let has = |v: &[Write], f: &str, val: &str| v.iter().any(|x| x.file == f && x.value == val);
        assert!(has(&v1, "cpu.cfs_quota_us", "50000"));
        assert!(has(&v1, "pids.max", "10"));
        assert!(has(&v1, "cpuset.cpus", "0"));
        assert!(has(&v1, "hugetlb.2MB.limit_in_bytes", "0"));
        let v2 = plan_v2(&r).unwrap();
        assert!(has(&v2, "memory.max", "1048576"));
        assert!(has(&v2, "memory.swap.max", "1048576"));
        assert!(has(&v2, "cpu.max", "50000 100000"));
        assert!(has(&v2, "cpu.weight", "39"));
        assert!(has(&v2, "pids.max", "10"));
        // runc: zero means unset (docker sends blockIO.weight 0, cpu period/quota 0)
        let zeros = res(serde_json::json!({
            "memory": {"limit": 0, "swap": 0, "reservation": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0},
            "blockIO": {"weight": 0, "leafWeight": 0},
            "pids": {"limit": 0}
        }));
        assert_eq!(plan_v1(&zeros), vec![]);
        assert_eq!(plan_v2(&zeros).unwrap(), vec![]);
        let quota_only = res(serde_json::json!({"cpu": {"quota": 20000, "period": 0}}));
        assert!(has(&plan_v2(&quota_only).unwrap(), "cpu.max", "20000"));
        let bad = res(serde_json::json!({"memory": {"limit": 2, "swap": 1}}));
        assert!(plan_v2(&bad).is_err());
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }
}
