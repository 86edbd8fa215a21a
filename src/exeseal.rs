//! Protection against CVE-2019-5736: the container must never be able to open the
//! `strata` binary for writing through /proc/<pid>/exe.
//!
//! Only `create` and `run` put a process of ours into a container. They re-exec once
//! from a *detached, read-only overlayfs* view of the directory holding our binary
//! (runc 1.2's idea, zero-copy): /proc/<pid>/exe of every process that enters the
//! container then resolves into that overlay, which can never be written (no upper
//! layer; EROFS), and which no mount namespace can see. `start`, `state`, `kill`,
//! `delete` and `list` never run inside a container and pay nothing. If overlayfs is
//! unavailable we fall back to a sealed memfd copy (what runc/youki always do).

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::mounts::fdmount::new_fs;
use crate::mounts::options::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const GUARD: &str = "_STRATA_EXE_SEALED";

/// True if /proc/self/exe cannot be written: a read-only overlay, or a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut s) } != 0 {
        return false;
    }
    let mut vs: libc::statvfs = unsafe { std::mem::zeroed() };
    let ro =
        unsafe { libc::fstatvfs(f.as_raw_fd(), &mut vs) } == 0 && vs.f_flag & libc::ST_RDONLY != 0;
    if s.f_type as i64 == OVERLAYFS_SUPER_MAGIC && ro {
        return true;
    }
    // memfd lives on an internal tmpfs; sealed against writes?
    if s.f_type as i64 == TMPFS_MAGIC {
        let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
        return seals >= 0 && seals & libc::F_SEAL_WRITE != 0;
    }
    false
}

/// Re-exec ourselves from a sealed binary unless we already run from one.
pub fn ensure_sealed() -> Result<()> {
    // The guard (our pid, which execveat keeps) only stops a re-exec loop; it never stands
    // in for the check itself, so setting it in the environment cannot switch it off.
    let reexeced = std::env::var(GUARD).ok() == Some(std::process::id().to_string());
    std::env::remove_var(GUARD);
    if is_sealed() {
        return Ok(());
    }
    if reexeced {
        anyhow::bail!(
            "running from a sealed copy of strata failed: /proc/self/exe is still writable"
        );
    }
    let fd = overlay_exe().or_else(|e| {
        tracing::debug!("exe seal: overlay unavailable ({e:#}), copying to a sealed memfd");
        memfd_exe()
    })?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).unwrap_or_default())
        .collect();
    env.retain(|e| !e.as_bytes().starts_with(GUARD.as_bytes()));
    env.push(CString::new(format!("{GUARD}={}", std::process::id()))?);
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).context("re-exec from sealed binary")
}

fn overlay_exe() -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let dir = exe.parent().context("exe has no directory")?;
    let name = CString::new(exe.file_name().context("exe has no name")?.as_bytes())?;
    // overlayfs separates lower layers with ':' and treats '\' as an escape.
    let mut lower = Vec::new();
    for b in dir.as_os_str().as_bytes() {
        if matches!(b, b':' | b'\\' | b',') {
            lower.push(b'\\');
        }
        lower.push(*b);
    }
    // Without an upper layer overlayfs wants two lower ones, and not the same one twice:
    // the second is an empty detached tmpfs, reached through its fd.
    let empty = new_fs(c"tmpfs", &[(c"size", c"0")], MOUNT_ATTR_RDONLY).context("empty tmpfs")?;
    lower.extend_from_slice(format!(":/proc/self/fd/{}", empty.as_raw_fd()).as_bytes());
    let lower = CString::new(lower)?;
    let mnt = new_fs(
        c"overlay",
        &[(c"lowerdir", &lower)],
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .context("mount read-only overlay")?;
    let fd = crate::paths::openat(mnt.as_raw_fd(), &name, libc::O_RDONLY, 0)
        .context("open exe in overlay")?;
    Ok(fd)
}

fn memfd_exe() -> Result<OwnedFd> {
    let mut src = std::fs::File::open("/proc/self/exe")?;
    let fd = unsafe {
        libc::memfd_create(
            c"strata".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    let mut dst = unsafe { std::fs::File::from_raw_fd(fd) };
    std::io::copy(&mut src, &mut dst)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal memfd");
    }
    Ok(dst.into())
}
