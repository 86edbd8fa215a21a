//! Resolving and creating paths inside a rootfs without ever leaving it.
//!
//! Every path the container's image can influence (mount destinations, /dev entries,
//! masked and read-only paths, sysctl files) is opened through [`Root`], which scopes
//! symlinks and `..` to the rootfs: `openat2(RESOLVE_IN_ROOT)` when the kernel has it,
//! else a component-by-component walk with the same semantics (CVE-2021-30465,
//! CVE-2024-45310). Callers then act on the returned fd, never on the path again.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;
const MAX_SYMLINKS: usize = 40;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

// 0 = unknown, 1 = openat2 works, 2 = use the fallback walk.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// Force the fallback resolver (tests and `STRATA_NO_OPENAT2=1`, like crun's no-openat2 CI leg).
pub fn disable_openat2() {
    OPENAT2.store(2, Ordering::Relaxed);
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn last_err<T>() -> io::Result<T> {
    Err(io::Error::last_os_error())
}

/// openat() returning an OwnedFd.
pub fn openat(dirfd: RawFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return last_err();
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat2(2) with `resolve` flags; ENOSYS when the kernel lacks it (or seccomp hides it:
/// EPERM on the first call) or it is disabled, for the caller to fall back.
pub fn openat2(dirfd: RawFd, name: &CStr, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    if OPENAT2.load(Ordering::Relaxed) == 2 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd >= 0 {
        OPENAT2.store(1, Ordering::Relaxed);
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) if OPENAT2.load(Ordering::Relaxed) == 0 => {
            OPENAT2.store(2, Ordering::Relaxed);
            Err(io::Error::from_raw_os_error(libc::ENOSYS))
        }
        _ => Err(e),
    }
}

/// fstat an fd.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return last_err();
    }
    Ok(st)
}

/// Is `fd` on a procfs? (Checked before trusting anything as /proc.)
pub fn is_procfs(fd: RawFd) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstatfs(fd, &mut s) } == 0) && s.f_type as i64 == PROC_SUPER_MAGIC
}

/// The path by which mount(2) and friends reach an fd (a magic link: no re-resolution).
pub fn fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).unwrap()
}

/// A rootfs directory held open; all lookups are relative to it and cannot escape it.
pub struct Root {
    fd: OwnedFd,
    pub path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = openat(
            libc::AT_FDCWD,
            &cstr(path)?,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Open `path` (absolute or relative, both meaning "inside the root").
    /// `no_symlinks` refuses any symlink on the way (ELOOP), for /proc, /sys and /dev.
    pub fn open_in(&self, path: &Path, flags: i32, no_symlinks: bool) -> io::Result<OwnedFd> {
        let rel = relative(path);
        let resolve = RESOLVE_IN_ROOT
            | RESOLVE_NO_MAGICLINKS
            | if no_symlinks { RESOLVE_NO_SYMLINKS } else { 0 };
        match openat2(self.fd(), &cstr(&rel)?, flags, resolve) {
            // EAGAIN: a concurrent rename raced the lookup; the walk is still safe.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EAGAIN)) => {
                self.walk(&rel, flags, no_symlinks)
            }
            r => r,
        }
    }

