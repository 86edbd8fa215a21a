//! docker's archive files: `manifest.json` (one entry per image: config, tags, layer
//! files) and `repositories` (repository → tag → top layer ID).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The file names docker reads at the top of an archive.
pub const MANIFEST_JSON: &str = "manifest.json";
pub const REPOSITORIES: &str = "repositories";

/// One entry of `manifest.json`. Paths are relative to the archive's root.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    /// The config file (`<hex>.json` in the legacy layout, `blobs/sha256/<hex>` since 25).
    pub config: String,
    /// `repo:tag` names; null or absent for an untagged image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_tags: Option<Vec<String>>,
    /// Layer files, bottom first (`<v1 id>/layer.tar`, or `blobs/sha256/<hex>`).
    pub layers: Vec<String>,
    /// Fields we do not use (Parent, LayerSources), kept when read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `repositories`: repository → tag → ID.
pub type Repositories = BTreeMap<String, BTreeMap<String, String>>;
