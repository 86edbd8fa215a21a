//! `pull`: an image from a registry into the store, as `load` takes one from an archive:
//! manifest, config and every needed layer verified (blob digest and size as it streams,
//! diff ID as it unpacks, each layer unpacked while it arrives), then one locked publish.
//! A failed or killed pull leaves only its temp dir, which the next command sweeps.

use anyhow::{Context, Result};
use oci_client::RegistryOperation;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::arrival::Arrival;
use super::client::{Conn, ConnOpts, Repo};
use super::fetch::{self, Source};
use super::resolve::{self, Platform};
use super::status::{Board, Mode};
use crate::image::archive::load::plan::ImagePlan;
use crate::image::archive::load::unpack::{self, NewLayerDir};
use crate::image::digest::Digest;
use crate::image::images;
use crate::image::publish;
use crate::image::reference::Reference;
use crate::image::store::blobs::TempBlob;
use crate::image::store::{refs, Store};

pub struct PullOpts {
    pub name: String,
    /// None: this machine's.
    pub platform: Option<String>,
    /// Blobs downloaded at once.
    pub jobs: usize,
    pub quiet: bool,
    pub conn: ConnOpts,
}

/// What a pull did.
pub struct Pulled {
    pub name: Reference,
    /// The digest the name resolved to in the registry (docker's `Digest:`).
    pub digest: Digest,
    /// The image ID.
    pub id: Digest,
    /// Whether the store had it all already.
    pub up_to_date: bool,
}

pub fn pull(store: &Store, o: &PullOpts) -> Result<Pulled> {
    let r = Reference::parse(&o.name)?;
    pull_ref(store, o, &r).with_context(|| format!("pull {}", r.full()))
}

fn pull_ref(store: &Store, o: &PullOpts, r: &Reference) -> Result<Pulled> {
    let platform = match &o.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let mode = Mode::pick(o.quiet);
    let mut board = Board::new(mode);
    let what = match (&r.tag, &r.digest) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => String::new(),
    };
    board.line(&format!("{what}: Pulling from {}", r.path));
    let conn = Conn::open(&r.domain, &o.conn)?;
    let repo = conn.repo(&r.path, RegistryOperation::Pull)?;
    let resolved = resolve::resolve(&repo, r, &platform)?;
    let tmp = store.tmpdir()?;
    // A name by digest names no tag: the image arrives untagged, found by its ID.
    let names = if r.digest.is_some() {
        vec![]
    } else {
        vec![r.clone()]
    };
    let plan = resolve::plan(&repo, store, &tmp.path, &resolved, names)?;
    let known = images::layer_blobs(store);
    let needed = unpack::needed(store, &plan, &known);
    let arrivals = arrivals(store, &plan, &needed)?;
    let up_to_date = arrivals.is_empty()
        && !needed.contains(&true)
        && named_already(store, r, &resolved.desc.digest);
    for (l, need) in plan.layers.iter().zip(&needed) {
        board.add(
            &l.blob.digest,
            if *need {
                "Pulling fs layer"
            } else {
                "Already exists"
            },
        );
    }
    let order: Vec<&Arrival> = plan
        .layers
        .iter()
        .filter_map(|l| arrivals.get(&l.blob.digest))
        .fold(Vec::new(), |mut v, a| {
            if !v.iter().any(|x: &&Arrival| x.digest == a.digest) {
                v.push(a);
            }
            v
        });
    for a in order.iter().skip(o.jobs) {
        board.set(&a.digest, "Waiting");
    }
    let (blobs, layers) = transfer(
        store, &tmp.path, &repo, &plan, &known, &arrivals, &order, o.jobs, &board,
    )?;
    board.finish();
    if !up_to_date {
        publish_pull(store, &plan, blobs, layers)?;
    }
    Ok(Pulled {
        name: r.clone(),
        digest: resolved.top,
        id: plan.id().clone(),
        up_to_date,
    })
}

/// An arrival for each distinct blob the unpacker needs and the store lacks.
fn arrivals(store: &Store, plan: &ImagePlan, needed: &[bool]) -> Result<HashMap<Digest, Arrival>> {
    let mut out = HashMap::new();
    for (l, need) in plan.layers.iter().zip(needed) {
        let d = &l.blob.digest;
        if *need && !store.has_blob(d) && !out.contains_key(d) {
            let a = Arrival::new(d.clone(), l.blob.size, l.blob.path.clone())
                .with_context(|| format!("create {}", l.blob.path.display()))?;
            out.insert(d.clone(), a);
        }
    }
    Ok(out)
}

/// Whether the store's `r` is this manifest already.
fn named_already(store: &Store, r: &Reference, manifest: &Digest) -> bool {
    let Ok(idx) = store.load_index() else {
        return false;
    };
    match &r.digest {
        Some(_) => idx.manifests.iter().any(|d| &d.digest == manifest),
        None => idx
            .manifests
            .iter()
            .any(|d| refs::names(d, r) && &d.digest == manifest),
    }
}

/// Downloads and unpacking side by side: each layer unpacks as its blob arrives (once the
/// layer below it is done). The first failure stops both; a download's error is the
/// cause, so it is the one reported.
#[allow(clippy::too_many_arguments)]
fn transfer(
    store: &Store,
    tmp: &std::path::Path,
    repo: &Repo,
    plan: &ImagePlan,
    known: &std::collections::HashSet<(Digest, Digest)>,
    arrivals: &HashMap<Digest, Arrival>,
    order: &[&Arrival],
    jobs: usize,
    board: &Board,
) -> Result<(Vec<TempBlob>, Vec<NewLayerDir>)> {
    let stop = AtomicBool::new(false);
    let source = Source {
        store,
        arrivals,
        board,
        jobs,
    };
    let (fetched, unpacked) = std::thread::scope(|s| {
        let fetcher = s.spawn(|| fetch::fetch_all(repo, order, jobs, board, &stop));
        let unpacked =
            unpack::unpack_with(store, tmp, std::slice::from_ref(plan), known, &source, true);
        if unpacked.is_err() {
            // The downloads give up at their next chunk.
            stop.store(true, Ordering::Relaxed);
        }
        let fetched = fetcher
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a download thread panicked")));
        (fetched, unpacked)
    });
    let blobs = fetched?;
    Ok((blobs, unpacked?))
}

/// The image, its new blobs and layer dirs, made visible in one locked step.
fn publish_pull(
    store: &Store,
    plan: &ImagePlan,
    mut blobs: Vec<TempBlob>,
    layers: Vec<NewLayerDir>,
) -> Result<()> {
    for m in [&plan.config, &plan.manifest] {
        blobs.push(m.temp_blob());
    }
    let refs: Vec<&TempBlob> = blobs.iter().collect();
    let dirs: Vec<_> = layers.into_iter().map(|l| (l.dir, l.info)).collect();
    let entry = publish::Loaded {
        manifest: plan.manifest_desc(),
        id: plan.id(),
        names: &plan.names,
    };
    publish::publish_images(store, &refs, &dirs, &[entry])?;
    Ok(())
}

/// The lines docker ends a pull with.
pub fn report(p: &Pulled, quiet: bool) {
    if !quiet {
        println!("Digest: {}", p.digest);
        let name = p.name.familiar();
        if p.up_to_date {
            println!("Status: Image is up to date for {name}");
        } else {
            println!("Status: Downloaded newer image for {name}");
        }
    }
    println!("{}", p.name.full());
}
