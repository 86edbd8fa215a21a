//! `load`: images from a docker-archive (docker ≤24 and skopeo's `<id>/layer.tar` layout,
//! docker 25+'s OCI layout with `manifest.json`), an oci-archive, or an OCI layout directory.
//!
//! Four steps, and the store sees only the last: read the input once into the temp dir
//! (`sources`, `read`), find and check its images (`plan`), verify and unpack their layers
//! (`unpack`), then publish everything under the store lock in one step.

pub mod json;
pub mod members;
pub mod plan;
pub mod read;
pub mod sources;
pub mod unpack;

use anyhow::{bail, Context, Result};
use std::collections::HashSet;

use crate::image::digest::Digest;
use crate::image::images;
use crate::image::oci::Descriptor;
use crate::image::publish;
use crate::image::reference::Reference;
use crate::image::store::blobs::TempBlob;
use crate::image::store::Store;
use plan::ImagePlan;
pub use sources::Input;

pub struct LoadOpts {
    pub input: Input,
    /// No progress bar.
    pub quiet: bool,
}

/// One image loaded.
pub struct Loaded {
    /// Its ID (the config's digest).
    pub id: Digest,
    /// Its names; none for an untagged image.
    pub names: Vec<Reference>,
    /// Names taken from another image: (name, that image's ID), as docker reports them.
    pub replaced: Vec<(Reference, Digest)>,
}

/// Load every image of the input, all or nothing.
pub fn load(store: &Store, o: &LoadOpts) -> Result<Vec<Loaded>> {
    load_all(store, o).context("load")
}

fn load_all(store: &Store, o: &LoadOpts) -> Result<Vec<Loaded>> {
    let tmp = store.tmpdir()?;
    let mut members = sources::open(&o.input, &tmp.path, o.quiet)?;
    let plans = plan::plan(members.as_mut(), &tmp.path)?;
    if plans.is_empty() {
        bail!("the archive holds no image");
    }
    let known = images::layer_blobs(store);
    // The blobs' fsyncs overlap the unpacking (disk writes against CPU).
    let layers = std::thread::scope(|s| {
        let synced = s.spawn(|| sync_blobs(&plans));
        let layers = unpack::unpack_all(store, &tmp.path, &plans, &known, o.quiet);
        let synced = synced
            .join()
            .map_err(|_| anyhow::anyhow!("fsync thread panicked"))?;
        let layers = layers?;
        synced.map(|()| layers)
    })?;
    let moved = publish_plans(store, &plans, layers)?;
    Ok(plans
        .iter()
        .map(|p| Loaded {
            id: p.id().clone(),
            names: p.names.clone(),
            replaced: moved
                .iter()
                .filter(|(n, _)| p.names.contains(n))
                .cloned()
                .collect(),
        })
        .collect())
}

/// fsync every blob of the archive's images (once each).
fn sync_blobs(plans: &[ImagePlan]) -> Result<()> {
    let mut seen = HashSet::new();
    for p in plans {
        for m in [&p.config, &p.manifest]
            .into_iter()
            .chain(p.layers.iter().map(|l| &l.blob))
        {
            if seen.insert(&m.path) {
                m.temp_blob().sync()?;
            }
        }
    }
    Ok(())
}

/// Publish every image with its blobs and new layer dirs in one locked step.
fn publish_plans(
    store: &Store,
    plans: &[ImagePlan],
    layers: Vec<unpack::NewLayerDir>,
) -> Result<Vec<(Reference, Digest)>> {
    // A docker-archive carries no manifest: an image the store has already (the same
    // config, so the same layers) keeps the manifest it has rather than gain a second.
    let kept: Vec<Option<Descriptor>> = plans
        .iter()
        .map(|p| {
            p.built
                .then(|| images::manifest_of(store, p.id()))
                .flatten()
        })
        .collect();
    let mut seen = HashSet::new();
    let blobs: Vec<TempBlob> = plans
        .iter()
        .zip(&kept)
        .filter(|(_, k)| k.is_none())
        .flat_map(|(p, _)| {
            let layers = p.layers.iter().map(|l| &l.blob);
            [&p.config, &p.manifest].into_iter().chain(layers)
        })
        .filter(|m| seen.insert(m.digest.clone()))
        .map(|m| m.temp_blob())
        .collect();
    let layer_dirs: Vec<_> = layers.into_iter().map(|l| (l.dir, l.info)).collect();
    let entries: Vec<_> = plans
        .iter()
        .zip(kept)
        .map(|(p, k)| publish::Loaded {
            manifest: k.unwrap_or_else(|| p.manifest_desc()),
            id: p.id(),
            names: &p.names,
        })
        .collect();
    let blob_refs: Vec<&TempBlob> = blobs.iter().collect();
    publish::publish_images(store, &blob_refs, &layer_dirs, &entries)
}
