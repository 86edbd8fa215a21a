//! The `copy_to` mirror: the walked tree reproduced as a layer directory in the same pass as its tar.

use super::attrs::Attrs;
use super::sys::{self, Target};
use crate::paths::Root;
use anyhow::{bail, Context, Result};
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A non-directory node to recreate.
pub enum Special<'a> {
    Symlink(&'a [u8]),
    /// mknod type bits and device number (0/0 char devices are overlay whiteouts).
    Node(u32, libc::dev_t),
}

pub struct Mirror {
    root: Root,
    /// The same directory, readable (xattrs and times need a real fd).
    dir: OwnedFd,
}

impl Mirror {
    /// `path` must be an existing, empty directory.
    pub fn open(path: &Path) -> Result<Mirror> {
        let root = Root::open(path).with_context(|| format!("copy_to {}", path.display()))?;
        let dir = sys::open_dir(root.fd(), c".")
            .with_context(|| format!("copy_to {}", path.display()))?;
        if !sys::read_dir_names(dir.as_raw_fd())?.is_empty() {
            bail!("copy_to {} is not empty", path.display());
        }
        Ok(Mirror { root, dir })
    }

    pub fn root_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// Make a directory and give it everything but its times; returns it open.
    pub fn dir(&self, parent: RawFd, name: &CStr, a: &Attrs) -> io::Result<OwnedFd> {
        sys::mkdir_at(parent, name, 0o700)?;
        let fd = sys::open_dir(parent, name)?;
        a.apply(Target::Fd(fd.as_raw_fd()), false)?;
        Ok(fd)
    }

    /// Create an empty regular file for the data that follows.
    pub fn file(&self, parent: RawFd, name: &CStr) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        sys::open_nofollow(parent, name, flags, 0o600).map(File::from)
    }

    /// After its data: attributes, then times.
    pub fn finish_file(&self, f: &File, a: &Attrs) -> io::Result<()> {
        let t = Target::Fd(f.as_raw_fd());
        a.apply(t, false)?;
        a.apply_times(t)
    }

    pub fn special(&self, parent: RawFd, name: &CStr, s: Special, a: &Attrs) -> io::Result<()> {
        let symlink = matches!(s, Special::Symlink(_));
        match s {
            Special::Symlink(target) => sys::symlink_at(target, parent, name)?,
            Special::Node(kind, rdev) => sys::mknod_at(parent, name, kind, rdev)?,
        }
        let t = Target::At(parent, name);
        a.apply(t, symlink)?;
        a.apply_times(t)
    }

    /// Link `name` to `first`, a path (relative to the root) this mirror made earlier;
    /// its parent is resolved beneath the root refusing symlinks.
    pub fn hardlink(&self, first: &[u8], parent: RawFd, name: &CStr) -> io::Result<()> {
        let (dir, base) = match first.iter().rposition(|b| *b == b'/') {
            Some(i) => (&first[..i], &first[i + 1..]),
            None => (&b"."[..], first),
        };
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let d = self
            .root
            .open_in(Path::new(std::ffi::OsStr::from_bytes(dir)), flags, true)?;
        sys::link_at(d.as_raw_fd(), &sys::cname(base)?, parent, name)
    }
}
