//! Entry and link names checked and split into components, refusing anything that could leave the layer.

use super::limits::{MAX_COMPONENT, MAX_NAME};
use crate::image::whiteout::{self, OciName};
use anyhow::{bail, Result};

/// A checked relative name: its components, none empty, `.` or `..`. No components means
/// the layer root.
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// Check `raw` (a tar entry name or hard link target). `..` anywhere and absolute names
    /// are refused outright rather than cleaned: a layer has no business naming them
    /// (CVE-2014-6407 class for link targets).
    pub fn parse(raw: &[u8]) -> Result<Name> {
        if raw.is_empty() {
            bail!("empty name");
        }
        if raw.len() > MAX_NAME {
            bail!("name of {} bytes (limit {MAX_NAME})", raw.len());
        }
        if raw.contains(&0) {
            bail!("NUL byte in name");
        }
        if raw.starts_with(b"/") {
            bail!("absolute name: path leaves the layer");
        }
        let mut comps = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => bail!("path leaves the layer"),
                c if c.len() > MAX_COMPONENT => {
                    bail!(
                        "name component of {} bytes (limit {MAX_COMPONENT})",
                        c.len()
                    )
                }
                c => comps.push(c.to_vec()),
            }
        }
        Ok(Name(comps))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent's components (empty for an entry at the top).
    pub fn parent(&self) -> &[Vec<u8>] {
        &self.0[..self.0.len().saturating_sub(1)]
    }

    /// The last component (empty for the root).
    pub fn base(&self) -> &[u8] {
        self.0.last().map_or(&[][..], |b| &b[..])
    }
}

/// Components joined with `/`: the key a path has in the unpacker's maps.
pub fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

/// What a last component means in OCI terms. Names need not be UTF-8: a non-UTF-8 name after
/// `.wh.` can be none of the degenerate ones.
pub enum Oci {
    Plain,
    Whiteout(Vec<u8>),
    Opaque,
}

pub fn oci(base: &[u8]) -> Result<Oci> {
    Ok(match std::str::from_utf8(base) {
        Ok(s) => match whiteout::classify(s)? {
            OciName::Plain => Oci::Plain,
            OciName::Whiteout(n) => Oci::Whiteout(n.as_bytes().to_vec()),
            OciName::Opaque => Oci::Opaque,
        },
        Err(_) => match base.strip_prefix(whiteout::WH_PREFIX.as_bytes()) {
            Some(n) => Oci::Whiteout(n.to_vec()),
            None => Oci::Plain,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            Name::parse(b"./a//b/").unwrap().0,
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(Name::parse(b"./").unwrap().is_root());
        for bad in [&b""[..], b"/a", b"../a", b"a/../../b", b"a/..", b"a\0b"] {
            assert!(
                Name::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Name::parse(&vec![b'a'; 256]).is_err());
        assert!(Name::parse(&[&b"a/"[..]; 2049].concat()).is_err());
    }
}
