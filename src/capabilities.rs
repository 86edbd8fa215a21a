//! The five capability sets: parsed from config.json as bitmasks, applied with capset.

use anyhow::{Context, Result};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

/// Capability sets as bitmasks, ready to apply without allocation.
#[derive(Debug, Default, Clone, Copy)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>) -> Result<u64> {
    let mut m = 0u64;
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = caps::Capability::from_str(&name)
            .with_context(|| format!("unknown capability {name}"))?;
        m |= 1u64 << cap.index();
    }
    Ok(m)
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Our own permitted set: the container can never get a capability we lack
/// (here CAP_SYS_RESOURCE is missing from the bounding set, for instance).
fn own_permitted() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

impl CapSets {
    /// From config.json; absent `capabilities` means none at all, as in runc.
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<CapSets> {
        let Some(c) = c else {
            return Ok(CapSets::default());
        };
        let own = own_permitted();
        let s = CapSets {
            bounding: mask(c.bounding())? & own,
            effective: mask(c.effective())? & own,
            permitted: mask(c.permitted())? & own,
            inheritable: mask(c.inheritable())? & own,
            ambient: mask(c.ambient())? & own,
        };
        Ok(s)
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drop every capability outside `bounding` from the bounding set (needs CAP_SETPCAP).
pub fn drop_bounding(bounding: u64, last: u32) -> std::io::Result<()> {
    for cap in 0..=last {
        if bounding & (1u64 << cap) == 0
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0
        {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// capset the effective, permitted and inheritable sets; then raise ambient ones.
/// Returns false if some ambient capability could not be raised (runc warns, so do we).
pub fn apply(s: &CapSets) -> std::io::Result<bool> {
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(s.effective),
            permitted: lo(s.permitted),
            inheritable: lo(s.inheritable),
        },
        CapData {
            effective: hi(s.effective),
            permitted: hi(s.permitted),
            inheritable: hi(s.inheritable),
        },
    ];
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut all = true;
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    for cap in 0..64u64 {
        if s.ambient & (1 << cap) != 0
            && unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap,
                    0,
                    0,
                )
            } != 0
        {
            all = false;
        }
    }
    Ok(all)
}
