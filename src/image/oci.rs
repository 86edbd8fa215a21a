//! The OCI image JSON documents: descriptors, manifests, the index, and their media types.
//!
//! Our own small serde types rather than oci-spec's: annotations are ordered maps (the
//! same document always serializes to the same bytes, hence the same digest), and fields
//! we do not know are kept, so a document read and written back loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::compress::Compression;
use super::digest::Digest;

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MT_DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const MT_NONDIST_PREFIX: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// The ref-name annotation: the image's familiar name (`busybox:latest`).
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and docker 25's) full name annotation (`docker.io/library/busybox:latest`).
pub const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

/// The layer media type for a compression.
pub fn layer_media_type(c: Compression) -> String {
    format!("{MT_LAYER}{}", c.media_type_suffix())
}

/// What a layer media type says about the blob's compression, or an error naming it.
/// Deprecated non-distributable types are read, never written.
pub fn layer_compression(media_type: &str) -> anyhow::Result<Compression> {
    let tail = media_type
        .strip_prefix(MT_LAYER)
        .or_else(|| media_type.strip_prefix(MT_NONDIST_PREFIX));
    match (media_type, tail) {
        (_, Some("")) => Ok(Compression::None),
        (_, Some("+gzip")) => Ok(Compression::Gzip),
        (_, Some("+zstd")) => Ok(Compression::Zstd),
        (MT_DOCKER_LAYER_GZIP | MT_DOCKER_LAYER_FOREIGN, _) => Ok(Compression::Gzip),
        _ => anyhow::bail!("unknown layer media type {media_type:?}"),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: BTreeMap::new(),
            extra: Map::new(),
        }
    }

    /// The familiar name this index entry carries, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(ANN_REF_NAME).map(String::as_str)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Manifest {
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MT_MANIFEST.into()),
            config,
            layers,
            annotations: BTreeMap::new(),
            extra: Map::new(),
        }
    }

    /// Parse a manifest blob, checking the media type inside it against the one its
    /// descriptor claimed (CVE-2021-41190: one blob must not read as two kinds).
    pub fn parse(bytes: &[u8], claimed: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("manifest is not valid JSON: {e}"))?;
        if m.schema_version != 2 {
            anyhow::bail!("manifest schemaVersion is {}, not 2", m.schema_version);
        }
        let inner = m.media_type.as_deref().unwrap_or(MT_MANIFEST);
        if inner != claimed {
            anyhow::bail!(
                "manifest mediaType {inner:?} does not match its descriptor's {claimed:?}"
            );
        }
        if inner != MT_MANIFEST && inner != MT_DOCKER_MANIFEST {
            anyhow::bail!("unsupported manifest media type {inner:?}");
        }
        if m.config.media_type != MT_CONFIG && m.config.media_type != MT_DOCKER_CONFIG {
            anyhow::bail!("unsupported config media type {:?}", m.config.media_type);
        }
        for l in &m.layers {
            layer_compression(&l.media_type)?;
        }
        Ok(m)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MT_INDEX.into()),
            manifests: vec![],
            annotations: BTreeMap::new(),
            extra: Map::new(),
        }
    }
}

/// JSON bytes as we write every document: compact, fields in declaration order.
pub fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("OCI documents always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_media_type_must_match_its_descriptor() {
        let cfg = Descriptor::new(MT_CONFIG, Digest::of(b"{}"), 2);
        let m = Manifest::new(cfg, vec![]);
        let b = to_bytes(&m);
        assert!(Manifest::parse(&b, MT_MANIFEST).is_ok());
        let e = Manifest::parse(&b, MT_INDEX).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let d = Digest::of(b"x");
        let s = format!(
            r#"{{"mediaType":"{MT_LAYER}+gzip","digest":"{d}","size":1,"urls":["u"],"platform":{{"os":"linux"}}}}"#
        );
        let desc: Descriptor = serde_json::from_str(&s).unwrap();
        let back = String::from_utf8(to_bytes(&desc)).unwrap();
        assert!(
            back.contains(r#""urls":["u"]"#) && back.contains(r#""platform""#),
            "{back}"
        );
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(layer_compression(MT_LAYER).unwrap(), Compression::None);
        assert_eq!(
            layer_compression(&layer_media_type(Compression::Zstd)).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            layer_compression(MT_DOCKER_LAYER_GZIP).unwrap(),
            Compression::Gzip
        );
        assert!(layer_compression("application/x-bogus")
            .unwrap_err()
            .to_string()
            .contains("application/x-bogus"));
    }
}
