//! cgroup v2 specifics: the freeze state.

use std::fs;
use std::path::Path;

/// True if `dir` is a cgroup2 directory asked to freeze.
pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.freeze"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}
