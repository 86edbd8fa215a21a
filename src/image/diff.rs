//! `diff`: what a container changed, as `docker diff` lists it (`A`dded, `C`hanged,
//! `D`eleted), read from its upper dir alone.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::store::{open_dir, Store};
use super::whiteout;
use crate::paths::{fstat, openat};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// 'A', 'C' or 'D'.
    pub kind: char,
    pub path: String,
}

/// The changes of container `key`, sorted by path.
pub fn diff(store: &Store, key: &str) -> Result<Vec<Change>> {
    let c = store.container(key)?;
    let upper = store.container_dir(&c.id).join("upper");
    let fds: Vec<OwnedFd> = c
        .layers
        .iter()
        .rev()
        .map(|l| open_dir(&store.layer_diff(l)))
        .collect::<Result<_>>()?;
    // The image's merged view, to tell a new path from a changed one.
    let below = if fds.is_empty() {
        None
    } else {
        let b: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        Some(crate::overlay::mount_readonly(&b).context("mount the image's view")?)
    };
    let mut out = vec![];
    let top = openat(
        libc::AT_FDCWD,
        &CString::new(upper.as_os_str().as_bytes())?,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .with_context(|| format!("open {}", upper.display()))?;
    walk(&top, Path::new("/"), below.as_ref(), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn exists_below(below: Option<&OwnedFd>, p: &Path) -> bool {
    let Some(b) = below else { return false };
    let rel =
        CString::new(p.strip_prefix("/").unwrap_or(p).as_os_str().as_bytes()).unwrap_or_default();
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // Parents in the upper are real dirs, so below they are dirs or the path is new.
    unsafe {
        libc::fstatat(
            b.as_raw_fd(),
            rel.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}

fn walk(dir: &OwnedFd, at: &Path, below: Option<&OwnedFd>, out: &mut Vec<Change>) -> Result<()> {
    for name in list(dir)? {
        let c = CString::new(name.as_bytes())?;
        let path: PathBuf = at.join(&name);
        let fd = openat(dir.as_raw_fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = fstat(fd.as_raw_fd())?;
        if whiteout::is_overlay_whiteout(&st) {
            out.push(Change {
                kind: 'D',
                path: path.to_string_lossy().into(),
            });
            continue;
        }
        let kind = if exists_below(below, &path) { 'C' } else { 'A' };
        out.push(Change {
            kind,
            path: path.to_string_lossy().into(),
        });
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = openat(
                dir.as_raw_fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            walk(&sub, &path, below, out)?;
        }
    }
    Ok(())
}

// Names in a directory fd (without . and ..).
fn list(dir: &OwnedFd) -> Result<Vec<std::ffi::OsString>> {
    let p = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut v: Vec<_> = std::fs::read_dir(&p)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    v.sort();
    Ok(v)
}
