//! What an archive holds: its images from `index.json` (OCI), `manifest.json` (docker) or
//! both (which must agree), every document, size, media type and digest checked, and
//! diff IDs against layers and history, before any layer is unpacked.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

use super::json;
use super::members::{self, short, Class, Member, Members};
use crate::image::archive::docker::{ManifestEntry, MANIFEST_JSON};
use crate::image::compress::Compression;
use crate::image::digest::Digest;
use crate::image::oci::{
    self, layer_compression, layer_media_type, Descriptor, Index, Manifest, ANN_IMAGE_NAME,
    MT_CONFIG, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST,
};
use crate::image::reference::Reference;
use crate::image::store::blobs::temp_bytes;
use crate::image::store::layers::chain_ids;

/// The most images (entries of `index.json` or `manifest.json`) one archive may hold.
pub const MAX_IMAGES: usize = 10_000;
/// The most layers one image may have: overlayfs stacks at most 500 lowers.
pub const MAX_LAYERS: usize = 500;
/// Indexes within indexes followed (docker's containerd store nests one).
pub const MAX_NESTING: usize = 4;
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const INDEX_JSON: &str = "index.json";

/// One image of the archive, verified but for the diff IDs of compressed layers (those
/// are checked as the layers are unpacked).
pub struct ImagePlan {
    /// How errors name it: `index.json: image 2 (busybox:latest)`.
    pub what: String,
    pub manifest: Member,
    pub manifest_media_type: String,
    /// The manifest is ours, made from `manifest.json` (docker archives carry none).
    pub built: bool,
    pub config: Member,
    pub layers: Vec<LayerPlan>,
    pub names: Vec<Reference>,
}

impl ImagePlan {
    /// The image ID: its config's digest.
    pub fn id(&self) -> &Digest {
        &self.config.digest
    }

    pub fn manifest_desc(&self) -> Descriptor {
        Descriptor::new(
            &self.manifest_media_type,
            self.manifest.digest.clone(),
            self.manifest.size,
        )
    }
}

