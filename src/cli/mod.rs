//! The `strata` command line: runc's commands and flags, parsed here and handed to the
//! library. Nothing in this module touches the kernel.

mod cgroup;
pub mod image;
mod info;
mod lifecycle;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::logging::LogFormat;

/// strata: a runc-compatible OCI container runtime.
#[derive(Parser, Debug)]
#[command(name = "strata", version = VERSION, disable_version_flag = true, about, long_about = None)]
pub struct Cli {
    /// Root directory for container state [default: /run/strata; rootless:
    /// $XDG_RUNTIME_DIR/strata]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Write log lines to this file (default: stderr, only with --debug)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log line format
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug information
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use the systemd cgroup driver (not supported: no systemd here)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0");

/// Subcommands, as in runc.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container (its program waits until `start`)
    Create(lifecycle::CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Create and start a container
    Run(lifecycle::RunArgs),
    /// Run a process in a running container
    Exec(lifecycle::ExecArgs),
    /// Print a container's state as JSON
    State { id: String },
    /// List containers
    List(info::ListArgs),
    /// Send a signal to a container's init (or to all its processes)
    Kill(lifecycle::KillArgs),
    /// Delete a container and everything it holds on the host
    Delete(lifecycle::DeleteArgs),
    /// Write a default config.json
    Spec(info::SpecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List a container's processes
    Ps(cgroup::PsArgs),
    /// Change a running container's resource limits
    Update(cgroup::UpdateArgs),
    /// Print resource stats (--stats) or stream stats and OOM events
    Events(cgroup::EventsArgs),
    /// Print the features this runtime implements, as JSON
    Features,
}

impl Cmd {
    /// How many fds from 3 on go to the container: systemd's `LISTEN_FDS`, then
    /// `--preserve-fds N` (as runc counts them).
    pub fn preserve_fds(&self) -> u32 {
        match self {
            Cmd::Create(a) => lifecycle::listen_fds() + a.preserve_fds,
            Cmd::Run(a) => lifecycle::listen_fds() + a.create.preserve_fds,
            Cmd::Exec(a) => a.preserve_fds,
            _ => 0,
        }
    }

    /// Does this command put a process of ours inside a container?
    pub fn enters_container(&self) -> bool {
        matches!(self, Cmd::Create(_) | Cmd::Run(_) | Cmd::Exec(_))
    }
}

/// Run the parsed command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let Some(cmd) = cli.cmd else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(0);
    };
    let g = Global {
        root: cli.root.unwrap_or_else(crate::state::default_root),
        systemd_cgroup: cli.systemd_cgroup,
    };
    match cmd {
        Cmd::Create(a) => lifecycle::create(&g, a),
        Cmd::Start { id } => crate::container::start(&g.root, &id).map(|_| 0),
        Cmd::Run(a) => lifecycle::run(&g, a),
        Cmd::Exec(a) => lifecycle::exec(&g, a),
        Cmd::State { id } => info::state(&g, &id),
        Cmd::List(a) => info::list(&g, a),
        Cmd::Kill(a) => lifecycle::kill(&g, a),
        Cmd::Delete(a) => lifecycle::delete(&g, a),
        Cmd::Spec(a) => info::spec(a),
        Cmd::Pause { id } => cgroup::run_pause(&g, &id),
        Cmd::Resume { id } => cgroup::run_resume(&g, &id),
        Cmd::Ps(a) => cgroup::run_ps(&g, a),
        Cmd::Update(a) => cgroup::run_update(&g, a),
        Cmd::Events(a) => cgroup::run_events(&g, a),
        Cmd::Features => info::features(),
    }
}

/// Print a line to stdout; a closed stdout comes back as an error `stdout_closed` knows.
pub fn print(s: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{s}")?;
    Ok(())
}

/// True if the command failed only because its reader went away (`state | grep -q`):
/// then we die of SIGPIPE quietly, as runc (Go) does, rather than report an error. Only a
/// bare io error counts: our own pipes' errors always carry context.
pub fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().count() == 1
        && e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Global options the commands need.
pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}
