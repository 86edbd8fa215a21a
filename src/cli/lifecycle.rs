//! create, run, exec, kill, delete: flags → library calls.

use anyhow::Result;
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
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (not with --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json to run (all other process flags are ignored)
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the pty master (with --tty)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set an environment variable (repeatable)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group id (repeatable)
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets (repeatable)
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Detach: return once the process runs
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass N extra fds (3..3+N) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
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

/// Socket activation: systemd's `LISTEN_FDS` fds (from 3) are passed on, like runc.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn opts(g: &Global, a: &CreateArgs) -> Result<CreateOpts> {
    Ok(CreateOpts {
        root: g.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        systemd_cgroup: g.systemd_cgroup,
        preserve_fds: listen_fds() + a.preserve_fds,
        listen_fds: listen_fds(),
        no_new_keyring: a.no_new_keyring,
        console_socket: a.console_socket.clone(),
        foreground: false,
        start_now: false,
    })
}

pub fn create(g: &Global, a: CreateArgs) -> Result<i32> {
    container::create(&opts(g, &a)?)?;
    Ok(0)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32> {
    let mut o = opts(g, &a.create)?;
    o.foreground = !a.detach;
    o.start_now = true;
    container::run(&o, a.detach, a.keep)
}

pub fn exec(g: &Global, a: ExecArgs) -> Result<i32> {
    container::exec(&container::ExecOpts {
        root: g.root.clone(),
        id: a.id,
        process: a.process,
        args: a.command,
        tty: a.tty,
        console_socket: a.console_socket,
        cwd: a.cwd,
        env: a.env,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
    })
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
