//! What a reference names in a registry: its manifest (through an index, for this
//! machine's platform or `--platform`), every document capped in size and its digest
//! checked against whatever asked for it, then the config and the plan of its layers.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;
use std::path::Path;

use super::client::Repo;
use crate::image::archive::load::json;
use crate::image::archive::load::members::Member;
use crate::image::archive::load::plan::{
    check_config, check_index, layer_plans, ImagePlan, MAX_IMAGES, MAX_LAYERS, MAX_NESTING,
    MT_DOCKER_LIST,
};
use crate::image::compress::Compression;
use crate::image::digest::Digest;
use crate::image::oci::{
    layer_compression, Descriptor, Index, Manifest, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST,
};
use crate::image::reference::Reference;
use crate::image::store::blobs::{temp_bytes, MAX_JSON};
use crate::image::store::Store;

const DIGEST_HEADER: &str = "docker-content-digest";

/// An OS, architecture and variant: `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: parts
                    .get(2)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string()),
            }),
            _ => bail!("--platform {s:?}: not os/arch[/variant] (e.g. linux/arm64)"),
        }
    }

    /// This machine's: linux and its Go architecture name.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            arch: crate::image::config::goarch().into(),
            variant: None,
        }
    }

    fn matches(&self, d: &Descriptor) -> bool {
        let p = d.extra.get("platform");
        let field = |k: &str| p.and_then(|p| p[k].as_str());
        field("os") == Some(&self.os)
            && field("architecture") == Some(&self.arch)
            && (self.variant.is_none() || field("variant") == self.variant.as_deref())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The image manifest a reference leads to.
pub struct Resolved {
    /// What the reference itself resolved to (an index's digest for a multi-platform
    /// image): docker's `Digest:` line.
    pub top: Digest,
    pub desc: Descriptor,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// Resolve `r` in `repo`: its manifest, or the one for `platform` in its index.
pub fn resolve(repo: &Repo, r: &Reference, platform: &Platform) -> Result<Resolved> {
    let key = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => bail!("{r}: neither a tag nor a digest"),
    };
    let (mut bytes, mut media_type, top) = fetch(repo, &key, r.digest.as_ref())?;
    let mut desc = Descriptor::new(&media_type, top.clone(), bytes.len() as u64);
    for _ in 0..=MAX_NESTING {
        match media_type.as_str() {
            MT_MANIFEST | MT_DOCKER_MANIFEST => {
                let manifest = parse_manifest(&bytes, &desc)?;
                return Ok(Resolved {
                    top,
                    desc,
                    bytes,
                    manifest,
                });
            }
            MT_INDEX | MT_DOCKER_LIST => {
                let what = format!("index {}", desc.digest);
                let idx: Index = json::parse(&bytes).with_context(|| what.clone())?;
                check_index(&idx, &media_type).with_context(|| what.clone())?;
                if idx.manifests.len() > MAX_IMAGES {
                    bail!("{what}: more than {MAX_IMAGES} manifests");
                }
                desc = pick(&idx, platform).with_context(|| what.clone())?;
                let got = fetch(repo, desc.digest.as_str(), Some(&desc.digest))?;
                if got.0.len() as u64 != desc.size {
                    bail!(
                        "manifest {}: {} bytes, its descriptor in {what} says {}",
                        desc.digest,
                        got.0.len(),
                        desc.size
                    );
                }
                (bytes, media_type) = (got.0, desc.media_type.clone());
            }
            "application/vnd.docker.distribution.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
                bail!(
                    "{}: a schema 1 manifest: not supported (docker removed it too)",
                    r
                )
            }
            other => bail!("manifest {}: unsupported media type {other:?}", desc.digest),
        }
    }
    bail!("indexes nested more than {MAX_NESTING} deep")
}

/// An image manifest, its inner media type checked against what led to it.
fn parse_manifest(bytes: &[u8], desc: &Descriptor) -> Result<Manifest> {
    let what = || format!("manifest {}", desc.digest);
    json::check(bytes).with_context(what)?;
    let m = Manifest::parse(bytes, &desc.media_type).with_context(what)?;
    if m.extra.contains_key("manifests") {
        bail!("{}: it also has an index's manifests: ambiguous", what());
    }
    if m.layers.len() > MAX_LAYERS {
        bail!(
            "{}: {} layers, more than the {MAX_LAYERS} allowed",
            what(),
            m.layers.len()
        );
    }
    Ok(m)
}

