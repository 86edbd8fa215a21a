//! docker's credential helpers: `credsStore` (every registry) or `credHelpers` (one
//! registry) in a credentials file name a program `docker-credential-<name>`, run as
//! docker runs it: `get`, the registry's server URL on stdin, `{"Username","Secret"}` as
//! JSON on stdout.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::io::Write;
use std::process::{Command, Stdio};

use super::hub::{DOCKER_HUB, DOCKER_HUB_KEY, DOCKER_HUB_NAMES};

/// What helpers answer (on stdout, exit 1) for a registry they hold nothing for; docker
/// takes it for "no credentials", not for a failure.
const NOT_FOUND: &str = "credentials not found";

/// The helper `doc` names for `registry`: its own in `credHelpers`, else `credsStore`.
pub fn name_for(doc: &Map<String, Value>, registry: &str) -> Option<String> {
    let own = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter().find_map(|(k, v)| {
                let k = super::hub::registry_name(k);
                let hit = k == registry
                    || (registry == DOCKER_HUB && DOCKER_HUB_NAMES.contains(&k.as_str()));
                hit.then(|| v.as_str().map(str::to_string)).flatten()
            })
        });
    own.or_else(|| {
        doc.get("credsStore")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
    .filter(|n| !n.is_empty())
}

/// The server URL docker gives helpers: docker.io's v1 URL, else the registry's name.
pub fn server_url(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// Whether `get` failed because the helper is not on PATH.
pub fn not_installed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

/// `docker-credential-<name> get` for `registry`: (user, secret), or None when the
/// helper has none for it.
pub fn get(name: &str, registry: &str) -> Result<Option<(String, String)>> {
    let prog = format!("docker-credential-{name}");
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {prog} (the credential helper for {registry})"))?;
    // A helper that exits without reading its stdin is answered by its exit status.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server_url(registry).as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("run {prog}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains(NOT_FOUND) {
            return Ok(None);
        }
        let why = if stdout.trim().is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            stdout.trim().to_string()
        };
        bail!(
            "{prog} get (the credential helper for {registry}) failed ({}): {why}",
            out.status
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow!("{prog} get: not the JSON a credential helper answers: {e}"))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (user, secret) = (field("Username"), field("Secret"));
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some((user, secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_registry_helpers_beat_the_store() {
        let doc: Map<String, Value> = serde_json::from_str(
            r#"{"credsStore": "all", "credHelpers": {"r:5000": "mine", "index.docker.io": "hub"}}"#,
        )
        .unwrap();
        assert_eq!(name_for(&doc, "r:5000").as_deref(), Some("mine"));
        assert_eq!(name_for(&doc, "docker.io").as_deref(), Some("hub"));
        assert_eq!(name_for(&doc, "q:1").as_deref(), Some("all"));
        assert_eq!(name_for(&Map::new(), "q:1"), None);
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("r:5000"), "r:5000");
    }
}
