//! A stage's variables: the ARGs it declared (with their build-arg or default values) and
//! the image's ENV, which wins over an ARG of the same name, as in docker.

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

/// The ARG values a stage sees, in declaration order.
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub declared: Vec<(String, String)>,
}

impl Args {
    pub fn set(&mut self, k: &str, v: String) {
        match self.declared.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.declared.push((k.to_string(), v)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.declared
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// The image config's `Env` as a map.
pub fn env_of(config: &Value) -> BTreeMap<String, String> {
    config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `$NAME` means at a step: ENV, else a declared ARG.
pub struct Scope<'a> {
    pub env: BTreeMap<String, String>,
    pub args: &'a Args,
}

impl<'a> Scope<'a> {
    pub fn new(config: &Value, args: &'a Args) -> Scope<'a> {
        Scope {
            env: env_of(config),
            args,
        }
    }

    pub fn lookup(&self, k: &str) -> Option<String> {
        self.env
            .get(k)
            .cloned()
            .or_else(|| self.args.get(k).map(String::from))
    }

    /// One word expanded as docker expands instruction arguments.
    pub fn expand(&self, word: &str, escape: char) -> Result<String> {
        expand::expand_word(word, escape, &|k| self.lookup(k))
    }
}

// Until the Dockerfile front end's expander is merged: `$A`, `${A}`, `${A:-w}`, `${A:+w}`,
// and the escape character before `$`.
mod expand {
    use anyhow::{bail, Result};

    pub fn expand_word(
        word: &str,
        escape: char,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String> {
        let mut out = String::new();
        let cs: Vec<char> = word.chars().collect();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            if c == escape && cs.get(i + 1) == Some(&'$') {
                out.push('$');
                i += 2;
                continue;
            }
            if c != '$' {
                out.push(c);
                i += 1;
                continue;
            }
            if cs.get(i + 1) == Some(&'{') {
                let Some(end) = cs[i..].iter().position(|c| *c == '}') else {
                    bail!("missing '}}' in {word:?}");
                };
                let inner: String = cs[i + 2..i + end].iter().collect();
                let (name, op) = match inner.find(':') {
                    Some(p) => (&inner[..p], Some(&inner[p..])),
                    None => (&inner[..], None),
                };
                let v = lookup(name);
                out.push_str(&match op {
                    None => v.unwrap_or_default(),
                    Some(o) if o.starts_with(":-") => {
                        v.filter(|v| !v.is_empty()).unwrap_or(o[2..].to_string())
                    }
                    Some(o) if o.starts_with(":+") => v
                        .filter(|v| !v.is_empty())
                        .map(|_| o[2..].to_string())
                        .unwrap_or_default(),
                    Some(o) => bail!("unsupported modifier {o:?} in {word:?}"),
                });
                i += end + 1;
                continue;
            }
            let n = cs[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            if n == 0 {
                out.push('$');
                i += 1;
                continue;
            }
            let name: String = cs[i + 1..i + 1 + n].iter().collect();
            out.push_str(&lookup(&name).unwrap_or_default());
            i += 1 + n;
        }
        Ok(out)
    }
}
