//! Archive verbs: `load` (and `save` beside it).

use anyhow::Result;
use std::path::PathBuf;

use super::Ctx;
use crate::image::archive::load::{self as load_mod, Input, LoadOpts};

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Read a tar archive (docker-archive or oci-archive; plain, gzip or zstd) or an OCI
    /// layout directory instead of stdin
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn load(ctx: &Ctx, a: LoadArgs) -> Result<i32> {
    let loaded = load_mod::load(
        &ctx.store,
        &LoadOpts {
            input: Input::from_arg(a.input.as_deref()),
            quiet: a.quiet,
        },
    )?;
    // docker's lines, so scripts that parse `docker load` read ours.
    for img in &loaded {
        for (name, old) in &img.replaced {
            println!(
                "The image {} already exists, renaming the old one with ID {old} to empty string",
                name.familiar()
            );
        }
        if img.names.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for n in &img.names {
            println!("Loaded image: {}", n.familiar());
        }
    }
    Ok(0)
}
