//! Image archives built by hand for tests/load.rs: a raw tar writer (any name, any entry
//! type, so hostile archives can be made), layers, configs, and the archive shapes
//! (legacy docker-archive, skopeo's symlinked layers, docker 25's hybrid, oci-archive,
//! OCI layout dir), each a list of members a test may tamper with before writing it.

#![allow(dead_code)]

pub mod env;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn sha(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for x in h {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn hex(digest: &str) -> &str {
    &digest[7..]
}

// ---- tar ------------------------------------------------------------------------------

/// One archive member: anything a tar can say.
#[derive(Clone, Debug)]
pub enum Entry {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    HardLink(String),
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub entry: Entry,
}

pub fn file(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.into(),
        entry: Entry::File(data.to_vec()),
    }
}

pub fn symlink(name: &str, target: &str) -> Member {
    Member {
        name: name.into(),
        entry: Entry::Symlink(target.into()),
    }
}

pub fn hardlink(name: &str, target: &str) -> Member {
    Member {
        name: name.into(),
        entry: Entry::HardLink(target.into()),
    }
}

/// A ustar header, written by hand: names are taken as they are (`..`, `/abs`).
fn header(name: &str, flag: u8, link: &str, size: usize, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    assert!(name.len() <= 100 && link.len() <= 100, "{name} -> {link}");
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&x| x as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// The members as one tar.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let (flag, link, data, mode): (u8, &str, &[u8], u32) = match &m.entry {
            Entry::File(d) => (b'0', "", d, 0o644),
            Entry::Dir => (b'5', "", &[], 0o755),
            Entry::Symlink(t) => (b'2', t, &[], 0o777),
            Entry::HardLink(t) => (b'1', t, &[], 0o644),
        };
        out.extend_from_slice(&header(&m.name, flag, link, data.len(), mode));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A layer tar of regular files (0644, root, mtime 0).
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let members: Vec<Member> = files.iter().map(|(n, d)| file(n, d)).collect();
    tar(&members)
}

/// The members written as a directory tree (an OCI layout dir).
pub fn write_dir(members: &[Member], dir: &Path) {
    for m in members {
        let p = dir.join(&m.name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        match &m.entry {
            Entry::File(d) => fs::write(&p, d).unwrap(),
            Entry::Dir => fs::create_dir_all(&p).unwrap(),
            Entry::Symlink(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
            Entry::HardLink(t) => fs::hard_link(dir.join(t), &p).unwrap(),
        }
    }
}

// ---- compression ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

impl Comp {
    pub fn apply(self, b: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => b.to_vec(),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(b).unwrap();
                e.finish().unwrap()
            }
            Comp::Zstd => zstd::encode_all(b, 3).unwrap(),
        }
    }

    pub fn media_type(self) -> String {
        match self {
            Comp::None => MT_LAYER.into(),
            Comp::Gzip => format!("{MT_LAYER}+gzip"),
            Comp::Zstd => format!("{MT_LAYER}+zstd"),
        }
    }
}

// ---- images ---------------------------------------------------------------------------

/// A layer: its tar (the diff ID's bytes) and its blob.
#[derive(Clone, Debug)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub blob: Vec<u8>,
    pub media_type: String,
}

impl Layer {
    pub fn new(tar: Vec<u8>, c: Comp) -> Layer {
        Layer {
            blob: c.apply(&tar),
            media_type: c.media_type(),
            tar,
        }
    }

    pub fn diff_id(&self) -> String {
        sha(&self.tar)
    }

    pub fn digest(&self) -> String {
        sha(&self.blob)
    }

    pub fn desc(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.blob.len()})
    }
}

/// An image: config bytes (kept exactly), layers, names (`repo:tag`).
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
    pub names: Vec<String>,
    /// The manifest as a test rewrote it (else made from the config and layers).
    pub manifest_bytes: Option<Vec<u8>>,
}

/// A config for `layers`, one history entry per layer, and `tag` in a label so that
/// images of the same layers differ.
pub fn config_for(layers: &[Layer], tag: &str) -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Labels": {"test": tag}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(Layer::diff_id).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
    })
}

impl Image {
    pub fn new(layers: Vec<Layer>, names: &[&str]) -> Image {
        let tag = names.first().copied().unwrap_or("untagged");
        Image {
            config: serde_json::to_vec(&config_for(&layers, tag)).unwrap(),
            layers,
            names: names.iter().map(|s| s.to_string()).collect(),
            manifest_bytes: None,
        }
    }

    /// The same image with its manifest edited.
    pub fn edit_manifest(mut self, f: impl FnOnce(&mut Value)) -> Image {
        let mut v: Value = serde_json::from_slice(&self.manifest()).unwrap();
        f(&mut v);
        self.manifest_bytes = Some(serde_json::to_vec(&v).unwrap());
        self
    }

    /// The same image with a config edited.
    pub fn edit_config(mut self, f: impl FnOnce(&mut Value)) -> Image {
        let mut v: Value = serde_json::from_slice(&self.config).unwrap();
        f(&mut v);
        self.config = serde_json::to_vec(&v).unwrap();
        self
    }

