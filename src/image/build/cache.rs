//! The build cache: step key → the image state after that step, kept in the store as
//! `build-cache/<key hex>.json` beside the blobs and layer dirs it names.
//!
//! A key chains the parent's key (or the base image's ID), the step as written after
//! expansion, the build args it sees and, for COPY/ADD, a checksum of what it copies: the
//! same chain means the same result, so the step is skipped. Entries are written under
//! the store lock in the same locked step that publishes their layer, so `gc` (which
//! keeps what entries name, and drops entries whose blobs are gone) never sees one half
//! made.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use crate::image::digest::{self, Digest};
use crate::image::oci::Descriptor;
use crate::image::store::blobs::MAX_JSON;
use crate::image::store::layers::chain_ids;
use crate::image::store::{write_atomic, Locked, Store};

const DIR: &str = "build-cache";

/// A cache key under construction: fields hashed with their lengths, so that no two
/// different field lists hash alike.
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn new(parent: &Digest) -> KeyBuilder {
        let mut k = KeyBuilder(Sha256::new());
        k.field(parent.as_str().as_bytes());
        k
    }

    pub fn field(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    pub fn finish(self) -> Digest {
        Digest::parse(&format!("sha256:{}", digest::hex(&self.0.finalize())))
            .expect("a sha256 is a digest")
    }
}

/// The image state after a step: its config and its layers (whose blobs and layer dirs
/// are in the store).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub config: Value,
    pub layers: Vec<Descriptor>,
}

fn dir(store: &Store) -> PathBuf {
    store.root.join(DIR)
}

fn path(store: &Store, key: &Digest) -> PathBuf {
    dir(store).join(format!("{}.json", key.hex()))
}

/// The state a key leads to, if it was recorded and all its blobs are still here (a
/// layer dir can be unpacked again from its blob; a blob cannot be made again).
pub fn lookup(store: &Store, key: &Digest) -> Option<Entry> {
    let p = path(store, key);
    let m = fs::metadata(&p).ok()?;
    if m.len() > MAX_JSON {
        return None;
    }
    let e: Entry = serde_json::from_slice(&fs::read(&p).ok()?).ok()?;
    let ids = crate::image::images::diff_ids(&e.config).ok()?;
    let complete =
        ids.len() == e.layers.len() && e.layers.iter().all(|l| store.has_blob(&l.digest));
    complete.then_some(e)
}

/// A step's shape: its key without what it reads (for COPY: the parent, the step as
/// written, its flags). A shape never recorded means no entry can match, so the step
/// skips the read that computes its full key before the write that would compute it
/// again.
fn shape_path(store: &Store, shape: &Digest) -> PathBuf {
    dir(store).join(format!("{}{SHAPE}", shape.hex()))
}

const SHAPE: &str = ".shape";

pub fn has_shape(store: &Store, shape: &Digest) -> bool {
    shape_path(store, shape).exists()
}

/// Remember a shape (after its entry is saved: an entry without its shape only costs a
/// hit, never a wrong one).
pub fn save_shape(store: &Store, shape: &Digest) -> Result<()> {
    let p = shape_path(store, shape);
    fs::create_dir_all(dir(store))?;
    fs::write(&p, b"").with_context(|| format!("write {}", p.display()))
}

/// Record an entry (under the store lock, after its layer is published).
pub fn save(l: &Locked<'_>, key: &Digest, e: &Entry) -> Result<()> {
    let d = dir(l.store);
    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    write_atomic(
        &l.store.tmp_root(),
        &path(l.store, key),
        &serde_json::to_vec(e)?,
    )
}

/// What the cache keeps alive, for `gc`: layer blob digests and layer chain IDs. Entries
/// that no longer load or whose blobs are gone are removed here (gc holds the lock).
pub fn roots(l: &Locked<'_>) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
    let mut blobs = HashSet::new();
    let mut chains = HashSet::new();
    let Ok(rd) = fs::read_dir(dir(l.store)) else {
        return Ok((blobs, chains));
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if super::sums::is_sums(&name) || name.ends_with(SHAPE) {
            continue;
        }
        let key = name
            .strip_suffix(".json")
            .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
        match key.and_then(|k| lookup(l.store, &k)) {
            Some(entry) => {
                blobs.extend(entry.layers.iter().map(|d| d.digest.clone()));
                let ids = crate::image::images::diff_ids(&entry.config)?;
                chains.extend(chain_ids(&ids));
            }
            None => fs::remove_file(e.path())
                .with_context(|| format!("remove stale cache entry {}", e.path().display()))?,
        }
    }
    Ok((blobs, chains))
}

/// `builder prune`: drop the entries whose layers some image does not use (with `all`,
/// every entry and the context checksums); returns the keys dropped. The layers and
/// blobs only they kept are for `gc` to remove after.
pub fn prune(l: &Locked<'_>, all: bool) -> Result<Vec<Digest>> {
    let store = l.store;
    let mut used: HashSet<Digest> = HashSet::new();
    if !all {
        for img in crate::image::images::list(store)? {
            used.extend(img.manifest.layers.iter().map(|d| d.digest.clone()));
        }
    }
    let mut dropped = vec![];
    let Ok(rd) = fs::read_dir(dir(store)) else {
        return Ok(dropped);
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let remove = |p: &std::path::Path| {
            fs::remove_file(p).with_context(|| format!("remove {}", p.display()))
        };
        if super::sums::is_sums(&name) || name.ends_with(SHAPE) {
            if all {
                remove(&e.path())?;
            }
            continue;
        }
        let key = name
            .strip_suffix(".json")
            .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
        let keep = match key.as_ref().and_then(|k| lookup(store, k)) {
            Some(entry) => !all && entry.layers.iter().all(|d| used.contains(&d.digest)),
            None => false,
        };
        if !keep {
            remove(&e.path())?;
            dropped.extend(key);
        }
    }
    Ok(dropped)
}

/// Entries in the cache (for tests and `gc`'s report).
pub fn count(store: &Store) -> usize {
    fs::read_dir(dir(store)).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_field_and_its_boundaries() {
        let p = Digest::of(b"parent");
        let k = |fields: &[&[u8]]| {
            let mut b = KeyBuilder::new(&p);
            for f in fields {
                b.field(f);
            }
            b.finish()
        };
        assert_eq!(k(&[b"RUN a"]), k(&[b"RUN a"]));
        assert_ne!(k(&[b"RUN a"]), k(&[b"RUN b"]));
        assert_ne!(k(&[b"ab", b"c"]), k(&[b"a", b"bc"]));
        let mut other = KeyBuilder::new(&Digest::of(b"other"));
        other.field(b"RUN a");
        assert_ne!(other.finish(), k(&[b"RUN a"]));
    }
}
