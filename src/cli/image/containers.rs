//! Container verbs: create, run, ps, rm, diff, commit, export.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

use super::format::{ago, table, trunc};
use super::{Ctx, LayerArgs, OutputFormat};
use crate::image::bundle::ProcessOpts;
use crate::image::reference::Reference;
use crate::image::store::containers::Container;
use crate::image::{commit as cmt, container, diff as dif, export as exp};

#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// The container's name (also its ID in the runtime)
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP] (names or numbers, resolved in the image)
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give the container a terminal
    #[arg(short, long)]
    pub tty: bool,
    pub image: String,
    /// The command (replaces the image's Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

impl ProcessArgs {
    fn opts(self) -> Result<container::CreateOpts> {
        for e in &self.env {
            if !e.contains('=') || e.starts_with('=') {
                bail!("-e {e:?}: expected KEY=VALUE");
            }
        }
        Ok(container::CreateOpts {
            image: self.image,
            name: self.name,
            process: ProcessOpts {
                cmd: self.cmd,
                env: self.env,
                workdir: self.workdir,
                user: self.user,
                tty: self.tty,
            },
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub p: ProcessArgs,
}

pub fn create(ctx: &Ctx, a: CreateArgs) -> Result<i32> {
    let named = a.p.name.is_some();
    let c = container::create(&ctx.store, &ctx.rt, &a.p.opts()?)?;
    // stdout is the bundle path alone, for `strata run -b "$(strata-image create …)"`.
    if !named {
        eprintln!("{}", c.name);
    }
    println!("{}", ctx.store.container_dir(&c.id).display());
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub p: ProcessArgs,
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    container::run(&ctx.store, &ctx.rt, &a.p.opts()?, a.rm)
}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Also containers that are not running
    #[arg(short, long)]
    pub all: bool,
    /// Only IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn ps(ctx: &Ctx, a: PsArgs) -> Result<i32> {
    let mut list = vec![];
    for c in ctx.store.containers()? {
        let st = container::status(&ctx.rt, &c)?;
        if a.all || matches!(st.as_str(), "running" | "paused") {
            list.push((c, st));
        }
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for (c, _) in &list {
            writeln!(out, "{}", &c.id[..12])?;
        }
        return Ok(0);
    }
    if a.format == OutputFormat::Json {
        let v: Vec<Value> = list
            .iter()
            .map(|(c, st)| {
                json!({"Id": c.id, "Names": [c.name], "Image": c.image_name, "ImageID": c.image,
                       "Command": c.command, "Created": c.created, "State": st})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|(c, st)| {
            vec![
                c.id[..12].to_string(),
                c.image_name.clone(),
                format!("\"{}\"", trunc(&c.command.join(" "), 20)),
                ago(&c.created),
                st.clone(),
                c.name.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    )?;
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(ctx: &Ctx, a: RmArgs) -> Result<i32> {
    let mut code = 0;
    for n in &a.containers {
        match container::remove(&ctx.store, &ctx.rt, n, a.force) {
            Ok(_) => println!("{n}"),
            Err(e) => {
                eprintln!("strata-image: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    pub container: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<i32> {
    let changes = dif::diff(&ctx.store, &a.container)?;
    let mut out = std::io::stdout().lock();
    if a.format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&changes)?)?;
    } else {
        for c in changes {
            writeln!(out, "{} {}", c.kind, c.path)?;
        }
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    pub container: String,
    /// NAME[:TAG] for the new image (untagged without)
    pub image: Option<String>,
    /// The history entry's comment
    #[arg(short, long)]
    pub message: Option<String>,
    /// The history entry's and config's author
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENV, ...)
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// Pause a running container during the commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    #[command(flatten)]
    pub layer: LayerArgs,
}

pub fn commit(ctx: &Ctx, a: CommitArgs) -> Result<i32> {
    let id = cmt::commit(
        &ctx.store,
        &ctx.rt,
        &cmt::CommitOpts {
            container: a.container,
            name: a.image.as_deref().map(Reference::parse).transpose()?,
            message: a.message,
            author: a.author,
            changes: a.changes,
            pause: a.pause,
            layer: a.layer.opts()?,
        },
    )?;
    println!("{id}");
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    pub container: String,
    /// Write to this file instead of stdout
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> Result<i32> {
    super::archive::write_output(a.output.as_deref(), |w| {
        exp::export(&ctx.store, &ctx.rt, &a.container, w, a.quiet).map(|_| ())
    })?;
    Ok(0)
}

/// `inspect` of a container: docker's shape, with overlay2-style GraphDriver data.
pub fn inspect_container(ctx: &Ctx, c: &Container) -> Result<Value> {
    let dir = ctx.store.container_dir(&c.id);
    let state = ctx.rt.state(&c.name)?;
    let lower: Vec<String> = c
        .layers
        .iter()
        .rev()
        .map(|l| ctx.store.layer_diff(l).to_string_lossy().into_owned())
        .collect();
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Created": c.created,
        "Image": c.image,
        "ImageName": c.image_name,
        "Path": c.command.first(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": container::status(&ctx.rt, c)?,
            "Pid": state.as_ref().map_or(0, |s| s.pid),
            "ExitCode": c.exit_code,
            "FinishedAt": c.finished,
        },
        "Bundle": dir,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            }
        },
    }))
}