/// The index's manifest for `want`; the error lists what the index has.
fn pick(idx: &Index, want: &Platform) -> Result<Descriptor> {
    if let Some(d) = idx.manifests.iter().find(|d| want.matches(d)) {
        return Ok(d.clone());
    }
    let have: Vec<String> = idx
        .manifests
        .iter()
        .filter_map(|d| {
            let p = d.extra.get("platform")?;
            let mut s = format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?);
            if let Some(v) = p["variant"].as_str() {
                s = format!("{s}/{v}");
            }
            Some(s)
        })
        .collect();
    bail!(
        "no manifest for {want} (it has {}): choose one with --platform",
        if have.is_empty() {
            "none with a platform".to_string()
        } else {
            have.join(", ")
        }
    )
}

/// `GET /v2/<repo>/manifests/<key>`: (bytes, media type, digest), the body capped and
/// its digest checked against `want` and against the registry's own header.
fn fetch(repo: &Repo, key: &str, want: Option<&Digest>) -> Result<(Vec<u8>, String, Digest)> {
    let what = format!("manifest {key}");
    let accept = [MT_MANIFEST, MT_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST].join(", ");
    let url = repo.url(&format!("manifests/{key}"));
    let (bytes, headers) = get_capped(repo, &url, &what, Some(&accept))?;
    let digest = Digest::of(&bytes);
    if let Some(w) = want {
        if &digest != w {
            bail!(
                "{}: {what}: the registry sent a manifest whose digest is {digest}",
                repo.name()
            );
        }
    }
    if let Some(h) = headers.get(DIGEST_HEADER).and_then(|h| h.to_str().ok()) {
        let claimed = Digest::parse(h).with_context(|| {
            format!(
                "{}: {what}: a bad Docker-Content-Digest header",
                repo.name()
            )
        })?;
        if claimed != digest {
            bail!(
                "{}: {what}: the registry says its digest is {claimed}, but its content \
                 hashes to {digest}",
                repo.name()
            );
        }
    }
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
        .filter(|s| s != "application/json" && !s.is_empty());
    let media_type = match media_type {
        Some(m) => m,
        None => inner_media_type(&bytes).with_context(|| format!("{}: {what}", repo.name()))?,
    };
    Ok((bytes, media_type, digest))
}

/// A document that came without a Content-Type: its own mediaType, or a manifest's
/// shape (OCI allows leaving it out).
fn inner_media_type(bytes: &[u8]) -> Result<String> {
    let v: serde_json::Value = json::parse(bytes)?;
    if let Some(m) = v["mediaType"].as_str() {
        return Ok(m.to_string());
    }
    match (v.get("manifests"), v.get("layers")) {
        (Some(_), None) => Ok(MT_INDEX.into()),
        (None, Some(_)) => Ok(MT_MANIFEST.into()),
        _ => bail!("neither a manifest nor an index"),
    }
}

/// A GET of a JSON document: refused above `MAX_JSON` by its Content-Length, and cut off
/// there if it lies (CVE-2023-25153 class). Returns the body and the headers.
pub fn get_capped(
    repo: &Repo,
    url: &str,
    what: &str,
    accept: Option<&str>,
) -> Result<(Vec<u8>, reqwest::header::HeaderMap)> {
    repo.conn.block_on(async {
        let build = || {
            let req = repo.request(Method::GET, url);
            match accept {
                Some(a) => req.header(ACCEPT, a),
                None => req,
            }
        };
        let mut resp = repo
            .send(build)
            .await?
            .map_err(|e| repo.conn.unreachable(&e).context(what.to_string()))?;
        if !resp.status().is_success() {
            return Err(repo.refused(what, resp).await);
        }
        let headers = resp.headers().clone();
        let len = headers
            .get(CONTENT_LENGTH)
            .and_then(|h| h.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(n) = len {
            json::check_size(n).map_err(|e| anyhow!("{}: {what}: {e}", repo.name()))?;
        }
        let mut body = Vec::new();
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| repo.conn.unreachable(&e).context(what.to_string()))?
        {
            body.extend_from_slice(&c);
            json::check_size(body.len() as u64)
                .map_err(|e| anyhow!("{}: {what}: {e}", repo.name()))?;
        }
        Ok((body, headers))
    })
}

