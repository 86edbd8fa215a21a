//! The `strata` runtime binary: parse, maybe seal, dispatch, report.

use clap::Parser;
use strata::cli::{dispatch, Cli, VERSION};

fn main() {
    // A command that may put a process of ours into a container first re-execs from a
    // sealed copy (CVE-2019-5736). Done before parsing, so only the sealed copy pays for
    // clap. By argv word: a superset of what clap will see (an ID named "run" costs a
    // re-exec, nothing more); a failure is reported below, once logging is set up.
    let early_seal = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")))
        .then(strata::exeseal::ensure_sealed);
    let cli = Cli::parse();
    if cli.version {
        println!("strata version {VERSION}");
        return;
    }
    // Checked before we open anything: otherwise fd 3.. could be one of our own (the
    // log file, a namespace fd) and be handed to the container.
    let n = cli.cmd.as_ref().map_or(0, |c| c.preserve_fds());
    for fd in 3..3 + n as i32 {
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 || strata::exeseal::is_held(fd) {
            eprintln!("strata: --preserve-fds {n}: fd {fd} is not open in the caller");
            std::process::exit(1);
        }
    }
    if std::env::var_os("STRATA_NO_OPENAT2").is_some() {
        strata::paths::disable_openat2();
    }
    if std::env::var_os("STRATA_NO_MOUNT_SETATTR").is_some() {
        strata::mounts::remount::disable_mount_setattr();
    }
    if std::env::var_os("STRATA_NO_LOWERDIR_PLUS").is_some() {
        strata::overlay::disable_lowerdir_plus();
    }
    let to_file = match strata::logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("strata: {e:#}");
            std::process::exit(1);
        }
    };
    if cli.cmd.as_ref().is_some_and(|c| c.enters_container()) {
        if let Err(e) = early_seal.unwrap_or_else(strata::exeseal::ensure_sealed) {
            tracing::error!("{e:#}");
            eprintln!("strata: {e:#}");
            std::process::exit(1);
        }
    }
    // runc exits 255 when exec fails (its own error, not the program's exit code).
    let failed = if matches!(cli.cmd, Some(strata::cli::Cmd::Exec(_))) {
        255
    } else {
        1
    };
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) if strata::cli::stdout_closed(&e) => unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
            std::process::exit(141);
        },
        Err(e) => {
            if to_file {
                tracing::error!("{e:#}");
            }
            eprintln!("strata: {e:#}");
            std::process::exit(failed);
        }
    }
}
