//! `ps`: the container's processes, as pids (json) or as `ps` lines filtered to them.

use anyhow::{bail, Context, Result};
use std::path::Path;

use crate::state::StateDir;

/// Host pids of every process in the container's cgroups (none left, for a stopped
/// container: runc lists what its cgroup still holds, and an empty table).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let sd = StateDir::open_unlocked(root, id)?;
    let st = sd.load()?;
    Ok(crate::cgroups::pids(&st.cgroup_paths))
}

/// Run `ps ARGS` on the host and keep the header and the container's lines, like runc.
pub fn table(pids: &[i32], ps_args: &[String]) -> Result<String> {
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    let mut res = format!("{header}\n");
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                res.push_str(l);
                res.push('\n');
            }
        }
    }
    Ok(res)
}
