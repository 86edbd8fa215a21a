//! The `strata-image` binary: the image tool (store, layers, commit, save/load, export,
//! history). Not built yet: it only explains itself.

fn main() {
    let help = "strata-image: the Strata image tool\n\n\
        Usage: strata-image <COMMAND>\n\n\
        The image commands (pull/load, commit, save, export, history) are not implemented yet;\n\
        see the project's issues. Use `strata` to run OCI bundles.";
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => println!("{help}"),
        Some("--version") | Some("-V") => println!("strata-image {}", env!("CARGO_PKG_VERSION")),
        Some(other) => {
            eprintln!("strata-image: unknown command {other:?} (no image commands exist yet)");
            std::process::exit(2);
        }
    }
}
