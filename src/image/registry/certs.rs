//! A registry's certificates dir, as docker's certs.d: `*.crt` CA certificates to trust
//! besides the system's, and `NAME.cert` + `NAME.key` a client certificate and its key
//! for mutual TLS.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a registry's certificate dirs hold.
#[derive(Default)]
pub struct Certs {
    /// PEM CA certificates, each file checked to parse.
    pub cas: Vec<Vec<u8>>,
    /// A client identity: PEM certificate chain then key, and the `.cert` it came from.
    pub identity: Option<(PathBuf, Vec<u8>)>,
}

/// The certificates for `registry`: in `dir`, else in podman's and docker's per-registry
/// dirs when they exist. A `.cert` without its `.key` (or the reverse) is an error, as in
/// docker: a half pair is a mistake, not a choice.
pub fn load(registry: &str, dir: Option<&Path>) -> Result<Certs> {
    let dirs: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => ["/etc/containers/certs.d", "/etc/docker/certs.d"]
            .iter()
            .map(|b| Path::new(b).join(registry))
            .filter(|d| d.is_dir())
            .collect(),
    };
    let mut out = Certs::default();
    for d in dirs {
        let rd = std::fs::read_dir(&d).with_context(|| format!("--cert-dir {}", d.display()))?;
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        let ext = |p: &Path, x: &str| p.extension().is_some_and(|e| e == x);
        for p in names.iter().filter(|p| ext(p, "crt")) {
            let pem = read(p)?;
            reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{}: not a PEM certificate", p.display()))?;
            out.cas.push(pem);
        }
        for key in names.iter().filter(|p| ext(p, "key")) {
            let cert = key.with_extension("cert");
            if !cert.exists() {
                bail!(
                    "missing client certificate {} for key {}",
                    cert.display(),
                    key.display()
                );
            }
        }
        for cert in names.iter().filter(|p| ext(p, "cert")) {
            let key = cert.with_extension("key");
            if !key.exists() {
                bail!(
                    "missing key {} for client certificate {} (CA certificates end in .crt)",
                    key.display(),
                    cert.display()
                );
            }
            // One identity per connection: the first pair by name, as a TLS client
            // offers one certificate.
            if out.identity.is_some() {
                continue;
            }
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(&key)?);
            reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "{} and {}: not a PEM client certificate and its key",
                    cert.display(),
                    key.display()
                )
            })?;
            out.identity = Some((cert.clone(), pem));
        }
    }
    Ok(out)
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("read {}", p.display()))
}
