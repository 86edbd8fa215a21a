//! File primitives the store is built on: atomic replacement, directory fsync, random names.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `n` random bytes as hex, for temp and container names.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let r =
            unsafe { libc::getrandom(buf[got..].as_mut_ptr() as *mut libc::c_void, n - got, 0) };
        if r > 0 {
            got += r as usize;
        }
    }
    super::super::digest::hex(&buf)
}

/// fsync a directory, so that renames into it survive a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    if unsafe { libc::fsync(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("fsync {}", dir.display()));
    }
    Ok(())
}

/// Replace `dest` with `bytes` atomically: a temp file in `tmp` (same filesystem), fsync,
/// rename, fsync of the parent. A reader sees the old file or the new one, never half.
pub fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let t = tmp.join(format!("{name}.{}", random_hex(8)));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&t)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&t, dest)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&t);
        return Err(e).with_context(|| format!("write {}", dest.display()));
    }
    if let Some(parent) = dest.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Remove a tree that may be half gone (a crashed removal); missing is fine.
pub fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// An O_PATH fd of a directory (not a symlink to one), for overlay layers.
pub fn open_dir(d: &Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(d.as_os_str().as_bytes())?;
    crate::paths::openat(
        libc::AT_FDCWD,
        &c,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .with_context(|| format!("open {}", d.display()))
}

/// A directory for a unit test, removed when dropped.
#[cfg(test)]
pub struct TestDir(pub std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub fn new(what: &str) -> TestDir {
        let p = std::env::temp_dir().join(format!("strata-{what}-{}", random_hex(6)));
        fs::create_dir_all(&p).expect("a test dir");
        TestDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
