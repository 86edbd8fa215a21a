//! Registry credentials in the files docker and podman keep them in: podman's
//! `auth.json`, docker's `~/.docker/config.json` (`auths` → `{"auth": base64(user:pass)}`),
//! read in podman's order, written 0600 by an atomic rename, never printed; a credential
//! helper a file names (`credsStore`, `credHelpers`) is asked first, as docker does.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{Map, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::helper;
use super::hub::{DOCKER_HUB, DOCKER_HUB_KEY, DOCKER_HUB_NAMES};

/// A credentials file bigger than this is not one.
const MAX_FILE: u64 = 1 << 20;

/// A user and password for a registry, and where they came from (a file, a helper).
#[derive(Clone)]
pub struct Creds {
    pub user: String,
    pub pass: String,
    pub from: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Creds({}, from {})", self.user, self.from)
    }
}

/// The files read, in order: `--authfile` or `$REGISTRY_AUTH_FILE` alone; else podman's
/// (`$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`), then
/// docker's (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
pub fn files(authfile: Option<&Path>) -> Vec<PathBuf> {
    if let Some(f) = authfile {
        return vec![f.to_path_buf()];
    }
    if let Some(f) = env_path("REGISTRY_AUTH_FILE") {
        return vec![f];
    }
    let mut out = Vec::new();
    if let Some(d) = env_path("XDG_RUNTIME_DIR") {
        out.push(d.join("containers/auth.json"));
    }
    if let Some(h) = home() {
        out.push(h.join(".config/containers/auth.json"));
    }
    out.extend(docker_config());
    out
}

/// The file `login` writes: `--authfile` or `$REGISTRY_AUTH_FILE`, else docker's
/// config.json (which podman reads too).
pub fn target(authfile: Option<&Path>) -> Result<PathBuf> {
    if let Some(f) = authfile {
        return Ok(f.to_path_buf());
    }
    if let Some(f) = env_path("REGISTRY_AUTH_FILE") {
        return Ok(f);
    }
    docker_config().context("no home directory for ~/.docker/config.json: give --authfile")
}

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

fn docker_config() -> Option<PathBuf> {
    env_path("DOCKER_CONFIG")
        .or_else(|| home().map(|h| h.join(".docker")))
        .map(|d| d.join("config.json"))
}

/// The credentials for `registry`'s repository `repo`, from the first file that has an
/// entry for it; a podman entry for `registry/namespace` beats one for the registry. A
/// helper the file names for the registry is asked first (docker's order); one that
/// holds nothing for it leaves the file's own entry, if any.
pub fn lookup(registry: &str, repo: &str, authfile: Option<&Path>) -> Result<Option<Creds>> {
    let want = format!("{registry}/{repo}");
    for f in files(authfile) {
        let Some(doc) = read(&f)? else { continue };
        // A helper that is not installed (a config.json copied from a desktop with
        // `"credsStore": "desktop"`) leaves the file's own entry; with none, its absence
        // is the error.
        let mut missing = None;
        if let Some(name) = helper::name_for(&doc, registry) {
            match helper::get(&name, registry) {
                Ok(Some((user, pass))) => {
                    return Ok(Some(Creds {
                        user,
                        pass,
                        from: format!("docker-credential-{name}, named in {}", f.display()),
                    }))
                }
                Ok(None) => {}
                Err(e) if helper::not_installed(&e) => {
                    missing = Some(e.context(format!("named in {}", f.display())))
                }
                Err(e) => return Err(e.context(format!("named in {}", f.display()))),
            }
        }
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            match missing {
                Some(e) => return Err(e),
                None => continue,
            }
        };
        let best = auths
            .iter()
            .filter_map(|(k, v)| {
                let key = normalize(k);
                let hit = key == registry
                    || (registry == DOCKER_HUB && DOCKER_HUB_NAMES.contains(&key.as_str()))
                    || want.starts_with(&format!("{key}/"));
                hit.then_some((key.len(), v))
            })
            .max_by_key(|(n, _)| *n);
        if let Some((_, v)) = best {
            if let Some(c) = decode(v, &f)? {
                return Ok(Some(c));
            }
        }
        if let Some(e) = missing {
            return Err(e);
        }
    }
    Ok(None)
}

/// A key as docker writes it (`https://host:port/v1/`) or podman (`host:port`,
/// `host/namespace`), reduced to `host[:port][/namespace]`.
fn normalize(key: &str) -> String {
    match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        // A URL: only its host counts (docker's ConvertToHostname).
        Some(rest) => rest.split('/').next().unwrap_or(rest).to_string(),
        None => key.trim_end_matches('/').to_string(),
    }
}

