//! Image configs: made for an import, extended by a commit (a layer and its history
//! entry), and changed by docker's `--change` instructions.
//!
//! Kept as JSON values, not typed structs: fields we do not know (docker's Healthcheck,
//! OnBuild, Shell) must survive a commit, as the image spec asks.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::digest::Digest;

/// One `history` entry.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub created: String,
    pub created_by: String,
    pub author: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

impl History {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("created".into(), json!(self.created));
        if !self.created_by.is_empty() {
            m.insert("created_by".into(), json!(self.created_by));
        }
        if let Some(a) = self.author.as_deref().filter(|a| !a.is_empty()) {
            m.insert("author".into(), json!(a));
        }
        if let Some(c) = self.comment.as_deref().filter(|c| !c.is_empty()) {
            m.insert("comment".into(), json!(c));
        }
        if self.empty_layer {
            m.insert("empty_layer".into(), json!(true));
        }
        Value::Object(m)
    }
}

/// The config of an image with no layers yet, for this machine's platform.
pub fn empty(created: &str) -> Value {
    json!({
        "created": created,
        "architecture": goarch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// The platform name the image spec uses (Go's GOARCH values).
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// Append a layer and the history entry that made it.
pub fn add_layer(cfg: &mut Value, diff_id: &Digest, h: &History) {
    cfg["rootfs"]["type"] = json!("layers");
    match cfg["rootfs"]["diff_ids"].as_array_mut() {
        Some(a) => a.push(json!(diff_id)),
        None => cfg["rootfs"]["diff_ids"] = json!([diff_id]),
    }
    add_history(
        cfg,
        &History {
            empty_layer: false,
            ..h.clone()
        },
    );
}

/// Append a history entry.
pub fn add_history(cfg: &mut Value, h: &History) {
    let e = h.to_json();
    match cfg["history"].as_array_mut() {
        Some(a) => a.push(e),
        None => cfg["history"] = json!([e]),
    }
}

/// The `config` object (the container defaults), made if missing.
pub(crate) fn container_config(cfg: &mut Value) -> &mut Map<String, Value> {
    if !cfg["config"].is_object() {
        cfg["config"] = json!({});
    }
    cfg["config"].as_object_mut().expect("just made an object")
}

/// Apply one docker `--change` instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
/// VOLUME, WORKDIR, STOPSIGNAL, ONBUILD) to the image config.
pub fn apply_change(cfg: &mut Value, change: &str) -> Result<()> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(|c: char| c.is_ascii_whitespace())
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((change, ""));
    let what = || format!("--change {change:?}");
    if rest.is_empty() {
        bail!("{}: {word} needs an argument", what());
    }
    let c = container_config(cfg);
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            c.insert("Cmd".into(), json!(command_form(rest).with_context(what)?));
        }
        "ENTRYPOINT" => {
            c.insert("Entrypoint".into(), json!(command_form(rest).with_context(what)?));
        }
        "ENV" => {
            for (k, v) in key_values(rest, true).with_context(what)? {
                set_env(c, &k, &v);
            }
        }
        "LABEL" => {
            let labels = object_at(c, "Labels");
            for (k, v) in key_values(rest, false).with_context(what)? {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = object_at(c, "ExposedPorts");
            for p in rest.split_ascii_whitespace() {
                ports.insert(port(p).with_context(what)?, json!({}));
            }
        }
        "VOLUME" => {
            let list = if rest.starts_with('[') {
                json_strings(rest).with_context(what)?
            } else {
                rest.split_ascii_whitespace().map(String::from).collect()
            };
            let vols = object_at(c, "Volumes");
            for v in list {
                vols.insert(v, json!({}));
            }
        }
        "USER" => {
            c.insert("User".into(), json!(rest));
        }
        "WORKDIR" => {
            let base = c.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
            let dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            c.insert("WorkingDir".into(), json!(dir));
        }
        "STOPSIGNAL" => {
            c.insert("StopSignal".into(), json!(rest));
        }
        "ONBUILD" => match c.get_mut("OnBuild").and_then(Value::as_array_mut) {
            Some(a) => a.push(json!(rest)),
            None => {
                c.insert("OnBuild".into(), json!([rest]));
            }
        },
        other => bail!(
            "{}: unknown instruction {other} (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)",
            what()
        ),
    }
    Ok(())
}

pub(crate) fn object_at<'a>(
    c: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    if !c.get(key).is_some_and(Value::is_object) {
        c.insert(key.into(), json!({}));
    }
    c.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just made an object")
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by /bin/sh -c).
fn command_form(s: &str) -> Result<Vec<String>> {
    if s.starts_with('[') {
        return json_strings(s);
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), s.into()])
}

