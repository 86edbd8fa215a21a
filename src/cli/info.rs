//! state, list, spec, features: read-only commands and their output formats.

use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::Global;
use crate::container::{list::list as list_all, oci_state, status};
use crate::state::StateDir;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Where to write config.json
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

pub fn state(g: &Global, id: &str) -> Result<i32> {
    let sd = StateDir::open_unlocked(&g.root, id)?;
    let st = sd.load()?;
    let s = oci_state(&st, status(&st, &sd));
    super::print(serde_json::to_string_pretty(&s)?)?;
    Ok(0)
}

pub fn list(g: &Global, a: ListArgs) -> Result<i32> {
    let all = list_all(&g.root)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for s in &all {
            writeln!(out, "{}", s.id)?;
        }
    } else if a.format == "json" {
        writeln!(out, "{}", serde_json::to_string(&all)?)?;
    } else {
        let w = all.iter().map(|s| s.id.len()).max().unwrap_or(0).max(2) + 4;
        writeln!(
            out,
            "{:<w$}{:<10}{:<10}{:<40}{:<32}OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        )?;
        for s in &all {
            let owner = if s.owner.is_empty() { "root" } else { &s.owner };
            writeln!(
                out,
                "{:<w$}{:<10}{:<10}{:<40}{:<32}{}",
                s.id,
                s.pid,
                s.status,
                s.bundle.display(),
                s.created,
                owner
            )?;
        }
    }
    Ok(0)
}

pub fn spec(a: SpecArgs) -> Result<i32> {
    crate::spec::write_default(&a.bundle, a.rootless)?;
    Ok(0)
}

pub fn features() -> Result<i32> {
    super::print(serde_json::to_string_pretty(&crate::features::features())?)?;
    Ok(0)
}
