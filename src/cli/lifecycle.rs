//! create, run, kill, delete: flags → library calls.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

use super::Global;
use crate::container::{self, CreateOpts};

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the bundle (config.json and rootfs)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the console's pty master (needs process.terminal)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use move-mount + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach: return once the container runs
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process in the container
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill a running container first
    #[arg(short, long)]
    pub force: bool,
}

fn opts(g: &Global, a: &CreateArgs) -> Result<CreateOpts> {
    if a.console_socket.is_some() {
        bail!("--console-socket: terminals are not supported yet (set process.terminal to false and drop the flag)");
    }
    Ok(CreateOpts {
        root: g.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        systemd_cgroup: g.systemd_cgroup,
        preserve_fds: a.preserve_fds,
        no_new_keyring: a.no_new_keyring,
    })
}

pub fn create(g: &Global, a: CreateArgs) -> Result<i32> {
    container::create(&opts(g, &a)?)?;
    Ok(0)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32> {
    container::run(&opts(g, &a.create)?, a.detach, a.keep)
}

pub fn kill(g: &Global, a: KillArgs) -> Result<i32> {
    let sig = crate::signal::parse(&a.signal)?;
    container::kill(&g.root, &a.id, sig, a.all)?;
    Ok(0)
}

pub fn delete(g: &Global, a: DeleteArgs) -> Result<i32> {
    container::delete(&g.root, &a.id, a.force)?;
    Ok(0)
}
