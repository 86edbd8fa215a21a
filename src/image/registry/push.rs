//! `push`: an image of the store to a registry, as docker pushes: each blob HEADed first
//! and skipped when the registry has it, else mounted from another repository of that
//! registry that an image of ours came from, else uploaded (one streamed PATCH as docker
//! does, one PUT when the registry refuses that), `--jobs` at a time; the manifest last,
//! with the bytes the store has, so the digest pushed is the local one.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use super::client::{Conn, ConnOpts, Repo};
use super::status::{Board, Meter, Mode};
use crate::image::digest::Digest;
use crate::image::images;
use crate::image::oci::{Descriptor, Manifest, ANN_IMAGE_NAME};
use crate::image::reference::Reference;
use crate::image::store::blobs::MAX_JSON;
use crate::image::store::{refs, Store};

/// Bytes read from a blob at a time into the upload stream.
const CHUNK: usize = 4 << 20;

pub struct PushOpts {
    /// A name or ID in the store.
    pub image: String,
    /// Where to: the image's name when not given.
    pub dest: Option<String>,
    pub jobs: usize,
    pub quiet: bool,
    pub conn: ConnOpts,
}

pub struct Pushed {
    pub name: Reference,
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

pub fn push(store: &Store, o: &PushOpts) -> Result<Pushed> {
    let img = images::find(store, &o.image)?;
    let dest = destination(store, o)?;
    push_image(store, o, &img, &dest).with_context(|| format!("push {}", dest.full()))
}

/// The name to push to: DEST, else IMAGE when it is one of the image's names.
fn destination(store: &Store, o: &PushOpts) -> Result<Reference> {
    let r = match &o.dest {
        Some(d) => Reference::parse(d)?,
        None => {
            let r = Reference::parse(&o.image).ok().filter(|r| {
                store
                    .load_index()
                    .is_ok_and(|idx| idx.manifests.iter().any(|d| refs::names(d, r)))
            });
            r.ok_or_else(|| {
                anyhow!(
                    "{}: not a name of the image: give the name to push to \
                     (push IMAGE REGISTRY/REPO:TAG)",
                    o.image
                )
            })?
        }
    };
    if r.digest.is_some() {
        bail!("{r}: a registry names what is pushed by its digest: push to a tag");
    }
    Ok(r)
}

fn push_image(
    store: &Store,
    o: &PushOpts,
    img: &images::Image,
    dest: &Reference,
) -> Result<Pushed> {
    let mut board = Board::new(Mode::pick(o.quiet));
    board.line(&format!(
        "The push refers to repository [{}]",
        dest.repository()
    ));
    let conn = Conn::open(&dest.domain, &o.conn)?;
    let repo = conn.repo(&dest.path, RegistryOperation::Push)?;
    let mut blobs: Vec<(Descriptor, bool)> = Vec::new();
    for l in img.manifest.layers.iter().rev() {
        if !blobs.iter().any(|(b, _)| b.digest == l.digest) {
            board.add(&l.digest, "Preparing");
            blobs.push((l.clone(), true));
        }
    }
    blobs.push((img.manifest.config.clone(), false));
    for (b, _) in &blobs {
        if !store.has_blob(&b.digest) {
            bail!("blob {} of the image is missing from the store", b.digest);
        }
    }
    for (b, _) in blobs.iter().filter(|(_, shown)| *shown).skip(o.jobs) {
        board.set(&b.digest, "Waiting");
    }
    let sources = mount_sources(store, dest);
    let none = Vec::new();
    conn.block_on(
        stream::iter(blobs.iter())
            .map(|(d, shown)| {
                let from = sources.get(&d.digest).unwrap_or(&none);
                push_blob(&repo, store, d, from, &board, *shown)
            })
            .buffer_unordered(o.jobs.max(1))
            .try_collect::<Vec<()>>(),
    )?;
    let tag = dest.tag.clone().unwrap_or_else(|| "latest".into());
    let md = &img.manifest_desc;
    let bytes = store.read_blob(&md.digest, Some(md.size), MAX_JSON)?;
    put_manifest(&repo, &tag, bytes, &md.media_type)?;
    board.finish();
    Ok(Pushed {
        name: dest.clone(),
        tag,
        digest: md.digest.clone(),
        size: md.size,
    })
}

/// For each blob, the other repositories of `dest`'s registry that an image of ours
/// with that blob is named after: it came from there, or went there, so the registry
/// can mount it rather than take it again.
fn mount_sources(store: &Store, dest: &Reference) -> HashMap<Digest, Vec<String>> {
    let mut out: HashMap<Digest, Vec<String>> = HashMap::new();
    let Ok(idx) = store.load_index() else {
        return out;
    };
    for d in &idx.manifests {
        let Some(name) = d
            .annotations
            .get(ANN_IMAGE_NAME)
            .map(String::as_str)
            .or(d.ref_name())
        else {
            continue;
        };
        let Ok(r) = Reference::parse(name) else {
            continue;
        };
        if r.domain != dest.domain || r.path == dest.path {
            continue;
        }
        let Ok(b) = store.read_blob(&d.digest, Some(d.size), MAX_JSON) else {
            continue;
        };
        let Ok(m) = Manifest::parse(&b, &d.media_type) else {
            continue;
        };
        for blob in m.layers.iter().chain([&m.config]) {
            let v = out.entry(blob.digest.clone()).or_default();
            if !v.contains(&r.path) {
                v.push(r.path.clone());
            }
        }
    }
    out
}

/// One blob: already there, mounted, or uploaded.
async fn push_blob(
    repo: &Repo<'_>,
    store: &Store,
    d: &Descriptor,
    from: &[String],
    board: &Board,
    shown: bool,
) -> Result<()> {
    let what = || format!("blob {}", d.digest);
    let set = |s: &str| {
        if shown {
            board.set(&d.digest, s)
        }
    };
    if exists(repo, &d.digest).await.with_context(what)? {
        set("Layer already exists");
        return Ok(());
    }
    for src in from {
        // A registry that will not mount answers 202 (an upload begins): upload then.
        if mount(repo, &d.digest, src).await {
            set(&format!("Mounted from {src}"));
            return Ok(());
        }
    }
    set("Pushing");
    let meter = shown.then(|| board.meter(&d.digest, "Pushing", d.size));
    let path = store.blob_path(&d.digest);
    if !streamed(repo, path.clone(), d, meter)
        .await
        .with_context(what)?
    {
        // The registry refused the PATCH: one PUT of the whole blob.
        monolithic(repo, path, d).await.with_context(what)?;
    }
    set("Pushed");
    Ok(())
}

/// docker's upload: a session (POST), the whole blob as one streamed PATCH, then the
/// PUT with its digest. Returns false when the registry refuses the PATCH (then the
/// caller uploads monolithically). oci-client's chunked push PATCHes 4 MiB at a time,
/// one request each: 2.5 s for 458 MB here, where one stream moves it at disk speed.
async fn streamed(
    repo: &Repo<'_>,
    path: PathBuf,
    d: &Descriptor,
    meter: Option<Meter>,
) -> Result<bool> {
    let conn = repo.conn;
    let loc = begin(repo).await?;
    let chunks = Chunks::open(path, meter)?;
    let resp = repo
        .request(Method::PATCH, loc.as_str())
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .map_err(|e| conn.unreachable(&e))?;
    if resp.status() != StatusCode::ACCEPTED {
        return Ok(false);
    }
    let mut url = location(repo, &resp)?;
    url.query_pairs_mut()
        .append_pair("digest", d.digest.as_str());
    let resp = repo
        .request(Method::PUT, url.as_str())
        .header(CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(|e| conn.unreachable(&e))?;
    if resp.status() != StatusCode::CREATED {
        return Err(repo.refused("finish the upload", resp).await);
    }
    Ok(true)
}

/// `HEAD /v2/<repo>/blobs/<digest>`: whether the registry has the blob. Our own request,
/// not oci-client's: it carries the client certificate, if any.
async fn exists(repo: &Repo<'_>, d: &Digest) -> Result<bool> {
    let url = repo.url(&format!("blobs/{d}"));
    let resp = repo
        .send(|| repo.request(Method::HEAD, &url))
        .await?
        .map_err(|e| repo.conn.unreachable(&e))?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(repo.refused("HEAD", resp).await),
    }
}

/// A cross-repository mount of `d` from `src`: whether the registry made it (201).
async fn mount(repo: &Repo<'_>, d: &Digest, src: &str) -> bool {
    let Ok(mut url) = reqwest::Url::parse(&repo.url("blobs/uploads/")) else {
        return false;
    };
    url.query_pairs_mut()
        .append_pair("mount", d.as_str())
        .append_pair("from", src);
    let sent = repo
        .request(Method::POST, url.as_str())
        .header(CONTENT_LENGTH, 0)
        .send()
        .await;
    matches!(sent, Ok(r) if r.status() == StatusCode::CREATED)
}

/// POST for an upload session: its URL. (A token that expired is renewed here, where the
/// request has no body; the upload's streamed body cannot be sent twice.)
async fn begin(repo: &Repo<'_>) -> Result<reqwest::Url> {
    let url = repo.url("blobs/uploads/");
    let resp = repo
        .send(|| repo.request(Method::POST, &url).header(CONTENT_LENGTH, 0))
        .await?
        .map_err(|e| repo.conn.unreachable(&e))?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(repo.refused("start an upload", resp).await);
    }
    location(repo, &resp)
}