    pub fn id(&self) -> String {
        sha(&self.config)
    }

    pub fn config_desc(&self) -> Value {
        json!({"mediaType": MT_CONFIG, "digest": self.id(), "size": self.config.len()})
    }

    pub fn manifest(&self) -> Vec<u8> {
        if let Some(m) = &self.manifest_bytes {
            return m.clone();
        }
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": self.config_desc(),
            "layers": self.layers.iter().map(Layer::desc).collect::<Vec<_>>(),
        }))
        .unwrap()
    }
}

// ---- archive shapes -------------------------------------------------------------------

fn push_blob(out: &mut Vec<Member>, b: &[u8]) {
    let name = format!("blobs/sha256/{}", hex(&sha(b)));
    if !out.iter().any(|m| m.name == name) {
        out.push(file(&name, b));
    }
}

/// An OCI layout (oci-archive or layout dir): one index entry per name (an untagged
/// image gets one without), named as skopeo and containerd name them.
pub fn oci(images: &[Image]) -> Vec<Member> {
    let mut out = vec![file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)];
    let mut index = vec![];
    for img in images {
        for l in &img.layers {
            push_blob(&mut out, &l.blob);
        }
        push_blob(&mut out, &img.config);
        let m = img.manifest();
        push_blob(&mut out, &m);
        let desc = json!({"mediaType": MT_MANIFEST, "digest": sha(&m), "size": m.len()});
        if img.names.is_empty() {
            index.push(desc.clone());
        }
        for n in &img.names {
            let mut d = desc.clone();
            d["annotations"] = json!({"org.opencontainers.image.ref.name": n});
            index.push(d);
        }
    }
    let idx = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index});
    out.push(file("index.json", &serde_json::to_vec(&idx).unwrap()));
    out
}

/// docker 25's hybrid: the OCI layout plus a manifest.json over the same blobs.
pub fn hybrid(images: &[Image]) -> Vec<Member> {
    let mut out = oci(images);
    let entries: Vec<Value> = images
        .iter()
        .map(|img| {
            json!({
                "Config": format!("blobs/sha256/{}", hex(&img.id())),
                "RepoTags": img.names,
                "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", hex(&l.digest()))).collect::<Vec<_>>(),
            })
        })
        .collect();
    out.push(file(
        "manifest.json",
        &serde_json::to_vec(&entries).unwrap(),
    ));
    out
}

/// docker ≤24: `<v1 id>/layer.tar` (the blob as it is: uncompressed for docker), the
/// config as `<id>.json`, manifest.json and repositories. With `skopeo`, layers are
/// top-level `<diffid>.tar` files and `<v1 id>/layer.tar` symlinks to them.
pub fn docker(images: &[Image], skopeo: bool) -> Vec<Member> {
    let mut out: Vec<Member> = vec![];
    let mut entries = vec![];
    for img in images {
        let mut paths = vec![];
        for (i, l) in img.layers.iter().enumerate() {
            // A v1 ID of this image's chain up to this layer.
            let v1 = hex(&sha(format!("{}{}", img.id(), i).as_bytes())).to_string();
            let path = format!("{v1}/layer.tar");
            if skopeo {
                let top = format!("{}.tar", hex(&l.diff_id()));
                if !out.iter().any(|m| m.name == top) {
                    out.push(file(&top, &l.blob));
                }
                out.push(symlink(&path, &format!("../{top}")));
            } else {
                out.push(Member {
                    name: format!("{v1}/"),
                    entry: Entry::Dir,
                });
                out.push(file(&path, &l.blob));
            }
            out.push(file(&format!("{v1}/VERSION"), b"1.0"));
            out.push(file(&format!("{v1}/json"), br#"{"id":"x"}"#));
            paths.push(path);
        }
        out.push(file(&format!("{}.json", hex(&img.id())), &img.config));
        entries.push(json!({
            "Config": format!("{}.json", hex(&img.id())),
            "RepoTags": if img.names.is_empty() { Value::Null } else { json!(img.names) },
            "Layers": paths,
        }));
    }
    out.push(file(
        "manifest.json",
        &serde_json::to_vec(&entries).unwrap(),
    ));
    out.push(file("repositories", b"{}"));
    out
}

/// Replace the member `name`'s bytes.
pub fn replace(members: &mut [Member], name: &str, data: Vec<u8>) {
    let m = members
        .iter_mut()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"));
    m.entry = Entry::File(data);
}

/// The JSON member `name`, edited.
pub fn edit_json(members: &mut [Member], name: &str, f: impl FnOnce(&mut Value)) {
    let m = members.iter_mut().find(|m| m.name == name).unwrap();
    let Entry::File(d) = &m.entry else { panic!() };
    let mut v: Value = serde_json::from_slice(d).unwrap();
    f(&mut v);
    m.entry = Entry::File(serde_json::to_vec(&v).unwrap());
}
