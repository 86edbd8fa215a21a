//! `import`: a rootfs directory or a tar (plain, gzip, zstd; `-` for stdin), such as
//! `docker export` writes, becomes a one-layer image.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::config::{self, History};
use super::digest::Digest;
use super::layer::{self, Source, WriteOpts};
use super::layerblob::{self, LayerOpts, LayerSink, NewLayer};
use super::progress::{Progress, ProgressReader};
use super::publish::{publish, NewImage};
use super::reference::Reference;
use super::store::layers::LayerInfo;
use super::store::Store;

pub struct ImportOpts {
    pub source: String,
    pub name: Option<Reference>,
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub layer: LayerOpts,
}

/// Import; returns the new image's ID.
pub fn import(store: &Store, o: &ImportOpts) -> Result<Digest> {
    let mut cfg = config::empty(&o.layer.created);
    for c in &o.changes {
        config::apply_change(&mut cfg, c)?;
    }
    let tmp = store.tmpdir()?;
    let layer_dir = tmp.path.join("layer");
    let diff = layer_dir.join("diff");
    fs::create_dir_all(&diff)?;
    let sink = layerblob::start(&tmp.path, &o.layer.compress)?;
    let src = Path::new(&o.source);
    let sink = if o.source != "-" && src.is_dir() {
        from_dir(src, sink, &diff, o)?
    } else {
        from_tar(&o.source, sink, &diff, o)?
    };
    let new: NewLayer = layerblob::finish(sink, o.layer.compress.compression)?;
    let comment = o
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", o.source));
    config::add_layer(
        &mut cfg,
        &new.diff_id,
        &History {
            created: o.layer.created.clone(),
            comment: Some(comment),
            ..Default::default()
        },
    );
    let info = LayerInfo {
        diff_id: new.diff_id.clone(),
        chain_id: new.diff_id.clone(),
        parent: None,
        size: new.tar_size,
    };
    publish(
        store,
        &tmp,
        NewImage {
            config: cfg,
            layers: vec![new.descriptor()],
            new_blobs: vec![&new.blob],
            new_layer: Some((layer_dir, info)),
            name: o.name.clone(),
            parent: None,
        },
    )
}

// A directory: walked once, written as a tar and copied as the layer dir in one pass.
fn from_dir(src: &Path, mut sink: LayerSink, diff: &Path, o: &ImportOpts) -> Result<LayerSink> {
    let progress = Progress::new("import", None, o.layer.quiet);
    let opts = WriteOpts {
        source: Source::Tree,
        times: o.layer.times,
        copy_to: Some(diff.to_path_buf()),
    };
    layer::write_tar(src, &mut sink, &opts, &mut |n| progress.inc(n))
        .with_context(|| format!("import {}", src.display()))?;
    progress.done();
    Ok(sink)
}

// A tar: kept as given (its digest is the diff ID) and unpacked as it streams.
fn from_tar(source: &str, mut sink: LayerSink, diff: &Path, o: &ImportOpts) -> Result<LayerSink> {
    let (input, total): (Box<dyn Read>, Option<u64>) = if source == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = fs::File::open(source).with_context(|| format!("import {source}"))?;
        let m = f.metadata()?;
        if !m.is_file() {
            bail!("import {source}: not a directory, a regular file or -");
        }
        (Box::new(f), Some(m.len()))
    };
    let progress = Progress::new("import", total, o.layer.quiet);
    let counted = ProgressReader {
        inner: input,
        progress,
    };
    let dec = super::compress::decoder(BufReader::with_capacity(1 << 20, counted))
        .with_context(|| format!("import {source}"))?;
    let mut tee = Tee {
        r: dec,
        w: &mut sink,
    };
    layer::unpack(&mut tee, diff, &layer::UnpackOpts::default())
        .with_context(|| format!("import {source}"))?;
    Ok(sink)
}

/// A reader that copies everything it reads into a writer.
struct Tee<'a, R, W> {
    r: R,
    w: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        Ok(n)
    }
}
