//! Container records: one dir per container (its bundle, upper and work dirs) and the
//! `container.json` that says which image and layers it was made from.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

use super::{write_atomic, Locked, Store};
use crate::image::digest::Digest;

const RECORD: &str = "container.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits, as docker's container IDs.
    pub id: String,
    /// Unique in the store; also the container's ID in the runtime (`strata state NAME`).
    pub name: String,
    /// The image ID (config digest) it was made from.
    pub image: Digest,
    /// The image as the user named it.
    pub image_name: String,
    pub created: String,
    pub command: Vec<String>,
    /// Chain IDs of its lower layers, bottom first (they stay while it exists).
    pub layers: Vec<Digest>,
    /// Set by `run` when the container ended in its hands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl Store {
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut v = vec![];
        for e in fs::read_dir(self.containers_dir())? {
            let p = e?.path().join(RECORD);
            let Ok(b) = fs::read(&p) else { continue };
            let c: Container =
                serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display()))?;
            v.push(c);
        }
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(v)
    }

    /// A container by name, full ID or unique ID prefix (names win, as in docker).
    pub fn container(&self, key: &str) -> Result<Container> {
        let all = self.containers()?;
        if let Some(c) = all.iter().find(|c| c.name == key || c.id == key) {
            return Ok(c.clone());
        }
        let hits: Vec<&Container> = if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit())
        {
            all.iter().filter(|c| c.id.starts_with(key)).collect()
        } else {
            vec![]
        };
        match hits.as_slice() {
            [c] => Ok((*c).clone()),
            [] => bail!("no such container: {key}"),
            _ => bail!(
                "container ID prefix {key:?} is ambiguous: it matches {} containers",
                hits.len()
            ),
        }
    }
}

impl Locked<'_> {
    pub fn save_container(&self, c: &Container) -> Result<()> {
        write_atomic(
            &self.store.tmp_root(),
            &self.store.container_dir(&c.id).join(RECORD),
            &serde_json::to_vec_pretty(c)?,
        )
    }
}

/// Write a record into a container dir that is still being made (not yet published).
pub fn write_record(dir: &std::path::Path, c: &Container) -> Result<()> {
    fs::write(dir.join(RECORD), serde_json::to_vec_pretty(c)?)
        .with_context(|| format!("write {}", dir.join(RECORD).display()))
}
