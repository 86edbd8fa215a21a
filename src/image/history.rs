//! `history`: an image's config history, newest first, each row with the image it is the
//! top of when that image is still here (else `<missing>`, as docker shows it).

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::images::{self, Image};
use super::publish::parent_of;
use super::store::layers::chain_ids;
use super::store::Store;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The image whose newest entry this is, or "<missing>".
    pub id: String,
    pub created: String,
    pub created_by: String,
    /// Uncompressed bytes of the layer this entry made (0 for metadata-only entries).
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

pub fn history(store: &Store, key: &str) -> Result<Vec<Row>> {
    let img = images::find(store, key)?;
    let all = images::list(store)?;
    let chains = chain_ids(&img.diff_ids()?);
    let entries: Vec<Value> = img.config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(entries.len());
    let mut layer = 0;
    for e in &entries {
        let empty = e["empty_layer"] == Value::Bool(true);
        let size = if empty {
            0
        } else {
            let s = chains
                .get(layer)
                .and_then(|c| store.layer_info(c))
                .map_or_else(
                    || img.manifest.layers.get(layer).map_or(0, |l| l.size),
                    |i| i.size,
                );
            layer += 1;
            s
        };
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        rows.push(Row {
            id: "<missing>".into(),
            created: text("created"),
            created_by: text("created_by"),
            size,
            comment: text("comment"),
            empty_layer: empty,
        });
    }
    name_rows(store, &img, &all, &mut rows);
    rows.reverse();
    Ok(rows)
}

// The image itself owns the newest entry; each local parent owns the entry where its
// own history ends. The chain stops at the first parent that is gone.
fn name_rows(store: &Store, img: &Image, all: &[Image], rows: &mut [Row]) {
    let mut cur = Some(img.clone());
    let mut above = rows.len() + 1;
    while let Some(i) = cur {
        let n = i.config["history"].as_array().map_or(0, Vec::len);
        // Each parent is strictly older: anything else is not a parent we can place.
        if n == 0 || n >= above {
            break;
        }
        above = n;
        rows[n - 1].id = i.id().to_string();
        cur = parent_of(store, i.id()).and_then(|p| all.iter().find(|x| x.id() == &p).cloned());
    }
}
