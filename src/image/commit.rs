//! `commit`: a container's upper dir becomes a new layer on top of its image's.
//!
//! The upper dir alone describes the change (the runtime mounts overlays with
//! redirect_dir, metacopy and index off), so commit walks only it, once: its cost grows
//! with the change, never with the image. The same pass writes the blob (tar → diff ID →
//! compressor → digest → temp file) and copies the upper into the new layer's dir.

use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

use super::config::{self, History};
use super::digest::Digest;
use super::images;
use super::layer::{self, Source, WriteOpts};
use super::layerblob::{self, LayerOpts};
use super::progress::Progress;
use super::publish::{publish, NewImage};
use super::reference::Reference;
use super::runtime::Runtime;
use super::store::layers::{chain_ids, LayerInfo};
use super::store::Store;

pub struct CommitOpts {
    pub container: String,
    pub name: Option<Reference>,
    pub message: Option<String>,
    pub author: Option<String>,
    pub changes: Vec<String>,
    /// Freeze a running container while its upper dir is read (docker's default).
    pub pause: bool,
    pub layer: LayerOpts,
}

/// Commit; returns the new image's ID.
pub fn commit(store: &Store, rt: &Runtime, o: &CommitOpts) -> Result<Digest> {
    let c = store.container(&o.container)?;
    let img = images::list(store)?
        .into_iter()
        .find(|i| i.id() == &c.image)
        .with_context(|| {
            format!(
                "image {} of container {} is gone from the store",
                c.image, c.name
            )
        })?;
    // Check the changes before any work: a typo must not cost a pass over the upper.
    let mut cfg = img.config.clone();
    for ch in &o.changes {
        config::apply_change(&mut cfg, ch)?;
    }
    let tmp = store.tmpdir()?;
    let layer_dir = tmp.path.join("layer");
    let upper = store.container_dir(&c.id).join("upper");
    let new = {
        let _frozen = Frozen::new(rt, &c.name, o.pause)?;
        write_layer(&upper, &layer_dir, &tmp.path, &o.layer)
            .with_context(|| format!("commit {}", c.name))?
    };
    let created = &o.layer.created;
    cfg["created"] = created.clone().into();
    if let Some(a) = &o.author {
        cfg["author"] = a.clone().into();
    }
    config::add_layer(
        &mut cfg,
        &new.diff_id,
        &History {
            created: created.clone(),
            created_by: c.command.join(" "),
            author: o.author.clone(),
            comment: o.message.clone(),
            empty_layer: false,
        },
    );
    for ch in &o.changes {
        config::add_history(&mut cfg, &config::change_history(ch, created));
    }
    let mut diff_ids = img.diff_ids()?;
    let parent_chain = chain_ids(&diff_ids).pop();
    diff_ids.push(new.diff_id.clone());
    let chain = chain_ids(&diff_ids).pop().expect("at least the new layer");
    let info = LayerInfo {
        diff_id: new.diff_id.clone(),
        chain_id: chain,
        parent: parent_chain,
        size: new.tar_size,
    };
    let mut layers = img.manifest.layers.clone();
    layers.push(new.descriptor());
    publish(
        store,
        &tmp,
        NewImage {
            config: cfg,
            layers,
            new_blobs: vec![&new.blob],
            new_layer: Some((layer_dir, info)),
            name: o.name.clone(),
            parent: Some(img.id().clone()),
        },
    )
}

/// An overlay upper dir written as a new layer, in one walk: its blob in `tmp` and its
/// layer dir `layer_dir` (made here, holding `diff/`), ready for `publish`.
pub fn write_layer(
    upper: &Path,
    layer_dir: &Path,
    tmp: &Path,
    o: &LayerOpts,
) -> Result<layerblob::NewLayer> {
    fs::create_dir_all(layer_dir.join("diff"))?;
    let mut sink = layerblob::start(tmp, &o.compress)?;
    let progress = Progress::new("commit", None, o.quiet);
    let opts = WriteOpts {
        source: Source::Upper,
        times: o.times,
        copy_to: Some(layer_dir.join("diff")),
    };
    layer::write_tar(upper, &mut sink, &opts, &mut |n| progress.inc(n))?;
    progress.done();
    layerblob::finish(sink, o.compress.compression)
}

/// A running container paused for as long as this lives (resumed even on error).
pub struct Frozen<'a> {
    rt: &'a Runtime,
    id: &'a str,
    paused: bool,
}

impl<'a> Frozen<'a> {
    pub fn new(rt: &'a Runtime, id: &'a str, pause: bool) -> Result<Frozen<'a>> {
        let running = pause && rt.state(id)?.is_some_and(|s| s.status == "running");
        if running {
            rt.pause(id).context("pause the container")?;
        }
        Ok(Frozen {
            rt,
            id,
            paused: running,
        })
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if self.paused {
            if let Err(e) = self.rt.resume(self.id) {
                eprintln!("strata-image: warning: resume {}: {e:#}", self.id);
            }
        }
    }
}
