//! pause, resume, ps, update: the commands that act on a running container's cgroups.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

use super::Global;
use crate::container::{pause, ps, update};

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Arguments for ps (default -ef): everything after the ID, as in runc (`ps ID -e -x`);
    /// a `--` before them is allowed
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// JSON file with the resources to set (runc's format: linux.resources), or - for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g/t suffix; -1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// "512m" → bytes, as runc/docker accept them (binary units); "-1" stays -1.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

fn put(m: &mut Map<String, Value>, section: &str, key: &str, v: Value) {
    m.entry(section).or_insert_with(|| json!({}))[key] = v;
}

fn resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    let mut m: Map<String, Value> = match &a.resources {
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(p)
                    .with_context(|| format!("--resources {}", p.display()))?
            };
            serde_json::from_str(&text)
                .with_context(|| format!("--resources {}: invalid JSON", p.display()))?
        }
        None => Map::new(),
    };
    let mem = |s: &Option<String>| s.as_deref().map(parse_bytes).transpose();
    if let Some(v) = mem(&a.memory)? {
        put(&mut m, "memory", "limit", json!(v));
    }
    if let Some(v) = mem(&a.memory_reservation)? {
        put(&mut m, "memory", "reservation", json!(v));
    }
    if let Some(v) = mem(&a.memory_swap)? {
        put(&mut m, "memory", "swap", json!(v));
    }
    let cpu: [(&str, Option<Value>); 9] = [
        ("period", a.cpu_period.map(|v| json!(v))),
        ("quota", a.cpu_quota.map(|v| json!(v))),
        ("burst", a.cpu_burst.map(|v| json!(v))),
        ("shares", a.cpu_share.map(|v| json!(v))),
        ("realtimePeriod", a.cpu_rt_period.map(|v| json!(v))),
        ("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v))),
        ("idle", a.cpu_idle.map(|v| json!(v))),
        ("cpus", a.cpuset_cpus.clone().map(Value::from)),
        ("mems", a.cpuset_mems.clone().map(Value::from)),
    ];
    for (k, v) in cpu {
        if let Some(v) = v {
            put(&mut m, "cpu", k, v);
        }
    }
    if let Some(v) = a.pids_limit {
        put(&mut m, "pids", "limit", json!(v));
    }
    if let Some(v) = a.blkio_weight {
        put(&mut m, "blockIO", "weight", json!(v));
    }
    if m.is_empty() {
        bail!("update: nothing to change (give --resources or a flag such as --memory)");
    }
    serde_json::from_value(Value::Object(m)).context("update: invalid resources")
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Print one stats snapshot and exit
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events when streaming
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

pub fn run_events(g: &Global, a: EventsArgs) -> Result<i32> {
    use crate::container::events;
    let mut out = std::io::stdout().lock();
    if a.stats {
        events::stats_once(&g.root, &a.id, &mut out)?;
    } else {
        events::stream(
            &g.root,
            &a.id,
            events::parse_duration(&a.interval)?,
            &mut out,
        )?;
    }
    Ok(0)
}

pub fn run_pause(g: &Global, id: &str) -> Result<i32> {
    pause::pause(&g.root, id).map(|_| 0)
}

pub fn run_resume(g: &Global, id: &str) -> Result<i32> {
    pause::resume(&g.root, id).map(|_| 0)
}

pub fn run_ps(g: &Global, a: PsArgs) -> Result<i32> {
    let pids = ps::pids(&g.root, &a.id)?;
    if a.format == "json" {
        // runc prints a stopped container's empty list as `null` (Go's nil slice).
        if pids.is_empty() {
            super::print("null")?;
        } else {
            super::print(serde_json::to_string(&pids)?)?;
        }
    } else {
        use std::io::Write;
        std::io::stdout()
            .lock()
            .write_all(ps::table(&pids, &a.ps_args)?.as_bytes())?;
    }
    Ok(0)
}

pub fn run_update(g: &Global, a: UpdateArgs) -> Result<i32> {
    let r = resources(&a)?;
    update::update(&g.root, &a.id, &r)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(super::parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(super::parse_bytes("100").unwrap(), 100);
        assert_eq!(super::parse_bytes("-1").unwrap(), -1);
        assert!(super::parse_bytes("lots").is_err());
    }
}
