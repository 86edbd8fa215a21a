//! Image verbs: import, images, history, inspect, tag, rmi, gc.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::io::Write;

use super::format::{ago, cell, size, table, trunc};
use super::{Ctx, LayerArgs, OutputFormat};
use crate::image::images::{self, Image};
use crate::image::reference::Reference;
use crate::image::store::layers::chain_ids;
use crate::image::{gc as gc_mod, history as hist, import as imp, names};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A rootfs directory, a tar file (plain, gzip or zstd), or - for stdin
    pub source: String,
    /// NAME[:TAG] for the new image (untagged without)
    pub name: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENV, ...)
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// The history entry's comment
    #[arg(short, long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub layer: LayerArgs,
}

pub fn import(ctx: &Ctx, a: ImportArgs) -> Result<i32> {
    let name = a.name.as_deref().map(Reference::parse).transpose()?;
    let id = imp::import(
        &ctx.store,
        &imp::ImportOpts {
            source: a.source,
            name,
            changes: a.changes,
            message: a.message,
            layer: a.layer.opts()?,
        },
    )?;
    println!("{id}");
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Also list every layer
    #[arg(short, long)]
    pub all: bool,
    /// Only image IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

fn repo_tag(name: &str) -> (String, String) {
    match Reference::parse(name) {
        Ok(r) => (
            r.familiar_repository(),
            r.tag.unwrap_or_else(|| "<none>".into()),
        ),
        Err(_) => (name.to_string(), "<none>".into()),
    }
}

pub fn images(ctx: &Ctx, a: ImagesArgs) -> Result<i32> {
    let all = images::list(&ctx.store)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for i in &all {
            writeln!(out, "{}", i.id().short())?;
        }
        return Ok(0);
    }
    if a.format == OutputFormat::Json {
        let mut v: Vec<Value> = all.iter().map(|i| image_summary(ctx, i)).collect();
        if a.all {
            v.extend(layer_rows(ctx, &all)?);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    let mut rows = vec![];
    for i in &all {
        let names = if i.names.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            i.names.clone()
        };
        for n in names {
            let (repo, tag) = if n == "<none>:<none>" {
                ("<none>".into(), "<none>".into())
            } else {
                repo_tag(&n)
            };
            rows.push(vec![
                repo,
                tag,
                i.id().short().to_string(),
                i.created().map(ago).unwrap_or_default(),
                size(i.size(&ctx.store)),
            ]);
        }
    }
    table(
        &mut out,
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        &rows,
    )?;
    if a.all {
        let layers: Vec<Vec<String>> = layer_rows(ctx, &all)?
            .iter()
            .map(|l| {
                vec![
                    l["ChainID"].as_str().unwrap_or_default()[7..19].to_string(),
                    l["DiffID"].as_str().unwrap_or_default()[7..19].to_string(),
                    size(l["Size"].as_u64().unwrap_or(0)),
                    l["UsedBy"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect();
        writeln!(out)?;
        table(&mut out, &["LAYER", "DIFF ID", "SIZE", "USED BY"], &layers)?;
    }
    Ok(0)
}

fn image_summary(ctx: &Ctx, i: &Image) -> Value {
    json!({
        "Id": i.id(),
        "RepoTags": i.names,
        "Created": i.created(),
        "Size": i.size(&ctx.store),
        "Digest": i.manifest_desc.digest,
    })
}

// Every layer dir, with the images that use it (by name, else short ID).
fn layer_rows(ctx: &Ctx, all: &[Image]) -> Result<Vec<Value>> {
    let mut v = vec![];
    for chain in ctx.store.layer_chains()? {
        let Some(info) = ctx.store.layer_info(&chain) else {
            continue;
        };
        let users: Vec<String> = all
            .iter()
            .filter(|i| {
                i.diff_ids()
                    .map(|d| chain_ids(&d).contains(&chain))
                    .unwrap_or(false)
            })
            .map(|i| {
                i.names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| i.id().short().to_string())
            })
            .collect();
        v.push(json!({
            "ChainID": chain,
            "DiffID": info.diff_id,
            "Parent": info.parent,
            "Size": info.size,
            "UsedBy": users,
        }));
    }
    Ok(v)
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    pub image: String,
    /// Do not cut long CREATED BY lines
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn history(ctx: &Ctx, a: HistoryArgs) -> Result<i32> {
    let rows = hist::history(&ctx.store, &a.image)?;
    let mut out = std::io::stdout().lock();
    if a.format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let id = if r.id == "<missing>" || a.no_trunc {
                r.id.clone()
            } else {
                r.id[7..19].to_string()
            };
            let by = if a.no_trunc {
                cell(&r.created_by)
            } else {
                trunc(&r.created_by, 45)
            };
            vec![id, ago(&r.created), by, size(r.size), cell(&r.comment)]
        })
        .collect();
    table(
        &mut out,
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &cells,
    )?;
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Images or containers (a container's name wins over an image's)
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Only look among images or containers
    #[arg(long = "type", value_parser = ["image", "container"])]
    pub kind: Option<String>,
}

pub fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<i32> {
    let mut v = vec![];
    for n in &a.names {
        let as_container = a.kind.as_deref() != Some("image");
        let as_image = a.kind.as_deref() != Some("container");
        if as_container {
            if let Ok(c) = ctx.store.container(n) {
                v.push(super::containers::inspect_container(ctx, &c)?);
                continue;
            }
        }
        if as_image {
            match images::find(&ctx.store, n) {
                Ok(i) => {
                    v.push(inspect_image(ctx, &i)?);
                    continue;
                }
                Err(e) if !as_container => return Err(e),
                Err(_) => {}
            }
        }
        bail!("no such object: {n}");
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

fn inspect_image(ctx: &Ctx, i: &Image) -> Result<Value> {
    let diff_ids = i.diff_ids()?;
    let chains = chain_ids(&diff_ids);
    let layers: Vec<Value> = i
        .manifest
        .layers
        .iter()
        .zip(diff_ids.iter().zip(&chains))
        .map(|(desc, (diff, chain))| {
            json!({
                "Digest": desc.digest,
                "MediaType": desc.media_type,
                "Size": desc.size,
                "DiffID": diff,
                "ChainID": chain,
                "UncompressedSize": ctx.store.layer_info(chain).map(|l| l.size),
                "Dir": ctx.store.layer_diff(chain),
            })
        })
        .collect();
    let c = &i.config;
    Ok(json!({
        "Id": i.id(),
        "RepoTags": i.names,
        "Parent": crate::image::publish::parent_of(&ctx.store, i.id()),
        "Created": c["created"],
        "Author": c["author"],
        "Architecture": c["architecture"],
        "Os": c["os"],
        "Config": c["config"],
        "RootFS": {"Type": "layers", "Layers": diff_ids},
        "Size": i.size(&ctx.store),
        "Manifest": {
            "Digest": i.manifest_desc.digest,
            "MediaType": i.manifest_desc.media_type,
            "Size": i.manifest_desc.size,
        },
        "Layers": layers,
        "History": c["history"],
    }))
}

pub fn tag(ctx: &Ctx, source: &str, target: &str) -> Result<i32> {
    names::tag(&ctx.store, source, target)?;
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Remove even if a container uses it or it has several names
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<i32> {
    let mut code = 0;
    for i in &a.images {
        match names::rmi(&ctx.store, i, a.force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("strata-image: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn gc(ctx: &Ctx) -> Result<i32> {
    let l = ctx.store.lock()?;
    let f = gc_mod::collect(&l)?;
    for b in &f.blobs {
        println!("deleted blob {b}");
    }
    for c in &f.layers {
        println!("deleted layer {c}");
    }
    if f.tmp > 0 {
        println!("deleted {} temp entries", f.tmp);
    }
    println!("Total reclaimed space: {}", size(f.bytes));
    Ok(0)
}
