//! `tag` and `rmi`: names pointing at images, and the removal of an image once it has
//! none left (refused while a container uses it, unless forced).

use anyhow::{bail, Result};

use super::gc;
use super::images;
use super::reference::Reference;
use super::store::refs;
use super::store::Store;

/// `tag SRC DST`.
pub fn tag(store: &Store, src: &str, dst: &str) -> Result<()> {
    let name = Reference::parse(dst)?;
    if name.digest.is_some() {
        bail!("refusing to create a tag with a digest reference: {dst}");
    }
    let img = images::find(store, src)?;
    let l = store.lock()?;
    let mut idx = store.load_index()?;
    refs::set_name(&mut idx, &img.manifest_desc, &name);
    l.save_index(&idx)
}

/// What `rmi` did, in docker's words: `Untagged: NAME`, `Deleted: ID`.
pub fn rmi(store: &Store, key: &str, force: bool) -> Result<Vec<String>> {
    let img = images::find(store, key)?;
    let mut out = vec![];
    let l = store.lock()?;
    let mut idx = store.load_index()?;
    let by_name = Reference::parse(key)
        .ok()
        .filter(|r| idx.manifests.iter().any(|d| refs::names(d, r)));
    let users: Vec<String> = store
        .containers()?
        .into_iter()
        .filter(|c| &c.image == img.id())
        .map(|c| c.name)
        .collect();
    // One of several names: only that name goes, as in docker.
    if let (Some(r), true) = (&by_name, img.names.len() > 1) {
        idx.manifests.retain(|d| !refs::names(d, r));
        l.save_index(&idx)?;
        return Ok(vec![format!("Untagged: {}", r.familiar())]);
    }
    if by_name.is_none() && img.names.len() > 1 && !force {
        bail!(
            "unable to delete {} (must be forced): image is referenced in multiple repositories ({})",
            img.id().short(),
            img.names.join(", ")
        );
    }
    if !users.is_empty() && !force {
        bail!(
            "unable to remove image {} (must be forced): it is used by container{} {}",
            key,
            if users.len() > 1 { "s" } else { "" },
            users.join(", ")
        );
    }
    for n in &img.names {
        out.push(format!("Untagged: {n}"));
    }
    idx.manifests
        .retain(|d| d.digest != img.manifest_desc.digest);
    if !users.is_empty() {
        // Forced while in use: the image stays, nameless, until its containers go.
        refs::add_untagged(&mut idx, &img.manifest_desc);
        l.save_index(&idx)?;
        return Ok(out);
    }
    l.save_index(&idx)?;
    out.push(format!("Deleted: {}", img.id()));
    for freed in gc::collect(&l)?.layers {
        out.push(format!("Deleted: {freed}"));
    }
    Ok(out)
}
