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
