//! What the layers below show at a path, looked up as overlayfs would (whiteouts and opaque dirs stop it), never following a symlink.

use super::attrs::Attrs;
use super::sys::{self, Target};
use crate::image::whiteout::{self, XattrRule};
use anyhow::{Context, Result};
use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

/// What the layer being unpacked has at a path, as far as hiding the lowers goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Here {
    /// Nothing: the lowers decide.
    Missing,
    /// A directory that merges with the lowers' (a lower non-directory under it is hidden).
    Dir,
    /// A whiteout, an opaque directory or a non-directory: nothing below shows through.
    Hides,
}

/// What the lowers show at a path.
pub enum Found {
    Nothing,
    /// The top-most lower directory there, open for reading, and its stat.
    Dir(OwnedFd, libc::stat),
    /// A non-directory: its parent directory and its stat.
    Other(OwnedFd, libc::stat),
}

/// Waits until the lower layers are complete (they may still be unpacking when this layer
/// starts); an error if one of them failed.
#[derive(Clone)]
pub struct Gate(pub Arc<dyn Fn() -> Result<()> + Send + Sync>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// The lower layer dirs, top-most first, opened at their first use: most layers never
/// look below themselves (their tars list every directory they use), so a layer unpacks
/// beside the layers under it and waits for them only when it must look.
pub struct Lowers {
    paths: Vec<PathBuf>,
    gate: Option<Gate>,
    roots: OnceCell<Vec<OwnedFd>>,
}

impl Lowers {
    pub fn new(paths: &[PathBuf], gate: Option<Gate>) -> Lowers {
        Lowers {
            paths: paths.to_vec(),
            gate,
            roots: OnceCell::new(),
        }
    }

    fn roots(&self) -> Result<&[OwnedFd]> {
        if let Some(r) = self.roots.get() {
            return Ok(r);
        }
        if !self.paths.is_empty() {
            if let Some(g) = &self.gate {
                (g.0)()?;
            }
        }
        let mut roots = Vec::new();
        for p in &self.paths {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())?;
            let flags = libc::O_PATH | libc::O_DIRECTORY;
            let fd = crate::paths::openat(libc::AT_FDCWD, &c, flags, 0)
                .with_context(|| format!("lower layer {}", p.display()))?;
            roots.push(fd);
        }
        Ok(self.roots.get_or_init(|| roots))
    }

    /// The top-most lower's root directory, open for reading.
    pub fn top_root(&self) -> Result<Option<OwnedFd>> {
        match self.roots()?.first() {
            Some(r) => Ok(Some(sys::open_dir(r.as_raw_fd(), c".")?)),
            None => Ok(None),
        }
    }

    /// What the merged lowers show at `comps`, under a layer that has `here(prefix)` at each
    /// prefix. A symlink or other non-directory the path would have to pass through, with
    /// nothing in this layer above it, is an error: creating the directory here instead would
    /// change what the path means (a write through a lower symlink, CVE-2021-29136 class).
    pub fn lookup(&self, comps: &[Vec<u8>], here: impl Fn(&[Vec<u8>]) -> Here) -> Result<Found> {
        let mut live = Vec::new();
        for r in self.roots()? {
            live.push(sys::open_nofollow(
                r.as_raw_fd(),
                c".",
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )?);
        }
        for k in 0..comps.len() {
            if here(&comps[..k]) == Here::Hides || live.is_empty() {
                return Ok(Found::Nothing);
            }
            let (dirs, other) = step(live, &comps[k])?;
            if k + 1 == comps.len() {
                if here(comps) == Here::Hides {
                    return Ok(Found::Nothing);
                }
                return Ok(match (dirs.into_iter().next(), other) {
                    (Some((d, st)), _) => Found::Dir(d, st),
                    (None, Some((p, st))) => Found::Other(p, st),
                    (None, None) => Found::Nothing,
                });
            }
            if let Some((_, st)) = other {
                if here(&comps[..=k]) == Here::Missing {
                    return Err(not_a_dir(&comps[..=k], &st));
                }
            }
            live = dirs.into_iter().map(|(d, _)| d).collect();
        }
        Ok(Found::Nothing)
    }
}

/// The error for a path whose directory, in the merged lowers, is something else.
pub fn not_a_dir(comps: &[Vec<u8>], st: &libc::stat) -> anyhow::Error {
    let what = if sys::file_type(st) == libc::S_IFLNK {
        "a symlink"
    } else {
        "not a directory"
    };
    let shown = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
    anyhow::anyhow!("{shown:?} is {what} in a lower layer")
}

type Step = (Vec<(OwnedFd, libc::stat)>, Option<(OwnedFd, libc::stat)>);

// One component down in each live lower, top-down: the directories that merge there, and the
// non-directory that shows if no directory is above it. A whiteout, an opaque directory or a
// non-directory ends the stack.
fn step(live: Vec<OwnedFd>, comp: &[u8]) -> Result<Step> {
    let name = sys::cname(comp)?;
    let mut dirs = Vec::new();
    for fd in live {
        let Some(st) = sys::lstat_opt(fd.as_raw_fd(), &name)? else {
            continue;
        };
        if whiteout::is_overlay_whiteout(&st) {
            break;
        }
        if !sys::is_dir(&st) {
            let other = dirs.is_empty().then_some((fd, st));
            return Ok((dirs, other));
        }
        let d = sys::open_dir(fd.as_raw_fd(), &name)?;
        let opaque = whiteout::is_opaque(d.as_raw_fd())?;
        dirs.push((d, st));
        if opaque {
            break;
        }
    }
    Ok((dirs, None))
}

/// The attributes of a lower inode to give its copy in this layer: owner, mode, times and
/// the xattrs a layer carries.
pub fn attrs_of(t: Target, st: &libc::stat) -> io::Result<Attrs> {
    let xattrs = t
        .xattrs()?
        .into_iter()
        .filter(|(k, _)| whiteout::xattr_rule(k) == XattrRule::Carry)
        .collect();
    let mut a = Attrs::from_stat(st, (st.st_mtime, st.st_mtime_nsec as u32), xattrs);
    a.atime = (st.st_atime, st.st_atime_nsec as u32);
    Ok(a)
}
