//! `save`: images as one tar, in the hybrid shape docker 25+ writes (an OCI layout plus
//! `manifest.json` and `repositories`), as an oci-archive, or with plain tar layers.
//!
//! The hybrid tar points docker's `manifest.json` at the same compressed blobs the OCI
//! index uses, so each blob is written once and nothing is recompressed: `save` costs
//! what copying the blobs costs. Everything about the tar is fixed (member order, times,
//! owners, modes), so the same images always give the same bytes.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::sync::mpsc::sync_channel;

use super::docker::{ManifestEntry, Repositories, MANIFEST_JSON, REPOSITORIES};
use crate::image::digest::{Digest, HashReader};
use crate::image::images::{self, Image};
use crate::image::oci::{self, Descriptor, Index, Manifest, MT_LAYER, MT_MANIFEST};
use crate::image::progress::Progress;
use crate::image::reference::Reference;
use crate::image::store::layers::chain_ids;
use crate::image::store::{refs, Store};

/// What kind of archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The OCI layout plus docker's `manifest.json` and `repositories`: docker, podman,
    /// skopeo and containerd all read it.
    DockerArchive,
    /// The OCI layout alone.
    OciArchive,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "docker-archive" | "docker" => Ok(Format::DockerArchive),
            "oci-archive" | "oci" => Ok(Format::OciArchive),
            _ => bail!("unknown archive format {s:?}: expected docker-archive or oci-archive"),
        }
    }
}

pub struct SaveOpts {
    pub images: Vec<String>,
    pub format: Format,
    /// Plain tar layers (for consumers that cannot read compressed ones).
    pub uncompressed: bool,
    pub quiet: bool,
}

/// Where a member's bytes come from.
enum Source {
    /// A blob of the store, checked against its digest while it is copied.
    Blob(Descriptor),
    /// A compressed layer blob written out decompressed: its diff ID and tar size.
    Decompressed(Descriptor, Digest, u64),
    /// A document made here.
    Bytes(Vec<u8>),
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::Blob(d) => d.size,
            Source::Decompressed(_, _, n) => *n,
            Source::Bytes(b) => b.len() as u64,
        }
    }
}

/// One image as it goes into the archive.
struct Saved {
    manifest: Descriptor,
    config: Digest,
    layers: Vec<Digest>,
    /// The name it was asked for by (none when asked for by ID, as docker).
    name: Option<Reference>,
}

/// Write the archive to `out`.
pub fn save<W: Write>(store: &Store, o: &SaveOpts, out: W) -> Result<W> {
    if o.images.is_empty() {
        bail!("save: name at least one image");
    }
    let mut blobs: BTreeMap<Digest, Source> = BTreeMap::new();
    let mut saved = vec![];
    for key in &o.images {
        let img = images::find(store, key)?;
        let name = asked_name(store, key)?;
        let s = plan_image(store, &img, name, o.uncompressed, &mut blobs)
            .with_context(|| format!("save {key}"))?;
        saved.push(s);
    }
    let mut members: Vec<(String, Source)> = vec![(
        "oci-layout".into(),
        Source::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    )];
    members.push(("index.json".into(), Source::Bytes(index(&saved))));
    if o.format == Format::DockerArchive {
        members.push((MANIFEST_JSON.into(), Source::Bytes(manifest_json(&saved))));
        members.push((REPOSITORIES.into(), Source::Bytes(repositories(&saved))));
    }
    let total: u64 = blobs.values().map(Source::size).sum();
    let progress = Progress::new("save", Some(total), o.quiet);
    let mut w = TarWriter::new(out);
    for (name, src) in &members {
        w.file(name, src, store, &progress)?;
    }
    w.dir("blobs/")?;
    w.dir("blobs/sha256/")?;
    for (d, src) in &blobs {
        w.file(&format!("blobs/sha256/{}", d.hex()), src, store, &progress)?;
    }
    progress.done();
    w.finish()
}

// The name `key` means if it names an image (not when it is an ID).
fn asked_name(store: &Store, key: &str) -> Result<Option<Reference>> {
    let Ok(r) = Reference::parse(key) else {
        return Ok(None);
    };
    let idx = store.load_index()?;
    Ok(idx
        .manifests
        .iter()
        .any(|d| refs::names(d, &r))
        .then_some(r))
}

