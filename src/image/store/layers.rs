//! Layer dirs: one unpacked directory per layer, in overlay form (whiteouts as 0/0
//! devices), keyed by chain ID as docker's layerdb is, and shared by every image with it.
//!
//! A layer dir is a cache of its blob: made by the command that made the blob (import,
//! commit), or unpacked from the blob when an image needs it and it is missing.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Locked, Store};
use crate::image::digest::{Digest, HashReader};
use crate::image::oci::{layer_compression, Descriptor};

const META: &str = "layer.json";

/// What we know of a layer dir.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: Digest,
    pub chain_id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
}

/// ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

impl Store {
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.layers_dir().join(chain.hex())
    }

    /// The directory overlayfs gets as a lowerdir.
    pub fn layer_diff(&self, chain: &Digest) -> PathBuf {
        self.layer_dir(chain).join("diff")
    }

    pub fn layer_info(&self, chain: &Digest) -> Option<LayerInfo> {
        let b = fs::read(self.layer_dir(chain).join(META)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Chain IDs of every layer dir in the store.
    pub fn layer_chains(&self) -> Result<Vec<Digest>> {
        let mut v = vec![];
        for e in fs::read_dir(self.layers_dir())? {
            let name = e?.file_name();
            if let Ok(d) = Digest::parse(&format!("sha256:{}", name.to_string_lossy())) {
                v.push(d);
            }
        }
        v.sort();
        Ok(v)
    }

    /// Make sure every layer of an image has its dir, unpacking missing ones from their
    /// blobs (verifying blob digest and diff ID as they stream). Returns the diff dirs,
    /// bottom layer first.
    pub fn ensure_layers(&self, diff_ids: &[Digest], blobs: &[Descriptor]) -> Result<Vec<PathBuf>> {
        if diff_ids.len() != blobs.len() {
            bail!(
                "image has {} layers but {} diff IDs in its config",
                blobs.len(),
                diff_ids.len()
            );
        }
        let chains = chain_ids(diff_ids);
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(chains.len());
        for (i, chain) in chains.iter().enumerate() {
            if self.layer_info(chain).is_none() {
                let parent = i.checked_sub(1).map(|p| chains[p].clone());
                self.unpack_layer(&blobs[i], &diff_ids[i], chain, parent, &dirs)?;
            }
            dirs.push(self.layer_diff(chain));
        }
        Ok(dirs)
    }

    fn unpack_layer(
        &self,
        blob: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        parent: Option<Digest>,
        below: &[PathBuf],
    ) -> Result<()> {
        layer_compression(&blob.media_type)?;
        let tmp = self.tmpdir()?;
        let dir = tmp.path.join("layer");
        fs::create_dir(&dir)?;
        fs::create_dir(dir.join("diff"))?;
        let f = self.open_blob(&blob.digest)?;
        let mut blob_r = HashReader::new(f);
        let size = {
            let dec =
                crate::image::compress::decoder(BufReader::with_capacity(1 << 20, &mut blob_r))
                    .with_context(|| format!("layer {}", blob.digest))?;
            let mut tar_r = HashReader::new(dec);
            let lowers: Vec<PathBuf> = below.iter().rev().cloned().collect();
            crate::image::layer::unpack(
                &mut tar_r,
                &dir.join("diff"),
                &crate::image::layer::UnpackOpts { lowers, gate: None },
            )
            .with_context(|| format!("unpack layer {}", blob.digest))?;
            std::io::copy(&mut tar_r, &mut std::io::sink())?;
            let (got, size, _) = tar_r.finish();
            if &got != diff_id {
                bail!(
                    "layer {}: its content has diff ID {got}, the config says {diff_id}",
                    blob.digest
                );
            }
            size
        };
        std::io::copy(&mut blob_r.by_ref(), &mut std::io::sink())?;
        let (got, n, _) = blob_r.finish();
        if got != blob.digest || n != blob.size {
            bail!(
                "layer blob {} is corrupt: {n} bytes hashing to {got} (descriptor: {} bytes)",
                blob.digest,
                blob.size
            );
        }
        let info = LayerInfo {
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
            parent,
            size,
        };
        self.lock()?.publish_layer(&dir, &info)
    }
}

impl Locked<'_> {
    /// Move a finished layer dir (holding `diff/`) into `layers/<chain>`; if another
    /// command made the same layer meanwhile, theirs is kept (same content by its IDs).
    pub fn publish_layer(&self, dir: &Path, info: &LayerInfo) -> Result<()> {
        let dest = self.store.layer_dir(&info.chain_id);
        if self.store.layer_info(&info.chain_id).is_some() {
            return Ok(());
        }
        // Layer dirs are renamed in whole with their layer.json, so one without it is not
        // ours to trust: replace it.
        if dest.exists() {
            self.trash(&dest)?;
        }
        fs::write(dir.join(META), serde_json::to_vec(info)?)?;
        fs::rename(dir, &dest).with_context(|| format!("publish layer {}", info.chain_id))?;
        super::fsync_dir(&self.store.layers_dir())
    }
}
