//! The `strata-image` binary: parse, dispatch, report.

use clap::Parser;
use strata::cli::image::{dispatch, Cli};

fn main() {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("strata-image: {e:#}");
            std::process::exit(1);
        }
    }
}
