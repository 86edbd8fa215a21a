//! The `*at` and xattr system calls the layer code makes, on directory fds, never following a symlink.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A file name (one component) as a C string.
pub fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// lstat of `name` in `dirfd`.
pub fn lstat_at(dirfd: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// lstat, with a missing name as `None`.
pub fn lstat_opt(dirfd: RawFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    match lstat_at(dirfd, name) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

pub fn is_dir(st: &libc::stat) -> bool {
    file_type(st) == libc::S_IFDIR
}

/// Open `name` beneath `dirfd` without following a final symlink (ELOOP instead).
pub fn open_nofollow(dirfd: RawFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    crate::paths::openat(dirfd, name, flags | libc::O_NOFOLLOW | libc::O_NOCTTY, mode)
}

/// Open the directory `name` beneath `dirfd` for reading its entries and xattrs.
pub fn open_dir(dirfd: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    open_nofollow(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// The names in a directory (without `.` and `..`), unsorted.
pub fn read_dir_names(fd: RawFd) -> io::Result<Vec<Vec<u8>>> {
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut dir = nix::dir::Dir::from_fd(unsafe { OwnedFd::from_raw_fd(dup) })?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

pub fn mkdir_at(dirfd: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    check(unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) })
}

pub fn mknod_at(dirfd: RawFd, name: &CStr, mode: u32, rdev: libc::dev_t) -> io::Result<()> {
    check(unsafe { libc::mknodat(dirfd, name.as_ptr(), mode, rdev) })
}

pub fn symlink_at(target: &[u8], dirfd: RawFd, name: &CStr) -> io::Result<()> {
    let t = cname(target)?;
    check(unsafe { libc::symlinkat(t.as_ptr(), dirfd, name.as_ptr()) })
}

/// A hard link that never follows `old` if it is a symlink (links the symlink itself).
pub fn link_at(olddir: RawFd, old: &CStr, newdir: RawFd, new: &CStr) -> io::Result<()> {
    check(unsafe { libc::linkat(olddir, old.as_ptr(), newdir, new.as_ptr(), 0) })
}

pub fn unlink_at(dirfd: RawFd, name: &CStr, dir: bool) -> io::Result<()> {
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    check(unsafe { libc::unlinkat(dirfd, name.as_ptr(), flags) })
}

/// readlinkat of `name` in `dirfd`, as bytes.
pub fn readlink_at(dirfd: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = unsafe { libc::readlinkat(dirfd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Remove `name` in `dirfd` and, if it is a directory, everything below it; no symlink is followed.
pub fn remove_all_at(dirfd: RawFd, name: &CStr) -> io::Result<()> {
    let st = lstat_at(dirfd, name)?;
    if !is_dir(&st) {
        return unlink_at(dirfd, name, false);
    }
    let fd = open_dir(dirfd, name)?;
    for child in read_dir_names(fd.as_raw_fd())? {
        remove_all_at(fd.as_raw_fd(), &cname(&child)?)?;
    }
    unlink_at(dirfd, name, true)
}

/// Where an inode's metadata calls go: an open fd, or a name in a directory fd (for
/// symlinks, devices and fifos, which must not be opened).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Fd(RawFd),
    At(RawFd, &'a CStr),
}

impl Target<'_> {
    // The l*xattr path of an `At` target: the dir fd's magic link then one final name, so
    // nothing is re-resolved but that name, and that is never followed.
    fn proc_path(dirfd: RawFd, name: &CStr) -> io::Result<CString> {
        let mut p = format!("/proc/self/fd/{dirfd}/").into_bytes();
        p.extend_from_slice(name.to_bytes());
        cname(&p)
    }

    pub fn chown(self, uid: u32, gid: u32) -> io::Result<()> {
        check(match self {
            Target::Fd(fd) => unsafe { libc::fchown(fd, uid, gid) },
            Target::At(d, n) => unsafe {
                libc::fchownat(d, n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            },
        })
    }

    /// chmod; for `At`, through an O_PATH fd of the node so a symlink is never followed.
    pub fn chmod(self, mode: u32) -> io::Result<()> {
        match self {
            Target::Fd(fd) => check(unsafe { libc::fchmod(fd, mode) }),
            Target::At(d, n) => {
                let fd = open_nofollow(d, n, libc::O_PATH, 0)?;
                let p = crate::paths::fd_path(fd.as_raw_fd());
                check(unsafe { libc::chmod(p.as_ptr(), mode) })
            }
        }
    }

    /// Set atime and mtime (seconds, nanoseconds).
    pub fn set_times(self, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
        let ts = [
            libc::timespec {
                tv_sec: atime.0,
                tv_nsec: atime.1 as _,
            },
            libc::timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1 as _,
            },
        ];
        check(match self {
            Target::Fd(fd) => unsafe { libc::futimens(fd, ts.as_ptr()) },
            Target::At(d, n) => unsafe {
                libc::utimensat(d, n.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            },
        })
    }

    pub fn set_xattr(self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let key = cname(name)?;
        let (v, len) = (value.as_ptr().cast(), value.len());
        check(match self {
            Target::Fd(fd) => unsafe { libc::fsetxattr(fd, key.as_ptr(), v, len, 0) },
            Target::At(d, n) => {
                let p = Self::proc_path(d, n)?;
                unsafe { libc::lsetxattr(p.as_ptr(), key.as_ptr(), v, len, 0) }
            }
        })
    }

    /// All xattrs (name, value), sorted by name.
    pub fn xattrs(self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let src = match self {
            Target::Fd(fd) => XattrSource::Fd(fd),
            Target::At(d, n) => XattrSource::Path(Self::proc_path(d, n)?),
        };
        let list = grow(|buf| src.list(buf))?;
        let mut out = Vec::new();
        for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let key = cname(name)?;
            match grow(|buf| src.get(&key, buf)) {
                Ok(v) => out.push((name.to_vec(), v)),
                // Removed between list and get.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort();
        Ok(out)
    }
}

enum XattrSource {
    Fd(RawFd),
    Path(CString),
}

impl XattrSource {
    fn list(&self, buf: &mut [u8]) -> isize {
        let (b, len) = (buf.as_mut_ptr().cast(), buf.len());
        match self {
            XattrSource::Fd(fd) => unsafe { libc::flistxattr(*fd, b, len) },
            XattrSource::Path(p) => unsafe { libc::llistxattr(p.as_ptr(), b, len) },
        }
    }

    fn get(&self, key: &CStr, buf: &mut [u8]) -> isize {
        let (b, len) = (buf.as_mut_ptr().cast(), buf.len());
        match self {
            XattrSource::Fd(fd) => unsafe { libc::fgetxattr(*fd, key.as_ptr(), b, len) },
            XattrSource::Path(p) => unsafe { libc::lgetxattr(p.as_ptr(), key.as_ptr(), b, len) },
        }
    }
}

// Call a list/get xattr function with a buffer that grows on ERANGE.
fn grow(mut f: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = f(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    }
}