// Decide the members of one image: its config, its layers (as stored, or decompressed)
// and its manifest (as stored, or rewritten for plain layers).
fn plan_image(
    store: &Store,
    img: &Image,
    name: Option<Reference>,
    uncompressed: bool,
    blobs: &mut BTreeMap<Digest, Source>,
) -> Result<Saved> {
    let cfg = &img.manifest.config;
    blobs.insert(cfg.digest.clone(), Source::Blob(cfg.clone()));
    let diff_ids = img.diff_ids()?;
    let plain = uncompressed
        && img.manifest.layers.iter().any(|l| {
            oci::layer_compression(&l.media_type)
                .is_ok_and(|c| c != crate::image::compress::Compression::None)
        });
    if !plain {
        for l in &img.manifest.layers {
            blobs.insert(l.digest.clone(), Source::Blob(l.clone()));
        }
        let m = &img.manifest_desc;
        blobs.insert(m.digest.clone(), Source::Blob(m.clone()));
        return Ok(Saved {
            manifest: m.clone(),
            config: cfg.digest.clone(),
            layers: img
                .manifest
                .layers
                .iter()
                .map(|l| l.digest.clone())
                .collect(),
            name,
        });
    }
    // Plain layers: their digests are the diff IDs, their sizes the tar sizes the layer
    // dirs recorded (unpacked now if missing), and the manifest is a new one.
    store.ensure_layers(&diff_ids, &img.manifest.layers)?;
    let mut layers = vec![];
    for ((l, diff), chain) in img
        .manifest
        .layers
        .iter()
        .zip(&diff_ids)
        .zip(chain_ids(&diff_ids))
    {
        let size = store
            .layer_info(&chain)
            .with_context(|| format!("layer {chain} has no record"))?
            .size;
        let src = if oci::layer_compression(&l.media_type)?
            == crate::image::compress::Compression::None
        {
            Source::Blob(l.clone())
        } else {
            Source::Decompressed(l.clone(), diff.clone(), size)
        };
        blobs.insert(diff.clone(), src);
        layers.push(Descriptor::new(MT_LAYER, diff.clone(), size));
    }
    let m = Manifest {
        layers: layers.clone(),
        ..img.manifest.clone()
    };
    let bytes = oci::to_bytes(&m);
    let desc = Descriptor::new(MT_MANIFEST, Digest::of(&bytes), bytes.len() as u64);
    blobs.insert(desc.digest.clone(), Source::Bytes(bytes));
    Ok(Saved {
        manifest: desc,
        config: cfg.digest.clone(),
        layers: layers.into_iter().map(|l| l.digest).collect(),
        name,
    })
}

fn index(saved: &[Saved]) -> Vec<u8> {
    let mut idx = Index::default();
    for s in saved {
        idx.manifests
            .push(refs::entry(&s.manifest, s.name.as_ref()));
    }
    oci::to_bytes(&idx)
}

fn manifest_json(saved: &[Saved]) -> Vec<u8> {
    let entries: Vec<ManifestEntry> = saved
        .iter()
        .map(|s| ManifestEntry {
            config: format!("blobs/sha256/{}", s.config.hex()),
            repo_tags: s.name.as_ref().map(|n| vec![n.familiar()]),
            layers: s
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.hex()))
                .collect(),
            extra: Default::default(),
        })
        .collect();
    serde_json::to_vec(&entries).expect("manifest.json serializes")
}

// docker reads `repositories` only from archives without manifest.json; it maps each
// repository and tag to the image (the config's hex, as the image ID).
fn repositories(saved: &[Saved]) -> Vec<u8> {
    let mut r = Repositories::new();
    for s in saved {
        if let Some(n) = &s.name {
            if let Some(t) = &n.tag {
                r.entry(n.familiar_repository())
                    .or_default()
                    .insert(t.clone(), s.config.hex().to_string());
            }
        }
    }
    serde_json::to_vec(&r).expect("repositories serializes")
}