/// An upload's next URL, from its Location (relative or absolute).
fn location(repo: &Repo<'_>, resp: &reqwest::Response) -> Result<reqwest::Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| anyhow!("{}: an upload answer without a Location", repo.name()))?;
    reqwest::Url::parse(&format!("{}/", repo.conn.base()))?
        .join(loc)
        .with_context(|| format!("{}: a bad upload Location {loc:?}", repo.name()))
}

/// A blob of the store read in `CHUNK`s, counted on its meter.
struct Chunks {
    f: std::fs::File,
    sent: u64,
    meter: Option<Meter>,
}

impl Chunks {
    fn open(path: PathBuf, meter: Option<Meter>) -> Result<Chunks> {
        let f = std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        Ok(Chunks { f, sent: 0, meter })
    }
}

impl Iterator for Chunks {
    type Item = std::io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::with_capacity(CHUNK);
        match (&mut self.f).take(CHUNK as u64).read_to_end(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                self.sent += n as u64;
                if let Some(m) = &self.meter {
                    m.show(self.sent);
                }
                Some(Ok(Bytes::from(buf)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// The upload as one PUT, for registries that refuse a PATCH: POST for a session, then
/// the whole blob with its digest.
async fn monolithic(repo: &Repo<'_>, path: PathBuf, d: &Descriptor) -> Result<()> {
    let conn = repo.conn;
    let mut url = begin(repo).await?;
    url.query_pairs_mut()
        .append_pair("digest", d.digest.as_str());
    let chunks = Chunks::open(path, None)?;
    let resp = repo
        .request(Method::PUT, url.as_str())
        .header(CONTENT_LENGTH, d.size)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .map_err(|e| conn.unreachable(&e))?;
    if resp.status() != StatusCode::CREATED {
        return Err(repo.refused("upload", resp).await);
    }
    Ok(())
}

/// The manifest, last: everything it names is there now.
fn put_manifest(repo: &Repo, tag: &str, bytes: Vec<u8>, media_type: &str) -> Result<()> {
    let url = repo.url(&format!("manifests/{tag}"));
    let ct = HeaderValue::from_str(media_type)
        .with_context(|| format!("manifest media type {media_type:?}"))?;
    let body = Bytes::from(bytes);
    repo.conn
        .block_on(async {
            let build = || {
                repo.request(Method::PUT, &url)
                    .header(CONTENT_TYPE, ct.clone())
                    .body(body.clone())
            };
            let resp = repo
                .send(build)
                .await?
                .map_err(|e| repo.conn.unreachable(&e))?;
            if !resp.status().is_success() {
                return Err(repo.refused("PUT", resp).await);
            }
            Ok(())
        })
        .with_context(|| format!("manifest {tag}"))
}

/// docker's last line.
pub fn report(p: &Pushed) {
    println!("{}: digest: {} size: {}", p.tag, p.digest, p.size);
}
