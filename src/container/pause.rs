//! `pause` / `resume`: freeze and thaw every process of a container through its cgroup.

use anyhow::{bail, Result};
use std::path::Path;

use super::status::{status, Status};
use crate::state::StateDir;

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Running | Status::Created => crate::cgroups::freeze(&st.cgroup_paths, true),
        s => bail!("cannot pause container {id}: it is {s}"),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Paused => crate::cgroups::freeze(&st.cgroup_paths, false),
        s => bail!("cannot resume container {id}: it is {s}, not paused"),
    }
}
