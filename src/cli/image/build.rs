//! `build`: docker's and podman's flags, handed to `crate::image::build`.

use anyhow::{bail, Result};
use std::path::PathBuf;

use super::{Ctx, LayerArgs};
use crate::image::build::{self, BuildOpts};
use crate::image::reference::Reference;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The Dockerfile [default: CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// NAME[:TAG] for the image (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// KEY=VALUE for an ARG (repeatable); KEY alone takes $KEY from the environment
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build this stage (and the stages it needs) only
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step again instead of taking it from the cache
    #[arg(long)]
    pub no_cache: bool,
    /// RUN's network: none (the default: a loopback of its own) or host
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Accepted for buildah compatibility: every step that changes files is a layer
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub layers: Option<bool>,
    #[command(flatten)]
    pub layer: LayerArgs,
    /// The build context directory
    pub context: PathBuf,
}

pub fn build(ctx: &Ctx, a: BuildArgs) -> Result<i32> {
    let tags = a
        .tags
        .iter()
        .map(|t| Reference::parse(t))
        .collect::<Result<Vec<_>>>()?;
    let mut build_args = vec![];
    for kv in &a.build_args {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => build_args.push((k.to_string(), v.to_string())),
            None if !kv.is_empty() => {
                if let Ok(v) = std::env::var(kv) {
                    build_args.push((kv.clone(), v));
                }
            }
            _ => bail!("--build-arg {kv:?}: expected KEY=VALUE"),
        }
    }
    let network_host = match a.network.as_str() {
        "none" | "default" => false,
        "host" => true,
        other => bail!("--network {other:?}: only none and host are supported"),
    };
    let o = BuildOpts {
        context: a.context,
        dockerfile: a.file,
        tags,
        build_args,
        target: a.target,
        no_cache: a.no_cache,
        network_host,
        quiet: a.layer.quiet,
        layer: a.layer.opts()?,
    };
    let built = build::build(&ctx.store, &ctx.rt, &o)?;
    println!("{}", built.id);
    Ok(0)
}

#[derive(clap::Subcommand, Debug)]
pub enum BuilderCmd {
    /// Remove build cache: the steps whose layers no image uses (with -a, all of it),
    /// then the layers and blobs nothing else needs
    Prune {
        /// Remove all build cache, not only what no image uses
        #[arg(short, long)]
        all: bool,
        /// Do not prompt (there is no prompt; accepted for docker compatibility)
        #[arg(short, long)]
        force: bool,
    },
}

pub fn builder(ctx: &Ctx, cmd: BuilderCmd) -> Result<i32> {
    let BuilderCmd::Prune { all, force: _ } = cmd;
    let l = ctx.store.lock()?;
    let dropped = crate::image::build::cache::prune(&l, all)?;
    let freed = crate::image::gc::collect(&l)?;
    if !dropped.is_empty() {
        println!("Deleted build cache objects:");
        for k in &dropped {
            println!("{}", &k.hex()[..25]);
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        super::format::size(freed.bytes)
    );
    Ok(0)
}
