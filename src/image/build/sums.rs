//! The content checksums of build-context files, remembered by inode and times
//! (`build-cache/sums`): a cached rebuild stats its COPY sources instead of reading them.
//!
//! A sum is keyed by (dev, ino, size, mtime ns, ctime ns). ctime cannot be set from user
//! space and moves on every write, chmod, chown and rename, so a file whose key is
//! unchanged has unchanged content, as git's index assumes. The one hole is a write in the
//! same clock tick as the read that was hashed: sums of files changed less than `RACY`
//! before they were read are not kept (git's "racily clean" rule).

use anyhow::Result;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::image::layer::placed::HostFile;
use crate::image::store::{write_atomic, Store};

const FILE: &str = "sums";
const MAGIC: &[u8] = b"strata-build-sums-v1\n";
const RECORD: usize = 5 * 8 + 32;
/// Beyond this many sums, a save keeps only those of the current build.
const MAX: usize = 1 << 20;
/// Timestamps are coarse (one tick, a few ms): a sum is kept only if the file had not
/// changed for this long when it was read.
const RACY_NS: i64 = 1_000_000_000;

type Key = (u64, u64, u64, i64, i64);

fn key(h: &HostFile) -> Key {
    (h.dev, h.ino, h.size, h.mtime_ns, h.ctime_ns)
}

#[derive(Default)]
pub struct Sums {
    known: HashMap<Key, [u8; 32]>,
    /// Sums learnt (or used) by this build.
    used: HashMap<Key, [u8; 32]>,
    dirty: bool,
}

fn path(store: &Store) -> PathBuf {
    store.root.join("build-cache").join(FILE)
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Sums {
    /// The store's sums; an unreadable or foreign file counts as empty (it is a cache).
    pub fn load(store: &Store) -> Sums {
        let mut s = Sums::default();
        let Ok(b) = fs::read(path(store)) else {
            return s;
        };
        let Some(body) = b.strip_prefix(MAGIC) else {
            return s;
        };
        for r in body.chunks_exact(RECORD) {
            let n = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap());
            let mut sum = [0u8; 32];
            sum.copy_from_slice(&r[40..]);
            s.known
                .insert((n(0), n(1), n(2), n(3) as i64, n(4) as i64), sum);
        }
        s
    }

    pub fn get(&mut self, h: &HostFile) -> Option<[u8; 32]> {
        let k = key(h);
        let sum = *self.known.get(&k)?;
        self.used.insert(k, sum);
        Some(sum)
    }

    /// Remember the sum of a file read (from) `read_at` (ns since the epoch).
    pub fn put(&mut self, h: &HostFile, sum: [u8; 32], read_at: i64) {
        if h.ctime_ns.max(h.mtime_ns) > read_at - RACY_NS {
            return;
        }
        let k = key(h);
        self.used.insert(k, sum);
        if self.known.insert(k, sum) != Some(sum) {
            self.dirty = true;
        }
    }

    /// Write the sums back if this build learnt any (a lost race with another build only
    /// loses sums: they are recomputed).
    pub fn save(&self, store: &Store) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let all = match self.known.len() > MAX {
            true => &self.used,
            false => &self.known,
        };
        let mut b = Vec::with_capacity(MAGIC.len() + all.len() * RECORD);
        b.extend_from_slice(MAGIC);
        for ((dev, ino, size, m, c), sum) in all {
            for v in [*dev, *ino, *size, *m as u64, *c as u64] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(sum);
        }
        let p = path(store);
        fs::create_dir_all(p.parent().expect("a file in build-cache"))?;
        write_atomic(&store.tmp_root(), &p, &b)
    }
}

/// Whether a build-cache file name is the sums file (not a cache entry).
pub fn is_sums(name: &str) -> bool {
    name == FILE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ctime_ns: i64) -> HostFile {
        HostFile {
            rel: "a".into(),
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: ctime_ns,
            ctime_ns,
            slot: 0,
        }
    }

    #[test]
    fn racy_files_are_not_remembered() {
        let mut s = Sums::default();
        let now = now_ns();
        s.put(&file(now - 10), [1; 32], now);
        assert_eq!(s.get(&file(now - 10)), None);
        let old = now - 5 * RACY_NS;
        s.put(&file(old), [2; 32], now);
        assert_eq!(s.get(&file(old)), Some([2; 32]));
        // Another ctime is another file version.
        assert_eq!(s.get(&file(old + 1)), None);
    }
}
