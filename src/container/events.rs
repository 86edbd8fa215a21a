//! `events`: one stats snapshot (`--stats`), or a stream of stats every interval plus an
//! `oom` event as soon as the kernel OOM-kills something in the container.

use anyhow::{bail, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::status::{status, Status};
use crate::cgroups::stats;
use crate::state::StateDir;

/// The OOM-kill counter of the container's memory cgroup (v1 memory.oom_control or
/// v2 memory.events), if there is one.
pub fn oom_kills(paths: &[PathBuf]) -> Option<u64> {
    paths.iter().find_map(|p| {
        let text = std::fs::read_to_string(p.join("memory.oom_control"))
            .or_else(|_| std::fs::read_to_string(p.join("memory.events")))
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Print one stats event.
pub fn stats_once(root: &Path, id: &str, out: &mut dyn Write) -> Result<()> {
    let sd = StateDir::open_unlocked(root, id)?;
    let st = sd.load()?;
    if status(&st, &sd) == Status::Stopped {
        bail!("{}", super::kill::not_running(id));
    }
    writeln!(
        out,
        "{}",
        stats::event_line(id, &stats::collect(&st.cgroup_paths))
    )?;
    Ok(())
}

/// Stream events until the container stops. OOM kills are noticed within 100 ms.
pub fn stream(root: &Path, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let sd = StateDir::open_unlocked(root, id)?;
    let st = sd.load()?;
    let mut ooms = oom_kills(&st.cgroup_paths).unwrap_or(0);
    let mut next = Instant::now();
    while status(&st, &sd) != Status::Stopped {
        if let Some(n) = oom_kills(&st.cgroup_paths) {
            // One event per kill, as runc's notifier sends one per OOM: kills between
            // two polls are not folded into one. runc's field order.
            for _ in ooms..n {
                writeln!(
                    out,
                    r#"{{"type":"oom","id":{}}}"#,
                    serde_json::to_string(id)?
                )?;
            }
            ooms = ooms.max(n);
        }
        if Instant::now() >= next {
            writeln!(
                out,
                "{}",
                stats::event_line(id, &stats::collect(&st.cgroup_paths))
            )?;
            next += interval;
        }
        out.flush()?;
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
    Ok(())
}

/// Go-style durations as runc takes them: "5s", "100ms", "1m", "1.5s".
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?} (use ms, s, m or h)"),
    };
    if secs <= 0.0 {
        bail!("invalid duration {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            super::parse_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(
            super::parse_duration("1m").unwrap(),
            Duration::from_secs(60)
        );
        assert!(super::parse_duration("0s").is_err());
        assert!(super::parse_duration("fast").is_err());
    }
}
