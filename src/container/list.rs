//! `list`: every container under the root with its live status.

use anyhow::Result;
use std::path::Path;

use super::status::{oci_state, status, OciState};
use crate::state::{list_ids, StateDir};

pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut out = Vec::new();
    for id in list_ids(root)? {
        // A container deleted while we list is simply skipped.
        let Ok(sd) = StateDir::open_unlocked(root, &id) else {
            continue;
        };
        let Ok(st) = sd.load() else { continue };
        out.push(oci_state(&st, status(&st, &sd)));
    }
    Ok(out)
}
