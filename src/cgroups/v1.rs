//! cgroup v1 specifics: cpuset initialisation and the freezer.

use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// A new v1 cpuset cgroup starts with empty cpus/mems and accepts no task until they are
/// filled: copy them from the nearest ancestor that has them, as runc does.
pub fn init_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let cur = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if !cur.trim().is_empty() {
            continue;
        }
        let mut p = dir.to_path_buf();
        let mut val = String::new();
        while p.pop() {
            match fs::read_to_string(p.join(file)) {
                Ok(v) if !v.trim().is_empty() => {
                    val = v.trim().to_string();
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        fs::write(dir.join(file), &val)
            .with_context(|| format!("set {}/{file} to {val:?}", dir.display()))?;
    }
    Ok(())
}

/// True if `dir` is a v1 freezer cgroup in state FROZEN (or FREEZING).
pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("freezer.state"))
        .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
        .unwrap_or(false)
}

/// Freeze or thaw through freezer.state, waiting until the kernel reports the new state
/// (FREEZING can linger while tasks are in uninterruptible sleep: keep asking).
pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let (want, f) = (
        if frozen { "FROZEN" } else { "THAWED" },
        dir.join("freezer.state"),
    );
    for _ in 0..1000 {
        fs::write(&f, want).with_context(|| format!("write {want} to {}", f.display()))?;
        if fs::read_to_string(&f)
            .map(|s| s.trim() == want)
            .unwrap_or(false)
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    anyhow::bail!("{} did not become {want}", f.display())
}