fn decode(v: &Value, f: &Path) -> Result<Option<Creds>> {
    let Some(a) = v
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    else {
        return Ok(None); // an entry left to a credential helper, or emptied
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.trim())
        .with_context(|| format!("{}: an \"auth\" that is not base64", f.display()))?;
    let s = String::from_utf8(raw)
        .with_context(|| format!("{}: an \"auth\" that is not UTF-8", f.display()))?;
    let Some((user, pass)) = s.split_once(':') else {
        bail!("{}: an \"auth\" that is not user:password", f.display());
    };
    Ok(Some(Creds {
        user: user.to_string(),
        pass: pass.to_string(),
        from: f.display().to_string(),
    }))
}

/// A credentials file as JSON; None when it does not exist.
fn read(f: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match fs::File::open(f) {
        Ok(file) => {
            let len = file.metadata()?.len();
            if len > MAX_FILE {
                bail!(
                    "{}: {len} bytes: too big for a credentials file",
                    f.display()
                );
            }
            fs::read(f).with_context(|| format!("read {}", f.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", f.display())),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        _ => bail!("{}: not a JSON object", f.display()),
    }
}

/// The key `login` writes for a registry: docker's URL for docker.io, else the name.
fn key_for(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Save credentials for `registry` into `file`, keeping everything else in it.
pub fn save(file: &Path, registry: &str, user: &str, pass: &str) -> Result<()> {
    let mut doc = read(file)?.unwrap_or_default();
    let auths = doc
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", file.display());
    };
    // Another spelling of the same registry would shadow (or outlive) this entry.
    auths.retain(|k, _| normalize(k) != normalize(&key_for(registry)));
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    auths.insert(key_for(registry), serde_json::json!({ "auth": b }));
    write(file, &doc)
}

/// Remove every entry for `registry` from `file`; whether there was one.
pub fn remove(file: &Path, registry: &str) -> Result<bool> {
    let Some(mut doc) = read(file)? else {
        return Ok(false);
    };
    let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    let hub = registry == DOCKER_HUB;
    auths.retain(|k, _| {
        let n = normalize(k);
        !(n == registry || (hub && DOCKER_HUB_NAMES.contains(&n.as_str())))
    });
    if auths.len() == before {
        return Ok(false);
    }
    write(file, &doc)?;
    Ok(true)
}

/// Replace `file` atomically, mode 0600 from its first byte (its dir made 0700).
fn write(file: &Path, doc: &Map<String, Value>) -> Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("auth");
    let tmp = dir.join(format!(".{name}.{}", crate::image::store::random_hex(6)));
    let mut bytes = serde_json::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    let done = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, file)
    })();
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", file.display()));
    }
    crate::image::store::fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpfile(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "strata-auth-{tag}-{}",
            crate::image::store::random_hex(4)
        ));
        d.join("sub/config.json")
    }

    #[test]
    fn keys_in_docker_and_podman_spellings() {
        assert_eq!(normalize("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(normalize("http://r:5000/v2/"), "r:5000");
        assert_eq!(normalize("r:5000"), "r:5000");
        assert_eq!(normalize("r:5000/team"), "r:5000/team");
    }

    #[test]
    fn save_lookup_remove() {
        use std::os::unix::fs::PermissionsExt;
        let f = tmpfile("slr");
        save(&f, "r:5000", "u", "p:w").unwrap();
        save(&f, "docker.io", "hub", "x").unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let c = lookup("r:5000", "a/b", Some(&f)).unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", "p:w"));
        let hub = lookup("docker.io", "library/busybox", Some(&f))
            .unwrap()
            .unwrap();
        assert_eq!(hub.user, "hub");
        assert!(lookup("other:1", "a", Some(&f)).unwrap().is_none());
        assert!(remove(&f, "r:5000").unwrap());
        assert!(!remove(&f, "r:5000").unwrap());
        assert!(lookup("r:5000", "a/b", Some(&f)).unwrap().is_none());
        let _ = fs::remove_dir_all(f.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn a_namespace_entry_beats_the_registrys_and_other_keys_survive() {
        let f = tmpfile("ns");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let doc = serde_json::json!({
            "auths": {
                "r:5000": {"auth": b("all:1")},
                "r:5000/team": {"auth": b("team:2")},
            },
            "credsStore": "desktop",
        });
        fs::write(&f, doc.to_string()).unwrap();
        assert_eq!(
            lookup("r:5000", "team/app", Some(&f))
                .unwrap()
                .unwrap()
                .user,
            "team"
        );
        assert_eq!(
            lookup("r:5000", "other/app", Some(&f))
                .unwrap()
                .unwrap()
                .user,
            "all"
        );
        save(&f, "q:1", "u", "p").unwrap();
        let v: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "desktop");
        let _ = fs::remove_dir_all(f.parent().unwrap().parent().unwrap());
    }
}
