//! PLACEHOLDER until the overlay branch lands: the agreed API.
use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

pub fn mount_readonly(lowers: &[BorrowedFd<'_>]) -> Result<OwnedFd> {
    let s: Vec<String> = lowers
        .iter()
        .map(|f| format!("/proc/self/fd/{}", f.as_raw_fd()))
        .collect();
    let mut s = s.join(":");
    if lowers.len() == 1 {
        s = format!("{s}:{s}");
    }
    let v = std::ffi::CString::new(s)?;
    crate::mounts::fdmount::new_fs(c"overlay", &[(c"lowerdir", v.as_c_str())], 0)
        .context("mount overlay")
}