pub struct LayerPlan {
    /// `index.json: image 2 (busybox:latest): layer 3 (blobs/sha256/ab…)`.
    pub what: String,
    pub blob: Member,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

/// Every image of the archive.
pub fn plan(m: &mut dyn Members, tmp: &Path) -> Result<Vec<ImagePlan>> {
    check_layout(m)?;
    let index = m.doc(INDEX_JSON)?;
    let manifest = m.doc(MANIFEST_JSON)?;
    match (index, manifest) {
        (None, None) => bail!("neither index.json nor manifest.json: not an image archive"),
        (Some(i), None) => oci_images(m, &i),
        (None, Some(d)) => docker_images(m, &d, tmp),
        (Some(i), Some(d)) => {
            let oci = oci_images(m, &i)?;
            agree(oci, docker_images(m, &d, tmp)?)
        }
    }
}

fn check_layout(m: &mut dyn Members) -> Result<()> {
    let Some(b) = m.doc("oci-layout")? else {
        return Ok(()); // docker ≤24 archives have none
    };
    let v: Value = json::parse(&b).context("oci-layout")?;
    if v["imageLayoutVersion"] != "1.0.0" {
        bail!(
            "oci-layout: unsupported imageLayoutVersion {}",
            v["imageLayoutVersion"]
        );
    }
    Ok(())
}

// ---- OCI: index.json -------------------------------------------------------------------

fn oci_images(m: &mut dyn Members, bytes: &[u8]) -> Result<Vec<ImagePlan>> {
    let idx: Index = json::parse(bytes).context(INDEX_JSON)?;
    check_index(&idx, MT_INDEX).context(INDEX_JSON)?;
    if idx.manifests.len() > MAX_IMAGES {
        bail!(
            "index.json: {} images, more than the {MAX_IMAGES} allowed",
            idx.manifests.len()
        );
    }
    let mut out: Vec<ImagePlan> = Vec::new();
    // Entries naming the same manifest are one image with several names.
    let mut by_manifest: Vec<Digest> = Vec::new();
    for (i, d) in idx.manifests.iter().enumerate() {
        let names = index_names(d, i + 1);
        if let Some(k) = by_manifest.iter().position(|x| x == &d.digest) {
            add_names(&mut out[k].names, names);
            continue;
        }
        let what = image_what(INDEX_JSON, i + 1, names.first());
        let img = oci_image(m, d, &what, names).with_context(|| what.clone())?;
        by_manifest.push(d.digest.clone());
        out.push(img);
    }
    Ok(out)
}

/// An index's own mediaType, if it states one, must be what its descriptor said, and it
/// must not also read as a manifest (CVE-2021-41190).
pub fn check_index(idx: &Index, claimed: &str) -> Result<()> {
    if let Some(inner) = &idx.media_type {
        if inner != claimed {
            bail!("index mediaType {inner:?} does not match its descriptor's {claimed:?}");
        }
    }
    if idx.extra.contains_key("config") || idx.extra.contains_key("layers") {
        bail!("an index with a manifest's config or layers: ambiguous");
    }
    Ok(())
}

/// The names an index entry gives: containerd's full name, else a ref name that is a
/// whole name (`busybox:latest`); a bare tag (`latest`, as umoci writes) names nothing.
fn index_names(d: &Descriptor, n: usize) -> Vec<Reference> {
    let given = d
        .annotations
        .get(ANN_IMAGE_NAME)
        .map(String::as_str)
        .or(d.ref_name().filter(|r| r.contains(':') || r.contains('/')));
    let Some(s) = given else { return vec![] };
    match Reference::parse(s) {
        Ok(r) if r.digest.is_none() => vec![r],
        _ => {
            eprintln!(
                "strata-image: warning: index.json: image {n}: {s:?} is not an image name: \
                 loaded untagged"
            );
            vec![]
        }
    }
}

fn oci_image(
    m: &mut dyn Members,
    d: &Descriptor,
    what: &str,
    names: Vec<Reference>,
) -> Result<ImagePlan> {
    let (desc, manifest_member, man) = resolve(m, d, 0)?;
    if man.layers.len() > MAX_LAYERS {
        bail!(
            "{} layers, more than the {MAX_LAYERS} allowed",
            man.layers.len()
        );
    }
    let (config, config_bytes) = doc_blob(m, &man.config).context("config")?;
    let diff_ids = check_config(&config_bytes, &man.config.media_type).context("config")?;
    let mut layers = Vec::with_capacity(man.layers.len());
    for (j, l) in man.layers.iter().enumerate() {
        let name = blob_name(&l.digest);
        let lw = format!("layer {} ({})", j + 1, short(&name));
        let blob = blob(m, l).with_context(|| lw.clone())?;
        let claimed = layer_compression(&l.media_type).with_context(|| lw.clone())?;
        if blob.compression != claimed {
            bail!(
                "{lw}: its media type {:?} says {} but the blob is {}",
                l.media_type,
                claimed.name(),
                blob.compression.name()
            );
        }
        layers.push((blob, lw));
    }
    Ok(ImagePlan {
        what: what.to_string(),
        layers: layer_plans(what, layers, &diff_ids)?,
        manifest: manifest_member,
        manifest_media_type: desc.media_type,
        built: false,
        config,
        names,
    })
}

/// The image manifest a descriptor leads to: itself, or the one for our platform in an
/// index (nested, as docker's containerd store writes).
fn resolve(
    m: &mut dyn Members,
    d: &Descriptor,
    depth: usize,
) -> Result<(Descriptor, Member, Manifest)> {
    match d.media_type.as_str() {
        MT_MANIFEST | MT_DOCKER_MANIFEST => {
            let (member, bytes) = doc_blob(m, d).context("manifest")?;
            json::check(&bytes).context("manifest")?;
            let man = Manifest::parse(&bytes, &d.media_type)
                .with_context(|| format!("manifest {}", short(&blob_name(&d.digest))))?;
            if man.extra.contains_key("manifests") {
                bail!(
                    "manifest {}: it also has an index's manifests: ambiguous",
                    d.digest
                );
            }
            Ok((d.clone(), member, man))
        }
        MT_INDEX | MT_DOCKER_LIST => {
            if depth >= MAX_NESTING {
                bail!("indexes nested more than {MAX_NESTING} deep");
            }
            let what = format!("index {}", short(&blob_name(&d.digest)));
            let (_, bytes) = doc_blob(m, d).with_context(|| what.clone())?;
            let idx: Index = json::parse(&bytes).with_context(|| what.clone())?;
            check_index(&idx, &d.media_type).with_context(|| what.clone())?;
            let pick = pick_platform(m, &idx).with_context(|| what.clone())?;
            resolve(m, &pick, depth + 1)
        }
        other => bail!("unsupported media type {other:?}"),
    }
}

/// The manifest for linux on this machine's architecture, or the only one; among several
/// (variants), the first whose blob the archive has (a save keeps one platform's blobs).
fn pick_platform(m: &mut dyn Members, idx: &Index) -> Result<Descriptor> {
    let arch = crate::image::config::goarch();
    let ours: Vec<&Descriptor> = idx
        .manifests
        .iter()
        .filter(|d| {
            let p = &d.extra.get("platform");
            p.and_then(|p| p["os"].as_str()) == Some("linux")
                && p.and_then(|p| p["architecture"].as_str()) == Some(arch)
        })
        .collect();
    match (ours.as_slice(), idx.manifests.as_slice()) {
        ([], [only]) => Ok(only.clone()),
        ([], _) => bail!(
            "no manifest for linux/{arch} among its {}",
            idx.manifests.len()
        ),
        (cands, _) => {
            for c in cands {
                if m.file(&blob_name(&c.digest))?.is_some() {
                    return Ok((*c).clone());
                }
            }
            Ok(cands[0].clone())
        }
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The blob a descriptor names, checked against its size (its digest was checked as it
/// was read).
fn blob(m: &mut dyn Members, d: &Descriptor) -> Result<Member> {
    let name = blob_name(&d.digest);
    let Some(b) = m.file(&name)? else {
        bail!("blob {} is not in the archive", d.digest);
    };
    if b.size != d.size {
        bail!(
            "{}: size is {} bytes, its descriptor says {}",
            short(&name),
            b.size,
            d.size
        );
    }
    Ok(b)
}

/// A JSON document blob: its declared size capped before it is looked at.
fn doc_blob(m: &mut dyn Members, d: &Descriptor) -> Result<(Member, Vec<u8>)> {
    json::check_size(d.size).map_err(|e| anyhow!("declared size: {e}"))?;
    let b = blob(m, d)?;
    let bytes = b.read()?;
    Ok((b, bytes))
}

// ---- docker: manifest.json -------------------------------------------------------------

fn docker_images(m: &mut dyn Members, bytes: &[u8], tmp: &Path) -> Result<Vec<ImagePlan>> {
    let entries: Vec<ManifestEntry> = json::parse(bytes).context(MANIFEST_JSON)?;
    if entries.len() > MAX_IMAGES {
        bail!(
            "manifest.json: {} images, more than the {MAX_IMAGES} allowed",
            entries.len()
        );
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut names = Vec::new();
        for t in e.repo_tags.iter().flatten() {
            let r = Reference::parse(t)
                .with_context(|| format!("manifest.json: image {}: RepoTags", i + 1))?;
            add_names(&mut names, vec![r]);
        }
        let what = image_what(MANIFEST_JSON, i + 1, names.first());
        let img = docker_image(m, e, &what, names, tmp).with_context(|| what.clone())?;
        out.push(img);
    }
    Ok(out)
}

fn docker_image(
    m: &mut dyn Members,
    e: &ManifestEntry,
    what: &str,
    names: Vec<Reference>,
    tmp: &Path,
) -> Result<ImagePlan> {
    if e.layers.len() > MAX_LAYERS {
        bail!(
            "{} layers, more than the {MAX_LAYERS} allowed",
            e.layers.len()
        );
    }
    let config = named_file(m, &e.config).context("config")?;
    let config_bytes = config.read().context("config")?;
    let diff_ids = check_config(&config_bytes, MT_CONFIG).context("config")?;
    let mut layers = Vec::with_capacity(e.layers.len());
    for (j, path) in e.layers.iter().enumerate() {
        let lw = format!("layer {} ({})", j + 1, short(path));
        layers.push((named_file(m, path).with_context(|| lw.clone())?, lw));
    }
    // The manifest docker would have pushed, in OCI form; the config's bytes are kept as
    // they are, so the image ID is docker's.
    let descs = layers
        .iter()
        .map(|(b, _)| Descriptor::new(&layer_media_type(b.compression), b.digest.clone(), b.size))
        .collect();
    let man = Manifest::new(
        Descriptor::new(MT_CONFIG, config.digest.clone(), config.size),
        descs,
    );
    let mb = temp_bytes(tmp, &oci::to_bytes(&man))?;
    let manifest = Member {
        name: "manifest".into(),
        path: mb.path,
        digest: mb.digest,
        size: mb.size,
        compression: Compression::None,
    };
    Ok(ImagePlan {
        what: what.to_string(),
        layers: layer_plans(what, layers, &diff_ids)?,
        manifest,
        manifest_media_type: MT_MANIFEST.into(),
        built: true,
        config,
        names,
    })
}

/// A file `manifest.json` names by path.
fn named_file(m: &mut dyn Members, path: &str) -> Result<Member> {
    let name = members::clean(path.as_bytes()).with_context(|| format!("{path:?}"))?;
    if !matches!(members::classify(&name), Class::File { .. }) {
        bail!("{path:?} is not a file an image archive may name");
    }
    m.file(&name)?
        .ok_or_else(|| anyhow!("{} is not in the archive", short(&name)))
}

// ---- both ------------------------------------------------------------------------------

/// docker 25+ and our own `save` write both documents: each image must be the same in
/// both (config and layers), or one of them lies about the archive.
fn agree(mut oci: Vec<ImagePlan>, docker: Vec<ImagePlan>) -> Result<Vec<ImagePlan>> {
    const DISAGREE: &str = "manifest.json and index.json disagree";
    for d in &docker {
        let mut found = false;
        for o in oci.iter_mut().filter(|o| o.id() == d.id()) {
            found = true;
            let (dl, ol) = (&d.layers, &o.layers);
            if dl.len() != ol.len() {
                bail!(
                    "{DISAGREE}: {}: {} layers in manifest.json, {} in index.json ({})",
                    d.what,
                    dl.len(),
                    ol.len(),
                    o.what
                );
            }
            for (j, (a, b)) in dl.iter().zip(ol).enumerate() {
                if a.blob.digest != b.blob.digest {
                    bail!(
                        "{DISAGREE}: {}: layer {} is {} in manifest.json, {} in index.json",
                        d.what,
                        j + 1,
                        a.blob.digest,
                        b.blob.digest
                    );
                }
            }
            add_names(&mut o.names, d.names.clone());
        }
        if !found {
            bail!(
                "{DISAGREE}: {} has config {}, which no image of index.json has",
                d.what,
                d.id()
            );
        }
    }
    if let Some(o) = oci
        .iter()
        .find(|o| !docker.iter().any(|d| d.id() == o.id()))
    {
        bail!(
            "{DISAGREE}: {} (config {}) is not in manifest.json",
            o.what,
            o.id()
        );
    }
    Ok(oci)
}

// ---- shared checks ---------------------------------------------------------------------

/// The config's diff IDs, after checking it: a JSON object whose own mediaType (if it
/// states one) is its descriptor's, with layers as its rootfs and a history that agrees.
pub fn check_config(bytes: &[u8], claimed: &str) -> Result<Vec<Digest>> {
    let v: Value = json::parse(bytes)?;
    if !v.is_object() {
        bail!("not a JSON object");
    }
    if let Some(inner) = v.get("mediaType").and_then(Value::as_str) {
        if inner != claimed {
            bail!("config mediaType {inner:?} does not match its descriptor's {claimed:?}");
        }
    }
    if v["rootfs"]["type"] != "layers" {
        bail!("rootfs.type is {}, not \"layers\"", v["rootfs"]["type"]);
    }
    crate::image::images::diff_ids(&v)
}

/// Layers paired with the config's diff IDs; an uncompressed layer's digest is its diff
/// ID, checked now.
pub fn layer_plans(
    what: &str,
    layers: Vec<(Member, String)>,
    diff_ids: &[Digest],
) -> Result<Vec<LayerPlan>> {
    if layers.len() != diff_ids.len() {
        bail!(
            "{} layers but {} diff IDs in its config",
            layers.len(),
            diff_ids.len()
        );
    }
    let chains = chain_ids(diff_ids);
    let mut out = Vec::with_capacity(layers.len());
    for (((blob, lw), diff_id), chain_id) in layers.into_iter().zip(diff_ids).zip(chains) {
        if blob.compression == Compression::None && &blob.digest != diff_id {
            bail!(
                "{lw}: its content has diff ID {}, the config says {diff_id}",
                blob.digest
            );
        }
        out.push(LayerPlan {
            what: format!("{what}: {lw}"),
            blob,
            diff_id: diff_id.clone(),
            chain_id,
        });
    }
    Ok(out)
}

fn image_what(doc: &str, n: usize, name: Option<&Reference>) -> String {
    match name {
        Some(r) => format!("{doc}: image {n} ({})", r.familiar()),
        None => format!("{doc}: image {n}"),
    }
}

fn add_names(to: &mut Vec<Reference>, more: Vec<Reference>) {
    for r in more {
        if !to.iter().any(|x| x.full() == r.full()) {
            to.push(r);
        }
    }
}