    // The fallback: one component at a time with O_NOFOLLOW, symlinks re-rooted by hand.
    fn walk(&self, rel: &Path, flags: i32, no_symlinks: bool) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: Vec<Vec<u8>> = components(rel);
        todo.reverse();
        let mut links = 0;
        let dot = CString::new(".").unwrap();
        while let Some(comp) = todo.pop() {
            if comp == b"." || comp.is_empty() {
                continue;
            }
            if comp == b".." {
                stack.pop(); // ".." at the root stays at the root
                continue;
            }
            let cur = stack.last().map(|f| f.as_raw_fd()).unwrap_or(self.fd());
            let name = CString::new(comp.clone())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let last = todo.is_empty();
            let fd = openat(cur, &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            let st = fstat(fd.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                if no_symlinks {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                // Like RESOLVE_NO_MAGICLINKS: procfs links other than self/thread-self are
                // magic (/proc/self/cwd, fd/N) and would otherwise be re-rooted by text.
                if is_procfs(cur) && comp != b"self" && comp != b"thread-self" {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = readlink_at(cur, &name)?;
                if target.is_absolute() {
                    stack.clear();
                }
                let mut more = components(&target);
                more.reverse();
                todo.extend(more);
                continue;
            }
            if last {
                // Reopen with the caller's flags relative to the parent, still no-follow.
                return openat(cur, &name, flags | libc::O_NOFOLLOW, 0);
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            stack.push(fd);
        }
        let cur = stack.last().map(|f| f.as_raw_fd()).unwrap_or(self.fd());
        openat(cur, &dot, flags, 0)
    }

    /// mkdir -p inside the root; returns an O_PATH fd of the final directory.
    /// A dangling symlink on the way has its target created inside the root, as runc does.
    pub fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<OwnedFd> {
        self.mkdir_all_depth(path, mode, 0)
    }

    fn mkdir_all_depth(&self, path: &Path, mode: u32, depth: usize) -> io::Result<OwnedFd> {
        if depth > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let dflags = libc::O_PATH | libc::O_DIRECTORY;
        let rel = relative(path);
        let comps: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let prefix = |n: usize| -> PathBuf { comps[..n].iter().collect() };
        // The deepest ancestor that exists, resolved safely (usually the path itself).
        let mut have = comps.len();
        let mut fd = loop {
            let p = if have == 0 {
                PathBuf::from(".")
            } else {
                prefix(have)
            };
            match self.open_in(&p, dflags, false) {
                Ok(fd) => break fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && have > 0 => have -= 1,
                Err(e) => return Err(e),
            }
        };
        // Below it, create one level at a time relative to the fd just made: mkdirat on a
        // trusted dirfd, then O_NOFOLLOW, so a swapped-in symlink fails instead of leading out.
        for n in have..comps.len() {
            let name = CString::new(comps[n].as_bytes())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            if unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), mode) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
                // It appeared meanwhile, or is a dangling symlink: resolve it inside the root.
                match self.open_in(&prefix(n + 1), dflags, false) {
                    Ok(f) => {
                        fd = f;
                        continue;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        let target = readlink_at(fd.as_raw_fd(), &name)?;
                        let mut next = if target.is_absolute() {
                            target
                        } else {
                            prefix(n).join(target)
                        };
                        next.extend(&comps[n + 1..]);
                        return self.mkdir_all_depth(&next, mode, depth + 1);
                    }
                    Err(e) => return Err(e),
                }
            }
            fd = openat(fd.as_raw_fd(), &name, dflags | libc::O_NOFOLLOW, 0)?;
        }
        Ok(fd)
    }

    /// Make sure a regular file exists at `path` (for file bind mounts); O_PATH fd to it.
    pub fn ensure_file(&self, path: &Path) -> io::Result<OwnedFd> {
        match self.open_in(path, libc::O_PATH, false) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
        let rel = relative(path);
        let parent = self.mkdir_all(rel.parent().unwrap_or(Path::new("")), 0o755)?;
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let n = CString::new(name.as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match openat(
            parent.as_raw_fd(),
            &n,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
            0o644,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.open_in(path, libc::O_PATH, false)
    }
}

/// readlinkat() into a path.
pub fn readlink_at(dirfd: RawFd, name: &CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe {
        libc::readlinkat(
            dirfd,
            name.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return last_err();
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

/// `path` as a relative path with no leading `/`, cleaned lexically like runc's
/// filepath.Clean: `..` pops a component and never climbs above the root.
pub fn relative(path: &Path) -> PathBuf {
    let mut r = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => r.push(n),
            Component::ParentDir => {
                r.pop();
            }
            _ => {}
        }
    }
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

fn components(p: &Path) -> Vec<Vec<u8>> {
    p.as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn check_escape(fallback: bool) {
        if fallback {
            disable_openat2();
        }
        let t =
            std::env::temp_dir().join(format!("strata-paths-{}-{fallback}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("root/etc")).unwrap();
        std::fs::write(t.join("secret"), b"host").unwrap();
        std::fs::write(t.join("root/etc/secret"), b"inside").unwrap();
        symlink("/etc", t.join("root/abs")).unwrap();
        symlink("../../../../etc", t.join("root/rel")).unwrap();
        let root = Root::open(&t.join("root")).unwrap();
        // Both an absolute and a ../-climbing link land inside the root, never on the host.
        for p in ["abs/secret", "rel/secret", "/../../secret"] {
            let want = if p.ends_with("/secret") && p.starts_with("/..") {
                None
            } else {
                Some("inside")
            };
            match root.open_in(Path::new(p), libc::O_RDONLY, false) {
                Ok(fd) => {
                    let s =
                        std::fs::read_to_string(fd_path(fd.as_raw_fd()).to_str().unwrap()).unwrap();
                    assert_eq!(Some(s.as_str()), want, "{p}");
                }
                Err(e) => assert!(want.is_none(), "{p}: {e}"),
            }
        }
        assert_eq!(
            root.open_in(Path::new("abs"), libc::O_PATH, true)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ELOOP)
        );
        // mkdir_all through a symlink creates inside the root.
        root.mkdir_all(Path::new("/abs/newdir/x"), 0o755).unwrap();
        assert!(t.join("root/etc/newdir/x").is_dir());
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn no_escape_openat2() {
        check_escape(false);
    }

    #[test]
    fn no_escape_fallback() {
        check_escape(true);
    }
}