fn json_strings(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).with_context(|| format!("{s:?} is not a JSON array of strings"))
}

/// `K=V K2="v 2"` pairs; for ENV also the old `K V` form.
fn key_values(s: &str, env: bool) -> Result<Vec<(String, String)>> {
    let words = shell_words(s)?;
    if env && !words[0].contains('=') {
        let (k, v) = s
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((s, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{w:?} is not KEY=VALUE"),
        })
        .collect()
}

// Words split on blanks, with "..." and '...' quoting and \ escapes (Dockerfile style).
fn shell_words(s: &str) -> Result<Vec<String>> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (None, c) if c.is_ascii_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                cur.push(chars.next().unwrap_or('\\'));
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in {s:?}");
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        bail!("nothing to set");
    }
    Ok(words)
}

pub(crate) fn port(p: &str) -> Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok_num = num
        .split_once('-')
        .map_or(vec![num], |(a, b)| vec![a, b])
        .iter()
        .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
    if !ok_num || !matches!(proto, "tcp" | "udp" | "sctp") {
        bail!("invalid port {p:?} (PORT[/tcp|udp|sctp])");
    }
    Ok(format!("{num}/{proto}"))
}

pub(crate) fn set_env(c: &mut Map<String, Value>, k: &str, v: &str) {
    let entry = json!(format!("{k}={v}"));
    let list = match c.get_mut("Env").and_then(Value::as_array_mut) {
        Some(l) => l,
        None => {
            c.insert("Env".into(), json!([]));
            c.get_mut("Env")
                .and_then(Value::as_array_mut)
                .expect("just made")
        }
    };
    let prefix = format!("{k}=");
    match list
        .iter_mut()
        .find(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix)))
    {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
}

/// The history line for a metadata-only change, in the classic builder's form.
pub fn change_history(change: &str, created: &str) -> History {
    History {
        created: created.to_string(),
        created_by: format!("/bin/sh -c #(nop) {}", change.trim()),
        empty_layer: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_what_docker_sets() {
        let mut c = empty("2024-01-01T00:00:00Z");
        for ch in [
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/app --flag",
            "ENV A=1 B=\"two words\"",
            "ENV C three four",
            "ENV A=9",
            "LABEL maintainer=me version=1.0",
            "EXPOSE 80 53/udp 8000-8010",
            "VOLUME /data /cache",
            "USER 1000:1000",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGINT",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        let k = &c["config"];
        assert_eq!(k["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(k["Entrypoint"], json!(["/bin/sh", "-c", "/bin/app --flag"]));
        assert_eq!(k["Env"], json!(["A=9", "B=two words", "C=three four"]));
        assert_eq!(k["Labels"], json!({"maintainer": "me", "version": "1.0"}));
        assert_eq!(
            k["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000-8010/tcp": {}})
        );
        assert_eq!(k["Volumes"], json!({"/data": {}, "/cache": {}}));
        assert_eq!(k["User"], "1000:1000");
        assert_eq!(k["WorkingDir"], "/srv/app");
        assert_eq!(k["StopSignal"], "SIGINT");
    }

    #[test]
    fn bad_changes_name_the_problem() {
        let mut c = empty("x");
        for (ch, want) in [
            ("FROB x", "unknown instruction FROB"),
            ("CMD", "needs an argument"),
            ("CMD [\"a\",", "not a JSON array"),
            ("EXPOSE 99999", "invalid port"),
            ("ENV A=\"x", "unterminated quote"),
            ("LABEL novalue", "not KEY=VALUE"),
        ] {
            let e = format!("{:#}", apply_change(&mut c, ch).unwrap_err());
            assert!(e.contains(want), "{ch}: {e}");
        }
    }

    #[test]
    fn unknown_fields_survive() {
        let mut c: Value = serde_json::from_str(
            r#"{"config":{"Healthcheck":{"Test":["CMD","true"]}},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}"#,
        )
        .unwrap();
        apply_change(&mut c, "USER x").unwrap();
        add_layer(&mut c, &Digest::of(b"t"), &History::default());
        assert_eq!(c["config"]["Healthcheck"]["Test"], json!(["CMD", "true"]));
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        assert_eq!(c["history"].as_array().unwrap().len(), 1);
    }
}
