//! A stage's variables: the ARGs it declared (with their build-arg or default values) and
//! the image's ENV, which wins over an ARG of the same name, as in docker.

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

use super::dockerfile::expand;

/// The ARGs a stage declared, in order, with their values (None: declared without a
/// default and not given with --build-arg: unset, but still listed in RUN's history).
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub declared: Vec<(String, Option<String>)>,
}

impl Args {
    pub fn set(&mut self, k: &str, v: Option<String>) {
        match self.declared.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.or(e.1.take()),
            None => self.declared.push((k.to_string(), v)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.declared
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_deref())
    }

    /// `K=V` of those with a value (RUN's environment).
    pub fn values(&self) -> Vec<(String, String)> {
        self.declared
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect()
    }

    /// Every declared one, unset as empty (BuildKit's `|N K=V` prefix of RUN).
    pub fn listed(&self) -> Vec<(String, String)> {
        self.declared
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect()
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
        Ok(expand::expand_word(word, &|k| self.lookup(k), escape)?)
    }

    /// A heredoc body with expansion on: `$` forms and `\` escapes only.
    pub fn expand_heredoc(&self, body: &str) -> Result<String> {
        Ok(expand::expand_heredoc(body, &|k| self.lookup(k))?)
    }
}
