//! `gc`: remove blobs, layer dirs, image notes and temp files that nothing refers to.
//!
//! Runs under the store lock: an operation in flight keeps its new blobs and layers in
//! its own temp dir until it publishes them under the same lock, so gc never sees them
//! half made.

use anyhow::Result;
use std::collections::HashSet;
use std::fs;

use super::digest::Digest;
use super::images;
use super::store::layers::chain_ids;
use super::store::Locked;

#[derive(Debug, Default)]
pub struct Freed {
    pub blobs: Vec<Digest>,
    /// Chain IDs of removed layer dirs.
    pub layers: Vec<Digest>,
    pub tmp: usize,
    pub bytes: u64,
}

/// Collect garbage. Images are whatever the index names (all its entries).
pub fn collect(l: &Locked<'_>) -> Result<Freed> {
    let store = l.store;
    let mut blobs: HashSet<Digest> = HashSet::new();
    let mut chains: HashSet<Digest> = HashSet::new();
    let mut ids: HashSet<Digest> = HashSet::new();
    for img in images::list(store)? {
        blobs.insert(img.manifest_desc.digest.clone());
        blobs.insert(img.id().clone());
        blobs.extend(img.manifest.layers.iter().map(|d| d.digest.clone()));
        chains.extend(chain_ids(&img.diff_ids()?));
        ids.insert(img.id().clone());
    }
    for c in store.containers()? {
        chains.extend(c.layers);
    }
    // The build cache keeps its layers (and drops entries whose blobs are gone).
    let (cache_blobs, cache_chains) = super::build::cache::roots(l)?;
    blobs.extend(cache_blobs);
    chains.extend(cache_chains);
    let mut freed = Freed::default();
    for e in fs::read_dir(store.blobs_dir())? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let keep = Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| blobs.contains(&d));
        if !keep {
            freed.bytes += e.metadata().map_or(0, |m| m.len());
            fs::remove_file(e.path())?;
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                freed.blobs.push(d);
            }
        }
    }
    for chain in store.layer_chains()? {
        if !chains.contains(&chain) {
            freed.bytes += du(&store.layer_dir(&chain));
            l.trash(&store.layer_dir(&chain))?;
            freed.layers.push(chain);
        }
    }
    for e in fs::read_dir(store.images_meta_dir())? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name.strip_suffix(".json").unwrap_or(&name);
        if !Digest::parse(&format!("sha256:{id}")).is_ok_and(|d| ids.contains(&d)) {
            fs::remove_file(e.path())?;
        }
    }
    freed.tmp = l.sweep_tmp();
    Ok(freed)
}

// Bytes used by a tree (regular files' sizes), for the report.
fn du(p: &std::path::Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum::<u64>())
        .unwrap_or(0)
}
