//! The runtime's own procfs handle for its writes into /proc (sysctls, LSM labels).
//!
//! The container's /proc is a mount in a tree others may reach (shared volumes, a hook,
//! another container racing us): a procfs file mounted over the one we meant would take
//! the write, and an `is_procfs` check cannot tell, as both are procfs (CVE-2025-52881).
//! So writes go through a detached procfs instance nobody else holds, opened beneath it
//! without crossing a mount or following a magic link, as runc's pathrs `procfs` does.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::mounts::fdmount;
use crate::paths::{self, fstat, is_procfs, openat};

const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;

/// A private procfs instance (or, on old kernels, the best stand-in for one).
pub struct ProcHandle {
    fd: OwnedFd,
    dev: u64,
}

impl ProcHandle {
    /// A fresh procfs instance (fsopen: in our pid namespace, attached nowhere). Where
    /// the kernel refuses one (no fsopen; procfs too revealing in a user namespace), a
    /// detached clone of `mounted`, the procfs mount the caller trusts (the container's
    /// /proc, just made): a clone takes none of the mounts stacked on its files. Before
    /// Linux 5.2 there is neither, and `mounted` itself is used, every step checked to
    /// stay on its device.
    pub fn new(mounted: Option<&OwnedFd>) -> io::Result<ProcHandle> {
        let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        let fd = match fdmount::new_fs(c"proc", &[], attrs) {
            Ok(fd) => fd,
            Err(e) => {
                let Some(m) = mounted else { return Err(e) };
                if !is_procfs(m.as_raw_fd()) {
                    return Err(io::Error::other("not a procfs"));
                }
                match fdmount::clone_tree(m.as_raw_fd(), false) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                        openat(m.as_raw_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let dev = fstat(fd.as_raw_fd())?.st_dev;
        Ok(ProcHandle { fd, dev })
    }

    /// Open `rel` ("sys/net/ipv4/ip_forward", "thread-self/attr/exec") beneath the
    /// instance: no `..` out of it, no mount crossed, no magic link followed (the only
    /// symlinks taken are procfs's own `self` and `thread-self`).
    pub fn open(&self, rel: &str, flags: i32) -> io::Result<OwnedFd> {
        const RESOLVE_NO_XDEV: u64 = 0x01;
        const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
        const RESOLVE_BENEATH: u64 = 0x08;
        let c = CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
        let fd = match paths::openat2(self.fd.as_raw_fd(), &c, flags, resolve) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.walk(rel, flags)?,
            r => r?,
        };
        if !is_procfs(fd.as_raw_fd()) {
            return Err(io::Error::other(format!("/proc/{rel} is not on procfs")));
        }
        Ok(fd)
    }

    // Without openat2: one component at a time, never following a link but self and
    // thread-self (at the top), and never leaving the instance's device.
    fn walk(&self, rel: &str, flags: i32) -> io::Result<OwnedFd> {
        let mut todo: Vec<String> = rel.split('/').rev().map(String::from).collect();
        let mut cur: Option<OwnedFd> = None;
        let mut top = true;
        while let Some(comp) = todo.pop() {
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            let dir = cur.as_ref().unwrap_or(&self.fd).as_raw_fd();
            let name = CString::new(comp.as_str())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let last = todo.is_empty();
            let fd = openat(dir, &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            let st = fstat(fd.as_raw_fd())?;
            if st.st_dev != self.dev {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                if !(top && (comp == "self" || comp == "thread-self")) {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = paths::readlink_at(dir, &name)?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') || target.split('/').any(|c| c == "..") {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                todo.extend(target.split('/').rev().map(String::from));
                top = false;
                continue;
            }
            top = false;
            if last {
                let fd = openat(dir, &name, flags | libc::O_NOFOLLOW, 0)?;
                if fstat(fd.as_raw_fd())?.st_dev != self.dev {
                    return Err(io::Error::from_raw_os_error(libc::EXDEV));
                }
                return Ok(fd);
            }
            cur = Some(fd);
        }
        Err(io::Error::from_raw_os_error(libc::EISDIR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(h: &ProcHandle, rel: &str) -> io::Result<String> {
        let mut s = String::new();
        std::fs::File::from(h.open(rel, libc::O_RDONLY)?).read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn reads_through_self_and_refuses_magic_links_and_dotdot() {
        let own = std::fs::File::open("/proc").map(OwnedFd::from).unwrap();
        let h = ProcHandle::new(Some(&own)).unwrap();
        let status = read(&h, "self/status").unwrap();
        assert!(
            status.contains(&format!("Pid:\t{}", std::process::id())),
            "{status}"
        );
        assert!(read(&h, "thread-self/status").unwrap().starts_with("Name:"));
        // Magic links (the host's root, cwd, fds) are never followed, nor `..`.
        for bad in [
            "self/root/etc/hostname",
            "self/cwd",
            "self/fd/0",
            "../etc/hostname",
        ] {
            assert!(read(&h, bad).is_err(), "{bad} was opened");
        }
    }

    #[test]
    fn the_walk_without_openat2_keeps_the_same_rules() {
        let h = ProcHandle::new(None).unwrap();
        let mut s = String::new();
        let f = h.walk("self/status", libc::O_RDONLY).unwrap();
        std::fs::File::from(f).read_to_string(&mut s).unwrap();
        assert!(s.contains(&format!("Pid:\t{}", std::process::id())), "{s}");
        h.walk("sys/kernel/hostname", libc::O_RDONLY).unwrap();
        for bad in [
            "self/root/etc/hostname",
            "self/cwd",
            "self/fd/0",
            "../etc",
            "1/../..",
        ] {
            assert!(h.walk(bad, libc::O_RDONLY).is_err(), "{bad} was opened");
        }
    }
}
