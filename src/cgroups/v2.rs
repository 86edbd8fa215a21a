//! cgroup v2 specifics: the freeze state.

use std::fs;
use std::path::Path;

/// True if `dir` is a cgroup2 directory asked to freeze.
pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.freeze"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// Freeze or thaw through cgroup.freeze, waiting for cgroup.events to say "frozen N".
pub fn freeze(dir: &Path, frozen: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let f = dir.join("cgroup.freeze");
    fs::write(&f, if frozen { "1" } else { "0" })
        .with_context(|| format!("write {}", f.display()))?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..1000 {
        if fs::read_to_string(dir.join("cgroup.events"))
            .map(|s| s.lines().any(|l| l == want))
            .unwrap_or(true)
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    anyhow::bail!(
        "{} did not report {want}",
        dir.join("cgroup.events").display()
    )
}
