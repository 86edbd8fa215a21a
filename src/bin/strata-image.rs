//! The `strata-image` binary: parse, dispatch, report.

use clap::Parser;
use strata::cli::image::{dispatch, Cli};

fn main() {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        // A reader that went away (`save | head`) ends us as it ends tar: by SIGPIPE,
        // quietly. Nothing else of ours writes to a pipe.
        Err(e) if broken_pipe(&e) => unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
            std::process::exit(141);
        },
        Err(e) => {
            eprintln!("strata-image: {e:#}");
            std::process::exit(1);
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
