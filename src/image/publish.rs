//! Making an image visible in one locked step: its config and manifest blobs, any new
//! layer blob and layer dir, its name in the index, and its parent (for `history`); or
//! several images at once, for `load`.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

use super::digest::Digest;
use super::oci::{self, Descriptor, Manifest, MT_CONFIG, MT_MANIFEST};
use super::reference::Reference;
use super::store::blobs::{temp_bytes, TempBlob, MAX_JSON};
use super::store::layers::LayerInfo;
use super::store::{refs, write_atomic, Store, TmpDir};

/// An image about to be published.
pub struct NewImage<'a> {
    pub config: Value,
    /// Every layer, bottom first.
    pub layers: Vec<Descriptor>,
    /// Layer blobs made by this operation, in its temp dir.
    pub new_blobs: Vec<&'a TempBlob>,
    /// A layer dir made by this operation (a dir holding `diff/`), and what it is.
    pub new_layer: Option<(PathBuf, LayerInfo)>,
    pub name: Option<Reference>,
    /// The image this one was committed on top of.
    pub parent: Option<Digest>,
}

/// Publish; returns the new image's ID.
pub fn publish(store: &Store, tmp: &TmpDir, img: NewImage<'_>) -> Result<Digest> {
    let config_bytes = oci::to_bytes(&img.config);
    let config = temp_bytes(&tmp.path, &config_bytes)?;
    let manifest = Manifest::new(
        Descriptor::new(MT_CONFIG, config.digest.clone(), config.size),
        img.layers,
    );
    let manifest = temp_bytes(&tmp.path, &oci::to_bytes(&manifest))?;
    let manifest_desc = Descriptor::new(MT_MANIFEST, manifest.digest.clone(), manifest.size);
    let l = store.lock()?;
    let mut blobs = img.new_blobs;
    blobs.push(&config);
    blobs.push(&manifest);
    l.publish_blobs(&blobs)?;
    if let Some((dir, info)) = &img.new_layer {
        l.publish_layer(dir, info)?;
    }
    if let Some(p) = &img.parent {
        let meta = serde_json::json!({ "parent": p });
        write_atomic(
            &store.tmp_root(),
            &parent_meta_path(store, &config.digest),
            &serde_json::to_vec(&meta)?,
        )?;
    }
    let mut idx = store.load_index()?;
    match &img.name {
        Some(n) => refs::set_name(&mut idx, &manifest_desc, n),
        None => refs::add_untagged(&mut idx, &manifest_desc),
    }
    l.save_index(&idx).context("update index.json")?;
    Ok(config.digest)
}

fn parent_meta_path(store: &Store, id: &Digest) -> PathBuf {
    store.images_meta_dir().join(format!("{}.json", id.hex()))
}

/// The image a local image was committed from, if known and still present.
pub fn parent_of(store: &Store, id: &Digest) -> Option<Digest> {
    let b = std::fs::read(parent_meta_path(store, id)).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    Digest::parse(v["parent"].as_str()?).ok()
}

/// An image `load` publishes: its manifest, its ID (config digest) and its names.
pub struct Loaded<'a> {
    pub manifest: Descriptor,
    pub id: &'a Digest,
    pub names: &'a [Reference],
}

/// Several images made visible in one locked step (`load`): every blob, then every layer
/// dir (lowers first), then the names. An image ID is one image, as docker sees it: a
/// name moving to another manifest of the same config leaves no nameless copy behind,
/// and an untagged image already there under another manifest is not added again.
/// Returns the names taken from another image, with that image's ID.
pub fn publish_images(
    store: &Store,
    blobs: &[&TempBlob],
    layers: &[(PathBuf, LayerInfo)],
    images: &[Loaded<'_>],
) -> Result<Vec<(Reference, Digest)>> {
    let l = store.lock()?;
    l.publish_blobs(blobs)?;
    for (dir, info) in layers {
        l.publish_layer(dir, info)?;
    }
    let mut idx = store.load_index()?;
    let mut moved = Vec::new();
    for img in images {
        let same_id = |idx: &oci::Index| -> Vec<Digest> {
            idx.manifests
                .iter()
                .filter(|d| d.digest != img.manifest.digest)
                .filter(|d| image_id(store, &d.digest).as_ref() == Some(img.id))
                .map(|d| d.digest.clone())
                .collect()
        };
        if img.names.is_empty() {
            if same_id(&idx).is_empty() {
                refs::add_untagged(&mut idx, &img.manifest);
            }
            continue;
        }
        for n in img.names {
            let before = idx.manifests.iter().find(|d| refs::names(d, n));
            if let Some(old) = before.and_then(|b| image_id(store, &b.digest)) {
                if &old != img.id {
                    moved.push((n.clone(), old));
                }
            }
            refs::set_name(&mut idx, &img.manifest, n);
        }
        let twins = same_id(&idx);
        idx.manifests
            .retain(|d| d.ref_name().is_some() || !twins.contains(&d.digest));
    }
    l.save_index(&idx).context("update index.json")?;
    Ok(moved)
}

/// The image ID (config digest) of a manifest in the store.
fn image_id(store: &Store, manifest: &Digest) -> Option<Digest> {
    let b = store.read_blob(manifest, None, MAX_JSON).ok()?;
    let m: Manifest = serde_json::from_slice(&b).ok()?;
    Some(m.config.digest)
}
