//! An image as the store holds it: manifest, config and names, found by name or ID.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

use super::digest::Digest;
use super::oci::{Descriptor, Manifest};
use super::reference::Reference;
use super::store::blobs::MAX_JSON;
use super::store::refs;
use super::store::Store;

#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest's descriptor (as in index.json, without annotations).
    pub manifest_desc: Descriptor,
    pub manifest: Manifest,
    /// The config exactly as stored: the image ID is its digest.
    pub config_bytes: Vec<u8>,
    pub config: Value,
    /// Familiar names (`busybox:latest`), sorted.
    pub names: Vec<String>,
}

impl Image {
    /// The image ID: the config's digest.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// `rootfs.diff_ids`, checked.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        diff_ids(&self.config)
    }

    pub fn created(&self) -> Option<&str> {
        self.config["created"].as_str()
    }

    /// Bytes of all its layers, uncompressed (what docker's SIZE shows).
    pub fn size(&self, store: &Store) -> u64 {
        let Ok(d) = self.diff_ids() else { return 0 };
        super::store::layers::chain_ids(&d)
            .iter()
            .zip(&self.manifest.layers)
            .map(|(c, l)| store.layer_info(c).map_or(l.size, |i| i.size))
            .sum()
    }

    /// Load the image an index entry points at, verifying what it reads.
    fn load(store: &Store, desc: &Descriptor) -> Result<Image> {
        let mbytes = store
            .read_blob(&desc.digest, Some(desc.size), MAX_JSON)
            .context("manifest")?;
        let manifest = Manifest::parse(&mbytes, &desc.media_type)
            .with_context(|| format!("manifest {}", desc.digest))?;
        let c = &manifest.config;
        let config_bytes = store
            .read_blob(&c.digest, Some(c.size), MAX_JSON)
            .with_context(|| format!("config of manifest {}", desc.digest))?;
        let config: Value = serde_json::from_slice(&config_bytes)
            .with_context(|| format!("config {} is not valid JSON", c.digest))?;
        let n_diff = diff_ids(&config)
            .with_context(|| format!("config {}", c.digest))?
            .len();
        if n_diff != manifest.layers.len() {
            bail!(
                "image {}: the manifest has {} layers but the config {n_diff} diff IDs",
                c.digest,
                manifest.layers.len()
            );
        }
        let mut manifest_desc = desc.clone();
        manifest_desc.annotations.clear();
        Ok(Image {
            manifest_desc,
            manifest,
            config_bytes,
            config,
            names: vec![],
        })
    }
}

/// `rootfs.diff_ids` of a config, each a valid digest, and matching the history's count
/// of non-empty layers when there is a history (docker refuses a mismatch too).
pub fn diff_ids(config: &Value) -> Result<Vec<Digest>> {
    let ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("config has no rootfs.diff_ids")?
        .iter()
        .map(|v| Digest::parse(v.as_str().unwrap_or_default()))
        .collect::<Result<Vec<_>>>()?;
    if let Some(h) = config["history"].as_array() {
        let layers = h
            .iter()
            .filter(|e| e["empty_layer"] != Value::Bool(true))
            .count();
        if layers != ids.len() {
            bail!(
                "config history has {layers} non-empty layers but rootfs.diff_ids has {}",
                ids.len()
            );
        }
    }
    Ok(ids)
}

/// Every image of the store that loads and verifies, once per manifest; a broken one
/// is passed over (it is no reason to fail an operation about another image).
fn loadable(store: &Store) -> Vec<Image> {
    let Ok(idx) = store.load_index() else {
        return vec![];
    };
    let mut seen = HashSet::new();
    idx.manifests
        .iter()
        .filter(|d| seen.insert(d.digest.clone()))
        .filter_map(|d| Image::load(store, d).ok())
        .collect()
}

/// (layer blob digest, diff ID) of every layer of every image in the store: a blob the
/// store already pairs with a diff ID (made by import or commit, or checked by load)
/// need not be decompressed again to prove it.
pub fn layer_blobs(store: &Store) -> HashSet<(Digest, Digest)> {
    let mut out = HashSet::new();
    for img in loadable(store) {
        let Ok(ids) = img.diff_ids() else { continue };
        for (l, id) in img.manifest.layers.iter().zip(ids) {
            out.insert((l.digest.clone(), id));
        }
    }
    out
}

/// A manifest of the image `id` (a config digest) in the store with all its layer blobs.
pub fn manifest_of(store: &Store, id: &Digest) -> Option<Descriptor> {
    loadable(store)
        .into_iter()
        .find(|i| i.id() == id && i.manifest.layers.iter().all(|l| store.has_blob(&l.digest)))
        .map(|i| i.manifest_desc)
}

/// Every image in the store, one per manifest, with all its names.
pub fn list(store: &Store) -> Result<Vec<Image>> {
    let idx = store.load_index()?;
    let mut by_digest: BTreeMap<Digest, Image> = BTreeMap::new();
    let mut order: Vec<Digest> = vec![];
    for d in &idx.manifests {
        if !by_digest.contains_key(&d.digest) {
            let img = Image::load(store, d).with_context(|| match d.ref_name() {
                Some(n) => format!("image {n}"),
                None => format!("image {}", d.digest),
            })?;
            by_digest.insert(d.digest.clone(), img);
            order.push(d.digest.clone());
        }
        if let Some(n) = d.ref_name() {
            let name = Reference::parse(n)
                .map(|r| r.familiar())
                .unwrap_or(n.to_string());
            by_digest.get_mut(&d.digest).unwrap().names.push(name);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|d| by_digest.remove(&d))
        .map(|mut i| {
            i.names.sort();
            i
        })
        .collect())
}

/// Find an image as docker does: by name (`busybox` = `busybox:latest`), then by ID
/// (`sha256:<hex>`, the hex, or a unique prefix of it).
pub fn find(store: &Store, key: &str) -> Result<Image> {
    let all = list(store)?;
    if let Ok(r) = Reference::parse(key) {
        let idx = store.load_index()?;
        if let Some(d) = idx.manifests.iter().find(|d| refs::names(d, &r)) {
            if let Some(i) = all.iter().find(|i| i.manifest_desc.digest == d.digest) {
                return Ok(i.clone());
            }
        }
    }
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        let mut hits: Vec<&Image> = all
            .iter()
            .filter(|i| i.id().hex().starts_with(hex))
            .collect();
        // Manifests of one config (a docker-archive and an oci-archive of the same image,
        // loaded both) are one image ID: the named one answers for it.
        hits.sort_by_key(|i| (i.id().clone(), i.names.is_empty()));
        hits.dedup_by_key(|i| i.id().clone());
        match hits.as_slice() {
            [i] => return Ok((*i).clone()),
            [] => {}
            _ => bail!(
                "image ID prefix {key:?} is ambiguous: it matches {} images",
                hits.len()
            ),
        }
    }
    bail!("no such image: {key}")
}
