//! The `strata` runtime binary: parse, maybe seal, dispatch, report.

use clap::Parser;
use strata::cli::{dispatch, Cli, VERSION};

fn main() {
    let cli = Cli::parse();
    if cli.version {
        println!("strata version {VERSION}");
        return;
    }
    if std::env::var_os("STRATA_NO_OPENAT2").is_some() {
        strata::paths::disable_openat2();
    }
    let to_file = match strata::logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("strata: {e:#}");
            std::process::exit(1);
        }
    };
    if cli.cmd.as_ref().is_some_and(|c| c.enters_container()) {
        if let Err(e) = strata::exeseal::ensure_sealed() {
            tracing::error!("{e:#}");
            eprintln!("strata: {e:#}");
            std::process::exit(1);
        }
    }
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if to_file {
                tracing::error!("{e:#}");
            }
            eprintln!("strata: {e:#}");
            std::process::exit(1);
        }
    }
}
