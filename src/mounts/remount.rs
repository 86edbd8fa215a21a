//! Mount flags on an attached tree without mount_setattr (Linux < 5.12, or forced with
//! `STRATA_NO_MOUNT_SETATTR=1` for the tests): every mount of the tree remounted in turn.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::fdmount::mount_at;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Act as if the kernel had no mount_setattr (the tests' way to run the fallback).
pub fn disable_mount_setattr() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Whether mount_setattr is to be treated as missing.
pub fn mount_setattr_disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

/// The per-mount MS_* flags a bind remount can change.
const PER_MOUNT: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_NOSYMFOLLOW;

/// Remount the attached tree whose top mount `top` names: the top gets the per-mount
/// flags of `top_flags`, every mount below it gets `below` (MS_RDONLY for `ro` on an
/// rbind). Each mount keeps the flags it has (in a user namespace, clearing a locked
/// nosuid/nodev/noexec/atime flag is refused). Each one is opened by its mount point and
/// must be the mount mountinfo named (by mount ID) before it is touched.
pub fn remount_tree(top: RawFd, top_flags: u64, below: u64) -> io::Result<()> {
    let top_id = mnt_id(top)?;
    remount(top, top_flags & PER_MOUNT)?;
    if below == 0 {
        return Ok(());
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts: Vec<(u64, u64, String)> = mi
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let id = f.next()?.parse().ok()?;
            let parent = f.next()?.parse().ok()?;
            let point = unescape(f.nth(2)?);
            Some((id, parent, point))
        })
        .collect();
    // Parents before children: mountinfo lists a tree in mount order, but a mount moved
    // in later may come after its children; walk from the top down.
    let mut todo = vec![top_id];
    while let Some(parent) = todo.pop() {
        for (id, _, point) in mounts.iter().filter(|m| m.1 == parent && m.0 != parent) {
            let fd = open_mount(point, *id)?;
            remount(fd.as_raw_fd(), below)?;
            todo.push(*id);
        }
    }
    Ok(())
}

fn open_mount(point: &str, id: u64) -> io::Result<OwnedFd> {
    let c =
        std::ffi::CString::new(point).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = crate::paths::openat(
        libc::AT_FDCWD,
        &c,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )?;
    if mnt_id(fd.as_raw_fd())? != id {
        return Err(io::Error::other(format!(
            "{point}: not the mount mountinfo lists there (mount {id}); refusing to remount it"
        )));
    }
    Ok(fd)
}

/// A bind remount of the mount `fd` is the root of: its own flags plus `add`.
fn remount(fd: RawFd, add: u64) -> io::Result<()> {
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(fd, &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cur = 0;
    for (st, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if s.f_flag & st != 0 {
            cur |= ms;
        }
    }
    // An atime mode asked for replaces the current one.
    if add & (libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME) != 0 {
        cur &= !(libc::MS_NOATIME | libc::MS_RELATIME);
    }
    mount_at(
        None,
        fd,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | cur | add,
        None,
    )
}

/// The ID of the mount `fd` is on (from /proc/self/fdinfo).
pub fn mnt_id(fd: RawFd) -> io::Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no mnt_id in /proc/self/fdinfo/{fd}")))
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}
