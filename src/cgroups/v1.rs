//! cgroup v1 specifics: cpuset initialisation and the freezer.

use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// A new v1 cpuset cgroup starts with empty cpus/mems and accepts no task until they are
/// filled: copy them down from the nearest ancestor that has them, as runc does. Every
/// empty ancestor is filled top-down too: a concurrent create may have just made a shared
/// parent (containerd's /<namespace>) and not filled it yet, and the kernel refuses a child
/// value that is not a subset of its parent's (EACCES).
pub fn init_cpuset(dir: &Path) -> Result<()> {
    let mut chain = vec![dir.to_path_buf()];
    let mut p = dir.to_path_buf();
    while p.pop() && p.join("cpuset.cpus").exists() {
        chain.push(p.clone());
    }
    chain.reverse();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut inherited = String::new();
        for d in &chain {
            let cur = fs::read_to_string(d.join(file)).unwrap_or_default();
            let cur = cur.trim();
            if !cur.is_empty() {
                inherited = cur.to_string();
                continue;
            }
            fs::write(d.join(file), &inherited)
                .with_context(|| format!("set {}/{file} to {inherited:?}", d.display()))?;
        }
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
