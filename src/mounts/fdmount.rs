//! Thin wrappers over the fd-based mount API (open_tree, move_mount, mount_setattr,
//! fsopen/fsmount) and mount(2) aimed at an fd: nothing here re-resolves a path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::paths::fd_path;

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A detached copy of the mount tree at `fd` (recursive for rbind).
pub fn clone_tree(fd: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u32
        | libc::AT_EMPTY_PATH as u32
        | if recursive { AT_RECURSIVE } else { 0 };
    let r = check(unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Change mount attributes on the mount at `fd` (and below it with `recursive`).
pub fn setattr(fd: RawFd, set: u64, clr: u64, recursive: bool) -> io::Result<()> {
    if set == 0 && clr == 0 {
        return Ok(());
    }
    mount_setattr(fd, set, clr, 0, recursive)
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Idmap the detached mount at `fd` through the user namespace `userns` (and every mount
/// below it with `recursive`).
pub fn setattr_idmap(fd: RawFd, userns: RawFd, recursive: bool) -> io::Result<()> {
    mount_setattr(fd, MOUNT_ATTR_IDMAP, 0, userns as u64, recursive)
}

fn mount_setattr(fd: RawFd, set: u64, clr: u64, userns: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: userns,
    };
    let flags = libc::AT_EMPTY_PATH as u32 | if recursive { AT_RECURSIVE } else { 0 };
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// Attach the detached mount `tree` on top of the object `target` refers to.
pub fn move_onto(tree: RawFd, target: RawFd) -> io::Result<()> {
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// A new, detached filesystem instance (fsopen + fsconfig + fsmount).
pub fn new_fs(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> io::Result<OwnedFd> {
    new_fs_flags(fstype, options, &[], attrs)
}

/// `new_fs` with flag-style options too ("newinstance", "sync").
pub fn new_fs_flags(
    fstype: &CStr,
    options: &[(&CStr, &CStr)],
    flags: &[&CStr],
    attrs: u64,
) -> io::Result<OwnedFd> {
    let fs = FsContext::open(fstype)?;
    for k in flags {
        fs.set_flag(k)?;
    }
    for (k, v) in options {
        fs.set_string(k, v)?;
    }
    fs.create()?;
    fs.mount(attrs)
}

/// A filesystem being configured (an fsopen fd): options one by one, then a detached mount.
pub struct FsContext(OwnedFd);

impl FsContext {
    /// fsopen(fstype); ENODEV when the kernel has no such filesystem.
    pub fn open(fstype: &CStr) -> io::Result<FsContext> {
        let fs =
            check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
        Ok(FsContext(unsafe { OwnedFd::from_raw_fd(fs as RawFd) }))
    }

    fn config(&self, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> io::Result<()> {
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                cmd,
                key.map_or(std::ptr::null(), |k| k.as_ptr()),
                value.map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            )
        })?;
        Ok(())
    }

    /// A `key=value` option (the kernel takes values of at most 256 bytes).
    pub fn set_string(&self, key: &CStr, value: &CStr) -> io::Result<()> {
        self.config(FSCONFIG_SET_STRING, Some(key), Some(value))
    }

    /// A flag option (`key` alone).
    pub fn set_flag(&self, key: &CStr) -> io::Result<()> {
        self.config(FSCONFIG_SET_FLAG, Some(key), None)
    }

    /// Make the superblock from the options given so far.
    pub fn create(&self) -> io::Result<()> {
        self.config(FSCONFIG_CMD_CREATE, None, None)
    }

    /// A detached mount of the created superblock, with mount attributes `attrs`.
    pub fn mount(&self, attrs: u64) -> io::Result<OwnedFd> {
        let m = check(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        })?;
        Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
    }

    /// What the filesystem said about its options ("overlay: ... is not a directory"),
    /// drained from the context's log, one message a line; empty if it said nothing.
    pub fn messages(&self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n <= 0 {
                break;
            }
            // Each message is "e text", "w text" or "i text".
            let m = String::from_utf8_lossy(&buf[..n as usize]);
            let m = m.trim_end();
            out.push(m.get(2..).unwrap_or(m).to_string());
        }
        out.join("; ")
    }
}

/// mount(2) with the target given as an fd (through its /proc/self/fd magic link).
pub fn mount_at(
    source: Option<&CStr>,
    target: RawFd,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> io::Result<()> {
    let t = fd_path(target);
    mount_path(source, &t, fstype, flags, data)
}

/// Plain mount(2).
pub fn mount_path(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> io::Result<()> {
    let r = unsafe {
        libc::mount(
            source.map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CString from text known to have no NUL (option strings, fs names).
pub fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}
