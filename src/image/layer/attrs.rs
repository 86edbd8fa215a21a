//! An inode's owner, mode, xattrs and times, applied in the order that keeps setuid and file caps.

use super::sys::Target;
use std::io;

/// Metadata to give a created inode.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (seconds, nanoseconds)
    pub mtime: (i64, u32),
    pub atime: (i64, u32),
    /// Sorted (name, value) pairs.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attrs {
    /// Owner, then mode (chown clears setuid/setgid), then xattrs (chown also clears
    /// security.capability). Symlinks have no mode of their own.
    pub fn apply(&self, t: Target, symlink: bool) -> io::Result<()> {
        t.chown(self.uid, self.gid)?;
        if !symlink {
            t.chmod(self.mode & 0o7777)?;
        }
        for (k, v) in &self.xattrs {
            t.set_xattr(k, v)?;
        }
        Ok(())
    }

    /// atime and mtime; last, since writing children or data changes them.
    pub fn apply_times(&self, t: Target) -> io::Result<()> {
        t.set_times(self.atime, self.mtime)
    }

    /// The attributes `st` and `xattrs` describe, with mtime (and atime) `mtime`.
    pub fn from_stat(st: &libc::stat, mtime: (i64, u32), xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Attrs {
        Attrs {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime,
            atime: mtime,
            xattrs,
        }
    }
}
