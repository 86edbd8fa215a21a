//! `update`: change a running container's resource limits in place.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

use super::status::{status, Status};
use crate::state::StateDir;

pub fn update(root: &Path, id: &str, r: &LinuxResources) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    if status(&st, &sd) == Status::Stopped {
        bail!("cannot update container {id}: it is stopped");
    }
    // runc's checkBeforeUpdate: refuse a memory limit below what is in use now.
    if let Some(m) = r.memory() {
        if let (Some(true), Some(limit)) = (m.check_before_update(), m.limit()) {
            let usage = st
                .cgroup_paths
                .iter()
                .find_map(|p| {
                    std::fs::read_to_string(p.join("memory.usage_in_bytes"))
                        .or_else(|_| std::fs::read_to_string(p.join("memory.current")))
                        .ok()
                })
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            if limit >= 0 && limit < usage {
                bail!("memory.limit {limit} is below the container's current usage {usage} (checkBeforeUpdate)");
            }
        }
    }
    crate::cgroups::resources::apply(&st.cgroup_paths, r)
}
