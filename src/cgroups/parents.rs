//! Parent cgroups strata made for a nested `cgroupsPath`, shared by the containers of one
//! `--root`, so that the last container out removes them, not whichever made them.
//!
//! Containers under one new parent (containerd's `/<namespace>`, a pod) are created and
//! deleted in any order: the maker of the parent is rarely the last to go. The list of
//! such parents lives in `<root>/@cgroup-parents` (JSON; `@` is never in a container ID),
//! read and changed only under an exclusive flock of the root dir. The same lock covers
//! making a container's dirs, so within one root a parent is never removed between
//! another create's check and its mkdir. Each entry keeps the dir's inode (on cgroupfs,
//! the cgroup's never-reused id): a dir someone else removed and made again is not ours.

use anyhow::Result;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const FILE: &str = "@cgroup-parents";

/// True if `root` has noted parents at all (checked without the lock: a list made after
/// this look is for containers created later, not for the one being removed).
pub fn any(root: &Path) -> bool {
    root.join(FILE).exists()
}

/// The root's lock, held while the dirs and the list change.
pub struct Locked {
    _fd: OwnedFd,
    file: PathBuf,
    list: Vec<Noted>,
    changed: bool,
}

/// A parent cgroup we made, and its inode then.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Noted {
    path: PathBuf,
    ino: u64,
}

fn ino(p: &Path) -> Option<u64> {
    fs::metadata(p).ok().map(|m| m.ino())
}

/// Lock `root` (which exists: the container's state dir is in it) and read the list.
pub fn lock(root: &Path) -> Result<Locked> {
    let fd = crate::state::lock_dir(root)?;
    let file = root.join(FILE);
    // A list we cannot read only means parents stay behind, as with runc.
    let list = fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(Locked {
        _fd: fd,
        file,
        list,
        changed: false,
    })
}

impl Locked {
    /// Note parents this container just made.
    pub fn add(&mut self, dirs: impl IntoIterator<Item = PathBuf>) {
        for path in dirs {
            let Some(ino) = ino(&path) else { continue };
            self.list.retain(|n| n.path != path);
            self.list.push(Noted { path, ino });
            self.changed = true;
        }
    }

    /// Remove the noted parents of `leaf` that are now empty, deepest first, stopping
    /// at the first that is not ours or still holds another container.
    pub fn prune(&mut self, leaf: &Path) {
        let mut p = leaf.to_path_buf();
        while p.pop() {
            let Some(i) = self.list.iter().position(|n| n.path == p) else {
                return;
            };
            if ino(&p).is_some_and(|ino| ino != self.list[i].ino) {
                self.list.swap_remove(i); // made again by someone else: not ours
                self.changed = true;
                return;
            }
            match fs::remove_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return,
            }
            self.list.swap_remove(i);
            self.changed = true;
        }
    }

    /// Write the list back (or remove the file once empty: an idle root stays empty).
    pub fn save(self) {
        if !self.changed {
            return;
        }
        let r = if self.list.is_empty() {
            match fs::remove_file(&self.file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        } else {
            let tmp = self.file.with_extension("tmp");
            serde_json::to_vec(&self.list)
                .map_err(std::io::Error::other)
                .and_then(|b| fs::write(&tmp, b))
                .and_then(|_| fs::rename(&tmp, &self.file))
        };
        if let Err(e) = r {
            tracing::warn!("update {}: {e}", self.file.display());
        }
    }
}
