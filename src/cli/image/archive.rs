//! Archive verbs: save and load.

use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::image::archive::load::{self as load_mod, Input, LoadOpts};
use crate::image::archive::save::{self, Format, SaveOpts};

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file instead of stdout
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// docker-archive (an OCI layout plus docker's manifest.json: everyone reads it) or
    /// oci-archive
    #[arg(long, default_value = "docker-archive")]
    pub format: String,
    /// Write plain tar layers, for consumers that cannot read compressed ones
    #[arg(long)]
    pub uncompressed: bool,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn save(ctx: &Ctx, a: SaveArgs) -> Result<i32> {
    let o = SaveOpts {
        images: a.images,
        format: Format::parse(&a.format)?,
        uncompressed: a.uncompressed,
        quiet: a.quiet,
    };
    write_output(a.output.as_deref(), |w| {
        save::save(&ctx.store, &o, w).map(|_| ())
    })?;
    Ok(0)
}

/// A pipe holds 64 KiB: with 1 MiB writes, we and the reader would take turns. 1 MiB
/// lets both run (export into `| cat` went from ~1.0 s to ~0.7 s for 560 MB).
fn grow_pipe(out: &std::io::Stdout) {
    use std::os::fd::AsRawFd;
    let fd = out.as_raw_fd();
    if crate::paths::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO) {
        unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
    }
}

/// Write a tar to `-o FILE` (a temp file beside it, renamed when whole: never half a tar
/// under its name) or to stdout (refused when it is a terminal).
pub fn write_output<F>(output: Option<&Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let Some(p) = output else {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            bail!("refusing to write a tar to a terminal: use -o FILE or redirect stdout");
        }
        grow_pipe(&stdout);
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        write(&mut w)?;
        w.flush()?;
        return Ok(());
    };
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = p
        .file_name()
        .context("-o: not a file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}", crate::image::store::random_hex(6)));
    let f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let done = write(&mut w).and_then(|_| {
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, p).with_context(|| format!("write {}", p.display()))
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

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