/// The config a manifest names: from the store if it has it, else fetched (capped, its
/// size and digest checked); into the temp dir, to publish with the image.
fn config(repo: &Repo, store: &Store, tmp: &Path, d: &Descriptor) -> Result<(Member, Vec<u8>)> {
    let what = format!("config {}", d.digest);
    json::check_size(d.size).map_err(|e| anyhow!("{what}: declared size: {e}"))?;
    let bytes = if store.has_blob(&d.digest) {
        store.read_blob(&d.digest, Some(d.size), MAX_JSON)?
    } else {
        let url = repo.url(&format!("blobs/{}", d.digest));
        let (b, _) = get_capped(repo, &url, &what, None)?;
        let got = Digest::of(&b);
        if got != d.digest || b.len() as u64 != d.size {
            bail!(
                "{}: {what}: the registry sent {} bytes hashing to {got} ({} expected)",
                repo.name(),
                b.len(),
                d.size
            );
        }
        b
    };
    let t = temp_bytes(tmp, &bytes)?;
    let m = Member {
        name: what,
        path: t.path,
        digest: t.digest,
        size: t.size,
        compression: Compression::None,
    };
    Ok((m, bytes))
}

/// The plan of the pulled image, as `load` makes one for an archive: manifest and config
/// in the temp dir, each layer's blob at `tmp/layer-<hex>` (where it will arrive), its
/// compression from its media type, diff IDs and chain IDs from the config.
pub fn plan(
    repo: &Repo,
    store: &Store,
    tmp: &Path,
    res: &Resolved,
    names: Vec<Reference>,
) -> Result<ImagePlan> {
    let what = res.desc.digest.to_string();
    let mt = temp_bytes(tmp, &res.bytes)?;
    let manifest = Member {
        name: "manifest".into(),
        path: mt.path,
        digest: mt.digest,
        size: mt.size,
        compression: Compression::None,
    };
    let (config, config_bytes) = config(repo, store, tmp, &res.manifest.config)?;
    let diff_ids = check_config(&config_bytes, &res.manifest.config.media_type)
        .with_context(|| format!("config {}", config.digest))?;
    let mut layers = Vec::with_capacity(res.manifest.layers.len());
    for (j, l) in res.manifest.layers.iter().enumerate() {
        let lw = format!("layer {} ({})", j + 1, l.digest);
        let compression = layer_compression(&l.media_type).with_context(|| lw.clone())?;
        let blob = Member {
            name: lw.clone(),
            path: tmp.join(format!("layer-{}", l.digest.hex())),
            digest: l.digest.clone(),
            size: l.size,
            compression,
        };
        layers.push((blob, lw));
    }
    Ok(ImagePlan {
        layers: layer_plans(&what, layers, &diff_ids)?,
        what,
        manifest,
        manifest_media_type: res.desc.media_type.clone(),
        built: false,
        config,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(MT_MANIFEST, Digest::of(arch.as_bytes()), 1);
        let mut p = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        d.extra.insert("platform".into(), p);
        d
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8")
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("/amd64").is_err());
        let idx = Index {
            manifests: vec![
                entry("linux", "arm", Some("v6")),
                entry("linux", "arm", Some("v7")),
                entry("linux", "amd64", None),
                entry("unknown", "unknown", None),
            ],
            ..Index::default()
        };
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(pick(&idx, &arm7).unwrap().digest, idx.manifests[1].digest);
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(pick(&idx, &amd).unwrap().digest, idx.manifests[2].digest);
        let e = pick(&idx, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/arm/v6, linux/arm/v7"), "{e}");
    }

    #[test]
    fn a_document_without_a_content_type() {
        assert_eq!(inner_media_type(br#"{"manifests":[]}"#).unwrap(), MT_INDEX);
        assert_eq!(
            inner_media_type(br#"{"mediaType":"x","layers":[]}"#).unwrap(),
            "x"
        );
        assert!(inner_media_type(b"{}").is_err());
    }
}