/// A tar of regular files and dirs with fixed metadata (mtime 0, root, 0644/0755).
struct TarWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        TarWriter {
            out,
            buf: vec![0; 1 << 20],
        }
    }

    fn header(&mut self, name: &str, size: u64, kind: tar::EntryType, mode: u32) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .with_context(|| format!("archive member name {name:?}"))?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        self.header(name, 0, tar::EntryType::Directory, 0o755)
    }

    fn file(&mut self, name: &str, src: &Source, store: &Store, progress: &Progress) -> Result<()> {
        let size = src.size();
        self.header(name, size, tar::EntryType::Regular, 0o644)?;
        match src {
            Source::Bytes(b) => self.out.write_all(b)?,
            Source::Blob(d) => {
                let f = store.open_blob(&d.digest)?;
                self.copy_blob(f, size, &d.digest, progress)
                    .with_context(|| format!("blob {}", d.digest))?;
            }
            Source::Decompressed(d, diff_id, _) => {
                let mut blob = HashReader::new(store.open_blob(&d.digest)?);
                {
                    let dec = crate::image::compress::decoder(BufReader::with_capacity(
                        1 << 20,
                        &mut blob,
                    ))?;
                    self.copy_checked(HashReader::new(dec), size, diff_id, progress)
                        .with_context(|| format!("layer {} decompressed", d.digest))?;
                }
                std::io::copy(&mut blob, &mut std::io::sink())?;
                let (got, n, _) = blob.finish();
                if got != d.digest || n != d.size {
                    bail!("blob {} is corrupt: {n} bytes hashing to {got}", d.digest);
                }
            }
        }
        self.pad(size)
    }

    // Copy exactly `size` bytes that must hash to `want`: a store blob that changed
    // under us must not become an archive that lies about it.
    fn copy_checked<R: Read>(
        &mut self,
        mut r: HashReader<R>,
        size: u64,
        want: &Digest,
        progress: &Progress,
    ) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let n = r.read(&mut self.buf[..left.min(1 << 20) as usize])?;
            if n == 0 {
                bail!("{} bytes short", left);
            }
            self.out.write_all(&self.buf[..n])?;
            progress.inc(n as u64);
            left -= n as u64;
        }
        if r.read(&mut self.buf[..1])? != 0 {
            bail!("longer than its {size} bytes");
        }
        let (got, _, _) = r.finish();
        if &got != want {
            bail!("content hashes to {got}, not {want}");
        }
        Ok(())
    }

    // A store blob, its digest checked as in `copy_checked` but on another thread: sha256
    // costs about what the copy does, so one after the other they took twice the time
    // of a plain copy. Chunks go to the hasher's reader and back through two queues.
    fn copy_blob(
        &mut self,
        f: std::fs::File,
        size: u64,
        want: &Digest,
        progress: &Progress,
    ) -> Result<()> {
        const CHUNK: usize = 1 << 20;
        const DEPTH: usize = 4;
        let (full_tx, full_rx) = sync_channel::<std::io::Result<Vec<u8>>>(DEPTH);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH);
        for _ in 0..DEPTH {
            let _ = empty_tx.send(vec![0; CHUNK]);
        }
        std::thread::scope(|scope| {
            let hasher = scope.spawn(move || {
                let mut r = HashReader::new(f);
                while let Ok(mut buf) = empty_rx.recv() {
                    buf.resize(CHUNK, 0);
                    let n = match read_full(&mut r, &mut buf) {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            break;
                        }
                    };
                    buf.truncate(n);
                    if n == 0 || full_tx.send(Ok(buf)).is_err() {
                        break;
                    }
                }
                r.finish().0
            });
            // Moved in, so that an early return here ends the hasher's waits too.
            let (full_rx, empty_tx) = (full_rx, empty_tx);
            let mut left = size;
            while let Ok(buf) = full_rx.recv() {
                let buf = buf?;
                if buf.len() as u64 > left {
                    bail!("longer than its {size} bytes");
                }
                self.out.write_all(&buf)?;
                progress.inc(buf.len() as u64);
                left -= buf.len() as u64;
                let _ = empty_tx.send(buf);
            }
            drop(empty_tx);
            let got = hasher
                .join()
                .map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?;
            if left > 0 {
                bail!("{left} bytes short");
            }
            if &got != want {
                bail!("content hashes to {got}, not {want}");
            }
            Ok(())
        })
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        Ok(self.out)
    }
}

/// Read until `buf` is full or the input ends; the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
