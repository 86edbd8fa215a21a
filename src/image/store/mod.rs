//! The image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) with
//! our layer dirs, containers and temp space beside it, and the lock that orders writers.
//!
//! Every change is made in a private temp dir and published by rename under the store
//! lock, so a `kill -9` at any point leaves a valid store: at worst unreferenced blobs or
//! layers (which `gc` frees) and temp dirs (which the next command sweeps).

pub mod blobs;
pub mod containers;
pub mod direct;
pub mod files;
pub mod layers;
pub mod refs;

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use files::{fsync_dir, open_dir, random_hex, remove_tree, write_atomic};

/// `--root` when neither the flag nor `STRATA_IMAGE_ROOT` is given.
pub const DEFAULT_ROOT: &str = "/var/lib/strata";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = "lock";

/// An open store. Cheap: holds only the root path.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

/// The store's exclusive lock, held while this value lives (a crash releases it).
pub struct Locked<'a> {
    pub store: &'a Store,
    _fd: OwnedFd,
}

/// A private working dir under `tmp/`, flocked so that the sweep of a concurrent command
/// leaves it alone; removed with whatever is still in it when dropped.
pub struct TmpDir {
    pub path: PathBuf,
    _fd: OwnedFd,
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn flock(fd: &OwnedFd, nonblock: bool) -> std::io::Result<bool> {
    let op = libc::LOCK_EX | if nonblock { libc::LOCK_NB } else { 0 };
    if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e)
}

impl Store {
    /// Open the store at `root`, making an empty one if there is none, and sweep what a
    /// crashed command left in `tmp/` when nobody else is writing.
    pub fn open(root: &Path) -> Result<Store> {
        let s = Store {
            root: root.to_path_buf(),
        };
        let mk = |p: &Path, mode: u32| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(p)
                .with_context(|| format!("create store dir {}", p.display()))
        };
        mk(root, 0o711)?;
        if !root.join(INDEX_FILE).exists() || !root.join(LAYOUT_FILE).exists() {
            mk(&s.tmp_root(), 0o700)?;
            let _l = s.lock()?;
            s.init_layout()?;
        }
        for d in [
            s.blobs_dir(),
            s.layers_dir(),
            s.containers_dir(),
            s.images_meta_dir(),
        ] {
            mk(&d, 0o711)?;
        }
        mk(&s.tmp_root(), 0o700)?;
        if let Some(l) = s.try_lock()? {
            l.sweep_tmp();
        }
        Ok(s)
    }

    fn init_layout(&self) -> Result<()> {
        let tmp = self.tmp_root();
        if !self.root.join(LAYOUT_FILE).exists() {
            write_atomic(&tmp, &self.root.join(LAYOUT_FILE), LAYOUT)?;
        } else {
            let have = fs::read(self.root.join(LAYOUT_FILE))?;
            let v: serde_json::Value = serde_json::from_slice(&have)
                .with_context(|| format!("{}: not an OCI image layout", self.root.display()))?;
            if v["imageLayoutVersion"] != "1.0.0" {
                bail!(
                    "{}: unsupported imageLayoutVersion {}",
                    self.root.join(LAYOUT_FILE).display(),
                    v["imageLayoutVersion"]
                );
            }
        }
        if !self.root.join(INDEX_FILE).exists() {
            let idx = super::oci::Index::default();
            write_atomic(&tmp, &self.index_path(), &super::oci::to_bytes(&idx))?;
        }
        Ok(())
    }

    /// Wait for the store lock.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let fd = self.lock_fd()?;
        flock(&fd, false).with_context(|| format!("lock {}", self.root.display()))?;
        Ok(Locked {
            store: self,
            _fd: fd,
        })
    }

    fn try_lock(&self) -> Result<Option<Locked<'_>>> {
        let fd = self.lock_fd()?;
        Ok(flock(&fd, true)?.then_some(Locked {
            store: self,
            _fd: fd,
        }))
    }

    fn lock_fd(&self) -> Result<OwnedFd> {
        let p = self.root.join(LOCK_FILE);
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .with_context(|| format!("open {}", p.display()))?;
        Ok(f.into())
    }

    /// A new private working dir for one operation. Made under the store lock, so a
    /// sweep never sees it before it is flocked.
    pub fn tmpdir(&self) -> Result<TmpDir> {
        let _l = self.lock()?;
        let path = self.tmp_root().join(random_hex(8));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("create {}", path.display()))?;
        let fd: OwnedFd = fs::File::open(&path)?.into();
        flock(&fd, false)?;
        Ok(TmpDir { path, _fd: fd })
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// Local facts about images that are not part of them (the parent of a commit).
    pub fn images_meta_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn tmp_root(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

impl Locked<'_> {
    /// Remove every temp dir no live command holds (a killed command's leftovers).
    pub fn sweep_tmp(&self) -> usize {
        let Ok(rd) = fs::read_dir(self.store.tmp_root()) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let p = e.path();
            let free = match fs::File::open(&p) {
                Ok(f) => flock(&f.into(), true).unwrap_or(false),
                Err(_) => false,
            };
            // Plain files here are atomic writes cut short (they are made under the lock).
            if free && remove_tree_or_file(&p) {
                n += 1;
            }
        }
        n
    }

    /// A temp dir for moving things out of sight before deleting them, so a half-done
    /// removal is never visible in `layers/` or `containers/`.
    pub fn trash(&self, p: &Path) -> Result<()> {
        let t = self
            .store
            .tmp_root()
            .join(format!("trash-{}", random_hex(8)));
        match fs::rename(p, &t) {
            Ok(()) => remove_tree(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", p.display())),
        }
    }
}

fn remove_tree_or_file(p: &Path) -> bool {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).is_ok(),
        Ok(_) => fs::remove_file(p).is_ok(),
        Err(_) => false,
    }
}
