//! A new layer's blob in one streaming pass: tar bytes → sha256 (the diff ID) →
//! compressor → sha256 (the blob digest) → a temp file of the operation. No temp tar, no
//! second read.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

use super::compress::{Compression, Encoder};
use super::digest::{Digest, HashWriter};
use super::oci::{layer_media_type, Descriptor};
use super::store::blobs::{BlobWriter, TempBlob};

/// How layers are compressed.
#[derive(Clone, Copy, Debug)]
pub struct CompressOpts {
    pub compression: Compression,
    pub level: Option<i32>,
    pub threads: usize,
}

impl Default for CompressOpts {
    fn default() -> Self {
        CompressOpts {
            compression: Compression::Gzip,
            level: None,
            threads: super::compress::default_threads(),
        }
    }
}

/// How an operation writes its new layer: compression, file times, the `created` of the
/// config and history entry, and whether to show progress.
#[derive(Clone, Debug)]
pub struct LayerOpts {
    pub compress: CompressOpts,
    pub times: super::layer::Times,
    pub created: String,
    pub quiet: bool,
}

/// A layer blob written and fsynced in the operation's temp dir.
#[derive(Debug)]
pub struct NewLayer {
    pub blob: TempBlob,
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    pub media_type: String,
}

impl NewLayer {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.blob.digest.clone(), self.blob.size)
    }
}

/// Where a layer's tar bytes go.
pub type LayerSink = HashWriter<Encoder<BlobWriter>>;

/// Start a layer blob in `tmpdir`.
pub fn start(tmpdir: &Path, opts: &CompressOpts) -> Result<LayerSink> {
    let blob = BlobWriter::new(tmpdir)?;
    let enc = Encoder::new(opts.compression, opts.level, opts.threads, blob)?;
    Ok(HashWriter::new(enc))
}

/// Finish the compressed stream and the blob.
pub fn finish(sink: LayerSink, c: Compression) -> Result<NewLayer> {
    let (diff_id, tar_size, mut enc) = sink.finish();
    enc.flush().context("write layer")?;
    let blob = enc.finish().context("finish compressed layer")?.finish()?;
    Ok(NewLayer {
        blob,
        diff_id,
        tar_size,
        media_type: layer_media_type(c),
    })
}
