//! The members of an image archive: the names one may use, and each member copied into
//! the operation's temp dir through sha256 (checked at once when its name is a digest).

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::image::compress::Compression;
use crate::image::digest::Digest;
use crate::image::store::blobs::{BlobWriter, TempBlob};

/// What a member name says about the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// `index.json`, `manifest.json`, `oci-layout`: small documents, read into memory.
    Doc,
    /// A file an image may name: `blobs/sha256/<hex>` and the legacy config `<hex>.json`
    /// (both named by their digest), a layer file (`<id>/layer.tar`, skopeo's `<hex>.tar`).
    File { digest: Option<Digest>, json: bool },
    /// `repositories`, `<id>/json`, `<id>/VERSION` (names and v1 metadata that
    /// `manifest.json` and the config carry too), and names no image format uses.
    Skip,
}

/// A member in the temp dir: verified against its name if that is a digest.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its name in the archive (a link's target, for a symlinked layer file).
    pub name: String,
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
    /// What its first bytes say.
    pub compression: Compression,
}

impl Member {
    /// The member as a blob ready to publish.
    pub fn temp_blob(&self) -> TempBlob {
        TempBlob {
            digest: self.digest.clone(),
            size: self.size,
            path: self.path.clone(),
        }
    }

    /// The whole member, for a JSON document (the caller checked its size).
    pub fn read(&self) -> Result<Vec<u8>> {
        super::json::check_size(self.size)?;
        fs::read(&self.path).with_context(|| format!("read {}", self.path.display()))
    }
}

/// An archive being read: documents and files by member name.
pub trait Members {
    /// A top-level document (`index.json`, `manifest.json`, `oci-layout`), if present.
    fn doc(&mut self, name: &str) -> Result<Option<Vec<u8>>>;
    /// A file named by a manifest, in the temp dir and verified, if present.
    fn file(&mut self, name: &str) -> Result<Option<Member>>;
}

/// `name` cleaned: `.` and empty components dropped. Absolute names, `..` and NULs are
/// refused, since a member of another meaning than its name must never be taken.
pub fn clean(raw: &[u8]) -> Result<String> {
    let Ok(s) = std::str::from_utf8(raw) else {
        bail!("not a UTF-8 name");
    };
    if s.starts_with('/') {
        bail!("an absolute name (path traversal)");
    }
    if s.contains('\0') {
        bail!("a NUL in the name");
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => bail!("a name with .. (path traversal)"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a cleaned member name is.
pub fn classify(name: &str) -> Class {
    let digest = |hex: &str| Digest::parse(&format!("sha256:{hex}")).ok();
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["index.json" | "manifest.json" | "oci-layout"] => Class::Doc,
        ["blobs", "sha256", hex] if is_hex64(hex) => Class::File {
            digest: digest(hex),
            json: false,
        },
        [file] => match file.rsplit_once('.') {
            Some((hex, "json")) if is_hex64(hex) => Class::File {
                digest: digest(hex),
                json: true,
            },
            Some((hex, "tar")) if is_hex64(hex) => Class::File {
                digest: None,
                json: false,
            },
            _ => Class::Skip,
        },
        [id, "layer.tar"] if is_hex64(id) => Class::File {
            digest: None,
            json: false,
        },
        _ => Class::Skip,
    }
}

/// A member name for messages: each 64-hex run cut to 12 digits.
pub fn short(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 {
            out.push_str(&run[..12]);
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in name.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Copy a member's bytes from `r` into a new file of `tmp`, hashing them; a member named
/// by a digest must hash to it.
pub fn copy_in(r: &mut dyn Read, tmp: &Path, name: &str, want: Option<&Digest>) -> Result<Member> {
    let mut w = BlobWriter::new(tmp)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut head: Vec<u8> = Vec::with_capacity(4);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", short(name))),
        };
        if head.len() < 4 {
            let k = n.min(4 - head.len());
            head.extend_from_slice(&buf[..k]);
        }
        w.write_all(&buf[..n])
            .with_context(|| format!("write {} into the temp dir", short(name)))?;
    }
    // Not synced yet: `load` syncs what it publishes while it unpacks.
    let blob = w.finish_unsynced()?;
    if let Some(d) = want {
        if &blob.digest != d {
            bail!(
                "{}: digest mismatch: its {} bytes hash to {}",
                short(name),
                blob.size,
                blob.digest
            );
        }
    }
    Ok(Member {
        name: name.to_string(),
        path: blob.path,
        digest: blob.digest,
        size: blob.size,
        compression: Compression::detect(&head),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let h = "ab".repeat(32);
        assert_eq!(clean(b"./index.json").unwrap(), "index.json");
        assert_eq!(clean(b"blobs//sha256/./x").unwrap(), "blobs/sha256/x");
        for bad in [
            &b"../x"[..],
            b"/etc/passwd",
            b"blobs/sha256/../../x",
            b"a\0b",
        ] {
            assert!(clean(bad).is_err(), "{bad:?}");
        }
        assert_eq!(classify("manifest.json"), Class::Doc);
        assert!(matches!(
            classify(&format!("blobs/sha256/{h}")),
            Class::File {
                digest: Some(_),
                json: false
            }
        ));
        assert!(matches!(
            classify(&format!("{h}.json")),
            Class::File {
                digest: Some(_),
                json: true
            }
        ));
        assert!(matches!(
            classify(&format!("{h}/layer.tar")),
            Class::File { digest: None, .. }
        ));
        assert!(matches!(
            classify(&format!("{h}.tar")),
            Class::File { digest: None, .. }
        ));
        for skip in [
            "repositories",
            &format!("{h}/json"),
            &format!("{h}/VERSION"),
            "blobs/sha512/x",
            &format!("blobs/sha256/{}", h.to_uppercase()),
            "x/layer.tar",
        ] {
            assert_eq!(classify(skip), Class::Skip, "{skip}");
        }
        assert_eq!(
            short(&format!("blobs/sha256/{h}")),
            format!("blobs/sha256/{}…", &h[..12])
        );
        assert_eq!(short("manifest.json"), "manifest.json");
    }
}
