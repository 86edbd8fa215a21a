//! Image names as docker reads them: `busybox` is `docker.io/library/busybox:latest`.

use anyhow::{bail, Result};
use std::fmt;

use super::digest::Digest;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
// distribution/reference: a whole name is at most 255 bytes, a tag 128.
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A normalized image reference: registry domain, repository path, tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse as docker does, adding `:latest` when neither a tag nor a digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        let mut r = Reference::parse_bare(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.into());
        }
        Ok(r)
    }

    fn parse_bare(s: &str) -> Result<Reference> {
        if s.is_empty() {
            bail!("invalid image name \"\": it is empty");
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    Digest::parse(d)
                        .map_err(|e| anyhow::anyhow!("invalid image name {s:?}: {e}"))?,
                ),
            ),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(s, t)?;
        }
        if name.len() > NAME_MAX {
            bail!("invalid image name {s:?}: the repository name is longer than {NAME_MAX} bytes");
        }
        let (domain, path) = split_domain(name);
        check_domain(s, &domain)?;
        check_path(s, &path)?;
        Ok(Reference {
            domain,
            path,
            tag: tag.map(String::from),
            digest,
        })
    }

    /// `docker.io/library/busybox` (no tag or digest).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short repository name docker shows: `busybox`, `user/app`, `localhost:5000/app`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }

    /// `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        self.with_suffix(self.repository())
    }

    /// `busybox:latest`: the name shown to users and kept in
    /// `org.opencontainers.image.ref.name`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_repository())
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

// The first component is a registry if it looks like a host: it has a '.' or a ':', or
// is "localhost" (distribution/reference's splitDockerDomain).
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn check_tag(s: &str, t: &str) -> Result<()> {
    let ok = !t.is_empty()
        && t.len() <= TAG_MAX
        && t.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if !ok {
        bail!("invalid image name {s:?}: invalid tag {t:?} (letters, digits, _ . -, at most {TAG_MAX}, not starting with . or -)");
    }
    Ok(())
}

fn check_domain(s: &str, d: &str) -> Result<()> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok {
        bail!("invalid image name {s:?}: invalid registry {d:?}");
    }
    Ok(())
}

// Path components: lowercase letters and digits, separated by '.', '_', '__' or '-'s.
fn check_path(s: &str, path: &str) -> Result<()> {
    for c in path.split('/') {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            bail!("invalid image name {s:?}: repository name must be lowercase");
        }
        let b = c.as_bytes();
        let ends_ok = b.first().is_some_and(|x| x.is_ascii_alphanumeric())
            && b.last().is_some_and(|x| x.is_ascii_alphanumeric());
        let mut ok = ends_ok;
        let mut i = 0;
        while ok && i < b.len() {
            if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let sep_len = b[i..]
                .iter()
                .take_while(|x| !x.is_ascii_alphanumeric())
                .count();
            let sep = &c[i..i + sep_len];
            ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
            i += sep_len;
        }
        if !ok {
            bail!("invalid image name {s:?}: invalid repository component {c:?} (lowercase letters and digits, separated by . _ __ or -)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_docker() {
        for (input, full, familiar) in [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "index.docker.io/library/busybox:x",
                "docker.io/library/busybox:x",
                "busybox:x",
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "quay.io/a/b/c_d__e-f.g",
                "quay.io/a/b/c_d__e-f.g:latest",
                "quay.io/a/b/c_d__e-f.g:latest",
            ),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.full(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
        let d = format!("sha256:{}", "b".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.familiar(), format!("busybox@{d}"));
    }

    #[test]
    fn refuses_bad_names() {
        for (input, why) in [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "invalid tag"),
            ("busybox:-x", "invalid tag"),
            ("a//b", "invalid repository component"),
            ("a/-b", "invalid repository component"),
            ("a..b", "invalid repository component"),
            ("busybox@sha256:abc", "invalid digest"),
            ("my_host:99x/app", "invalid registry"),
        ] {
            let e = Reference::parse(input).unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
        }
        let long = "a".repeat(256);
        assert!(Reference::parse(&long).is_err());
    }
}
