//! The `strata-image` command line: docker's and podman's verbs and flags, parsed here
//! and handed to `crate::image`.

mod archive;
mod build;
mod containers;
pub mod format;
mod images;
mod registry;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use crate::image::compress::Compression;
use crate::image::layer::Times;
use crate::image::layerblob::{CompressOpts, LayerOpts};
use crate::image::runtime::Runtime;
use crate::image::store::{Store, DEFAULT_ROOT};

/// strata-image: images and containers over the strata runtime.
#[derive(Parser, Debug)]
#[command(name = "strata-image", version, about, long_about = None)]
pub struct Cli {
    /// The image store [default: $STRATA_IMAGE_ROOT, else /var/lib/strata]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// strata's state dir (its --root) for containers [default: $STRATA_RUNTIME_ROOT, else
    /// strata's own default]
    #[arg(long = "runtime-root", global = true)]
    pub runtime_root: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Make a one-layer image from a rootfs directory or a tar (plain, gzip, zstd; - for stdin)
    Import(images::ImportArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Show an image's history, newest first
    History(images::HistoryArgs),
    /// Show an image or a container as JSON
    Inspect(images::InspectArgs),
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove images (untag; delete when no name is left)
    Rmi(images::RmiArgs),
    /// Remove blobs, layers and temp files nothing refers to
    Gc,
    /// Manage the build cache (`builder prune`)
    Builder {
        #[command(subcommand)]
        cmd: build::BuilderCmd,
    },
    /// Write images with all their layers and metadata as one tar
    Save(archive::SaveArgs),
    /// Load images from a docker-archive, an oci-archive or an OCI layout directory
    Load(archive::LoadArgs),
    /// Make a container from an image; prints its bundle path last
    Create(containers::CreateArgs),
    /// Make a container and run it in the foreground (exit code passed through)
    Run(containers::RunArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Remove containers
    Rm(containers::RmArgs),
    /// What a container changed (A/C/D)
    Diff(containers::DiffArgs),
    /// Make an image of a container's changes on top of its image
    Commit(containers::CommitArgs),
    /// Write a container's whole filesystem as one tar
    Export(containers::ExportArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Save credentials for a registry (checked against it first)
    Login(registry::LoginArgs),
    /// Forget the credentials for a registry
    Logout(registry::LogoutArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Layer options shared by `import` and `commit`.
#[derive(clap::Args, Debug, Clone)]
pub struct LayerArgs {
    /// Layer compression: gzip, zstd or none
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// Compression level (gzip 1-9, zstd 1-19)
    #[arg(long)]
    pub level: Option<i32>,
    /// Set every timestamp (files, config, history) to these seconds since the epoch
    /// [SOURCE_DATE_EPOCH clamps file times instead]
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

impl LayerArgs {
    fn opts(&self) -> Result<LayerOpts> {
        let (times, created) = self.times()?;
        Ok(LayerOpts {
            compress: self.compress()?,
            times,
            created,
            quiet: self.quiet,
        })
    }

    fn compress(&self) -> Result<CompressOpts> {
        let c = Compression::parse(&self.compression)?;
        let level = self.level.map(|l| c.check_level(l)).transpose()?;
        Ok(CompressOpts {
            compression: c,
            level,
            threads: crate::image::compress::default_threads(),
        })
    }

    /// (file times, the `created` of config and history).
    fn times(&self) -> Result<(Times, String)> {
        if let Some(t) = self.timestamp {
            return Ok((Times::Set(t), crate::timefmt::format_rfc3339(t, 0)));
        }
        if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) {
            let Some(t) = v.to_str().and_then(|s| s.parse::<i64>().ok()) else {
                bail!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds");
            };
            return Ok((Times::Clamp(t), crate::timefmt::format_rfc3339(t, 0)));
        }
        Ok((Times::Keep, crate::timefmt::now_rfc3339_nanos()))
    }
}

/// What every command gets: the store and the runtime.
pub struct Ctx {
    pub store: Store,
    pub rt: Runtime,
}

/// Run the command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // Credentials only: no store is opened (or made).
    let cmd = match cli.cmd {
        Cmd::Login(a) => return registry::login(a),
        Cmd::Logout(a) => return registry::logout(a),
        cmd => cmd,
    };
    let root = cli
        .root
        .or_else(|| env("STRATA_IMAGE_ROOT"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let ctx = Ctx {
        store: Store::open(&root)?,
        rt: Runtime::locate(cli.runtime_root.or_else(|| env("STRATA_RUNTIME_ROOT"))),
    };
    match cmd {
        Cmd::Build(a) => build::build(&ctx, a),
        Cmd::Import(a) => images::import(&ctx, a),
        Cmd::Images(a) => images::images(&ctx, a),
        Cmd::History(a) => images::history(&ctx, a),
        Cmd::Inspect(a) => images::inspect(&ctx, a),
        Cmd::Tag { source, target } => images::tag(&ctx, &source, &target),
        Cmd::Rmi(a) => images::rmi(&ctx, a),
        Cmd::Gc => images::gc(&ctx),
        Cmd::Builder { cmd } => build::builder(&ctx, cmd),
        Cmd::Save(a) => archive::save(&ctx, a),
        Cmd::Create(a) => containers::create(&ctx, a),
        Cmd::Run(a) => containers::run(&ctx, a),
        Cmd::Ps(a) => containers::ps(&ctx, a),
        Cmd::Rm(a) => containers::rm(&ctx, a),
        Cmd::Diff(a) => containers::diff(&ctx, a),
        Cmd::Commit(a) => containers::commit(&ctx, a),
        Cmd::Export(a) => containers::export(&ctx, a),
        Cmd::Load(a) => archive::load(&ctx, a),
        Cmd::Pull(a) => registry::pull(&ctx, a),
        Cmd::Push(a) => registry::push(&ctx, a),
        Cmd::Login(_) | Cmd::Logout(_) => unreachable!("handled before the store is opened"),
    }
}
