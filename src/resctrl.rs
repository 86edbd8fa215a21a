//! `linux.intelRdt` (Intel RDT / AMD QoS through the resctrl filesystem): detected, not
//! implemented yet. A config asking for it fails `create` with the reason, never runs
//! without its cache or memory-bandwidth limits.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxIntelRdt;

/// statfs f_type of resctrl.
const RDTGROUP_SUPER_MAGIC: i64 = 0x7655821;

/// resctrl is mounted at /sys/fs/resctrl.
pub fn mounted() -> bool {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(c"/sys/fs/resctrl".as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == RDTGROUP_SUPER_MAGIC
}

/// Whether strata can apply `linux.intelRdt` (what `features` reports): not yet, even on
/// a host with resctrl.
pub fn supported() -> bool {
    false
}

/// Refuse `linux.intelRdt`, saying why.
pub fn check(rdt: Option<&LinuxIntelRdt>) -> Result<()> {
    if rdt.is_none() {
        return Ok(());
    }
    if !mounted() {
        bail!("config.json: linux.intelRdt: resctrl is not mounted at /sys/fs/resctrl on this host (no Intel RDT / AMD QoS)");
    }
    bail!("config.json: linux.intelRdt: not supported by this strata yet (resctrl groups are not managed); refusing to run without it");
}
