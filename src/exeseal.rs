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
//!
//! Dropping the last fd of a detached mount unmounts it, and the kernel then waits for
//! an RCU grace period (0.1 ms on an idle host, 2-15 ms on a busy one). So the mount fds
//! are not closed before the re-exec: they survive it (named in the guard variable), the
//! sealed process takes them over (CLOEXEC from then on), its children close their
//! copies first thing ([`close_inherited`]), and once the container's init is ready a
//! thread drops the last copies ([`release_later`]) while the container starts.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::mounts::fdmount::new_fs;
use crate::mounts::options::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const GUARD: &str = "_STRATA_EXE_SEALED";

/// The overlay's and its empty tmpfs's mount fds, carried over the re-exec (-1: none).
static HELD: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

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
    // "<pid>" or "<pid>:<fd>,<fd>" (the mount fds; see the module doc).
    let guard = std::env::var(GUARD).unwrap_or_default();
    let (gpid, mfds) = guard.split_once(':').unwrap_or((&guard, ""));
    let reexeced = gpid == std::process::id().to_string();
    std::env::remove_var(GUARD);
    if is_sealed() {
        if reexeced {
            adopt(mfds);
        }
        return Ok(());
    }
    if reexeced {
        anyhow::bail!(
            "running from a sealed copy of strata failed: /proc/self/exe is still writable"
        );
    }
    let (fd, mounts) = overlay_exe().or_else(|e| {
        tracing::debug!("exe seal: overlay unavailable ({e:#}), copying to a sealed memfd");
        memfd_exe().map(|f| (f, vec![]))
    })?;
    let mut guard = std::process::id().to_string();
    for (i, m) in mounts.iter().enumerate() {
        // Inherited by the sealed process (it sets CLOEXEC again at once).
        unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFD, 0) };
        guard.push(if i == 0 { ':' } else { ',' });
        guard.push_str(&m.as_raw_fd().to_string());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).unwrap_or_default())
        .collect();
    env.retain(|e| !e.as_bytes().starts_with(GUARD.as_bytes()));
    env.push(CString::new(format!("{GUARD}={guard}"))?);
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
    let e = std::io::Error::last_os_error();
    drop(mounts);
    Err(e).context("re-exec from sealed binary")
}

/// Take over the mount fds named in the guard: only what the first process made (the
/// root of a detached tmpfs or overlayfs), so a forged variable closes nothing else.
fn adopt(list: &str) {
    let fds = list.split(',').filter_map(|f| f.parse::<RawFd>().ok());
    for (slot, fd) in HELD.iter().zip(fds.filter(|fd| *fd > 2)) {
        let mut st: libc::statx = unsafe { std::mem::zeroed() };
        let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
        // The raw syscall: the static glibc build has no statx() wrapper linked in.
        let ok = unsafe {
            libc::syscall(
                libc::SYS_statx,
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                0,
                &mut st as *mut libc::statx,
            ) == 0
                && libc::fstatfs(fd, &mut sf) == 0
        } && st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0
            && matches!(sf.f_type as i64, OVERLAYFS_SUPER_MAGIC | TMPFS_MAGIC);
        if ok && unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
            slot.store(fd, Ordering::Relaxed);
        }
    }
}

/// True for a mount fd we carried over the re-exec: never one of the caller's fds, which
/// `--preserve-fds` may hand to the container.
pub fn is_held(fd: RawFd) -> bool {
    fd >= 0 && HELD.iter().any(|s| s.load(Ordering::Relaxed) == fd)
}

/// In a child of the sealed process (the init, before anything else): close our copies
/// of the held mount fds, cheaply, since the parent still holds them.
pub fn close_inherited() {
    for slot in &HELD {
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
    }
}

/// Drop the held mount fds on a thread of their own, so the grace period their unmount
/// waits for overlaps the container's start. Only once every child that got copies has
/// closed them (else its execve would wait for the grace period instead).
///
/// A bare clone(CLONE_THREAD) on a small stack, not std::thread: the thread makes two
/// raw syscalls and exits, so it needs no TLS, heap or pthread of its own, and it costs
/// neither a malloc arena nor the resident code pages of thread setup. It inherits our
/// signal mask (all blocked in create), and a late fork cannot catch it holding a lock.
pub fn release_later() {
    let fds: Vec<RawFd> = HELD
        .iter()
        .map(|s| s.swap(-1, Ordering::Relaxed))
        .filter(|fd| *fd >= 0)
        .collect();
    if fds.is_empty() {
        return;
    }
    let arg = fds[0] as u32 as u64 | (fds.get(1).copied().unwrap_or(-1) as u32 as u64) << 32;
    const STACK: usize = 16 << 10;
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM;
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        // Never unmapped: the thread may still run on it when we exit.
        if stack == libc::MAP_FAILED
            || libc::clone(
                close_pair,
                stack.cast::<u8>().add(STACK).cast(),
                flags,
                arg as usize as *mut libc::c_void,
            ) < 0
        {
            fds.iter().for_each(|fd| {
                libc::close(*fd);
            });
        }
    }
}

// The closing thread: two fds packed in `arg`; returning ends the thread (not the process).
extern "C" fn close_pair(arg: *mut libc::c_void) -> libc::c_int {
    let arg = arg as usize as u64;
    for fd in [arg as u32 as i32, (arg >> 32) as u32 as i32] {
        if fd >= 0 {
            unsafe { libc::syscall(libc::SYS_close, fd) };
        }
    }
    0
}

/// The sealed binary (opened inside the overlay) and the overlay's and tmpfs's mount fds.
fn overlay_exe() -> Result<(OwnedFd, Vec<OwnedFd>)> {
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
    Ok((fd, vec![mnt, empty]))
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
