//! Containers of the store: `create` (a bundle over the image's layers and a fresh upper
//! dir), `run` (create, then `strata run`), `rm`, and their status as the runtime sees it.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs;

use super::bundle::{self, Layers, ProcessOpts};
use super::images::{self, Image};
use super::runtime::Runtime;
use super::store::containers::{write_record, Container};
use super::store::layers::chain_ids;
use super::store::{random_hex, Store};

pub struct CreateOpts {
    pub image: String,
    pub name: Option<String>,
    pub process: ProcessOpts,
}

/// Make a container; returns it (its bundle is `store.container_dir(&c.id)`).
pub fn create(store: &Store, rt: &Runtime, o: &CreateOpts) -> Result<Container> {
    if let Some(n) = &o.name {
        check_name(n)?;
    }
    let img = images::find(store, &o.image)?;
    let diff_ids = img.diff_ids()?;
    let mut lowers = store.ensure_layers(&diff_ids, &img.manifest.layers)?;
    lowers.reverse();
    let id = random_hex(32);
    let name = o.name.clone().unwrap_or_else(|| id[..12].to_string());
    let tmp = store.tmpdir()?;
    let dir = tmp.path.join("container");
    fs::create_dir(&dir)?;
    for d in ["rootfs", "upper", "work"] {
        fs::create_dir(dir.join(d))?;
    }
    rt.spec(&dir)?;
    let cfg_path = dir.join("config.json");
    let mut spec: Value = serde_json::from_slice(&fs::read(&cfg_path)?)
        .context("strata spec wrote an unreadable config.json")?;
    bundle::configure(
        &mut spec,
        &img.config,
        &o.process,
        &Layers { lowers },
        &name[..name.len().min(63)],
    )?;
    // The runtime ID is the name, which another store (or strata root) may use too; the
    // cgroup is named after the ID, unique everywhere, as docker's /docker/<id>.
    spec["linux"]["cgroupsPath"] = format!("/strata-image/{id}").into();
    let annotations = spec["annotations"]
        .as_object_mut()
        .expect("configure made it");
    annotations.insert(bundle::ANN_IMAGE_ID.into(), img.id().to_string().into());
    annotations.insert(bundle::ANN_IMAGE_NAME.into(), o.image.clone().into());
    fs::write(&cfg_path, serde_json::to_vec_pretty(&spec)?)?;
    let c = Container {
        id: id.clone(),
        name,
        image: img.id().clone(),
        image_name: display_name(&img, &o.image),
        created: crate::timefmt::now_rfc3339_nanos(),
        command: bundle::args(&img.config, &o.process.cmd)?,
        layers: chain_ids(&diff_ids),
        exit_code: None,
        finished: None,
    };
    write_record(&dir, &c)?;
    let l = store.lock()?;
    if store.containers()?.iter().any(|x| x.name == c.name) {
        bail!("the container name {:?} is already in use", c.name);
    }
    // Under the lock, so a concurrent rmi/gc cannot have taken a layer since ensure_layers.
    for chain in &c.layers {
        if store.layer_info(chain).is_none() {
            bail!("layer {chain} of image {} was removed meanwhile", o.image);
        }
    }
    fs::rename(&dir, store.container_dir(&id)).context("publish the container")?;
    super::store::fsync_dir(&store.containers_dir())?;
    drop(l);
    Ok(c)
}

fn display_name(img: &Image, asked: &str) -> String {
    match super::reference::Reference::parse(asked) {
        Ok(r) if img.names.contains(&r.familiar()) => r.familiar(),
        _ => img.id().short().to_string(),
    }
}

/// docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; also a valid runtime ID.
pub fn check_name(n: &str) -> Result<()> {
    let b = n.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        bail!("invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, 2 to 128 characters");
    }
    Ok(())
}

/// The status line of a container: the runtime's state, else what `run` recorded.
pub fn status(rt: &Runtime, c: &Container) -> Result<String> {
    Ok(match rt.state(&c.name)? {
        Some(s) => s.status,
        None => match c.exit_code {
            Some(code) => format!("exited ({code})"),
            None => "created".into(),
        },
    })
}

/// `run`: create, then `strata run` in the foreground; returns the exit code.
pub fn run(store: &Store, rt: &Runtime, o: &CreateOpts, rm: bool) -> Result<i32> {
    let c = create(store, rt, o)?;
    let bundle = store.container_dir(&c.id);
    let code = rt.run(&bundle, &c.name);
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            if rm {
                let _ = remove(store, rt, &c.id, true);
            }
            return Err(e);
        }
    };
    if rm {
        remove(store, rt, &c.id, true)?;
    } else {
        let l = store.lock()?;
        // It may have been removed by someone else meanwhile: then there is nothing to note.
        if let Ok(mut now) = store.container(&c.id) {
            now.exit_code = Some(code);
            now.finished = Some(crate::timefmt::now_rfc3339_nanos());
            l.save_container(&now)?;
        }
    }
    Ok(code)
}

/// `rm`: the container's runtime state (refused while it runs unless `force`), then its
/// bundle and read-write layer.
pub fn remove(store: &Store, rt: &Runtime, key: &str, force: bool) -> Result<Container> {
    let c = store.container(key)?;
    if let Some(st) = rt.state(&c.name)? {
        let live = matches!(st.status.as_str(), "running" | "paused");
        if live && !force {
            bail!(
                "cannot remove container {}: it is {} (stop it first, or use rm -f)",
                c.name,
                st.status
            );
        }
        rt.delete(&c.name, force)?;
    }
    let l = store.lock()?;
    l.trash(&store.container_dir(&c.id))?;
    Ok(c)
}
