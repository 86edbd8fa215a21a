//! `index.json`: the images of the store, one entry per name (untagged images have an
//! entry without one), named by `org.opencontainers.image.ref.name`.

use anyhow::{Context, Result};
use std::fs;

use super::blobs::MAX_JSON;
use super::{write_atomic, Locked, Store};
use crate::image::digest::Digest;
use crate::image::oci::{Descriptor, Index, ANN_IMAGE_NAME, ANN_REF_NAME};
use crate::image::reference::Reference;

impl Store {
    /// The index as it is on disk now (replaced atomically, so read without the lock).
    pub fn load_index(&self) -> Result<Index> {
        let p = self.index_path();
        let f = fs::File::open(&p).with_context(|| format!("read {}", p.display()))?;
        if f.metadata()?.len() > MAX_JSON {
            anyhow::bail!("{}: larger than {MAX_JSON} bytes", p.display());
        }
        let idx: Index =
            serde_json::from_reader(f).with_context(|| format!("parse {}", p.display()))?;
        Ok(idx)
    }
}

impl Locked<'_> {
    pub fn save_index(&self, idx: &Index) -> Result<()> {
        write_atomic(
            &self.store.tmp_root(),
            &self.store.index_path(),
            &crate::image::oci::to_bytes(idx),
        )
    }
}

/// An index entry for `manifest` named `name` (or untagged).
pub fn entry(manifest: &Descriptor, name: Option<&Reference>) -> Descriptor {
    let mut d = Descriptor::new(&manifest.media_type, manifest.digest.clone(), manifest.size);
    if let Some(r) = name {
        d.annotations.insert(ANN_REF_NAME.into(), r.familiar());
        d.annotations.insert(ANN_IMAGE_NAME.into(), r.full());
    }
    d
}

/// Does this index entry carry `name`? Entries written by other tools may have only a
/// bare ref name (`latest`, `v1`): those never match a repository name.
pub fn names(d: &Descriptor, name: &Reference) -> bool {
    let full = name.full();
    d.annotations.get(ANN_IMAGE_NAME) == Some(&full)
        || d.ref_name()
            .and_then(|n| Reference::parse(n).ok())
            .is_some_and(|r| r.full() == full)
}

/// Point `name` at `manifest`: the entry that had the name loses it (an image left
/// with no name stays as an untagged entry, as docker keeps a dangling image).
pub fn set_name(idx: &mut Index, manifest: &Descriptor, name: &Reference) {
    for d in idx.manifests.iter_mut() {
        if names(d, name) {
            d.annotations.remove(ANN_REF_NAME);
            d.annotations.remove(ANN_IMAGE_NAME);
        }
    }
    // The now-nameless entry of the same manifest, or another untagged duplicate, goes.
    tidy(idx);
    idx.manifests
        .retain(|d| !(d.digest == manifest.digest && d.ref_name().is_none()));
    idx.manifests.push(entry(manifest, Some(name)));
}

/// Add `manifest` as an untagged image unless some entry already holds it.
pub fn add_untagged(idx: &mut Index, manifest: &Descriptor) {
    if !idx.manifests.iter().any(|d| d.digest == manifest.digest) {
        idx.manifests.push(entry(manifest, None));
    }
}

/// Keep one entry per manifest that has no name, and none when it also has a named one.
fn tidy(idx: &mut Index) {
    let named: Vec<Digest> = idx
        .manifests
        .iter()
        .filter(|d| d.ref_name().is_some())
        .map(|d| d.digest.clone())
        .collect();
    let mut seen = std::collections::HashSet::new();
    idx.manifests.retain(|d| {
        d.ref_name().is_some() || (!named.contains(&d.digest) && seen.insert(d.digest.clone()))
    });
}
