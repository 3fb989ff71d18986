//! `concord-topo`: parse the command line, load the configuration, run the server process.
//! Exits non-zero with a one-line reason on any start-up failure. `concord-topo ctl ...`
//! is the operator's command line instead (`concord_ctl`); `concord-topo restore ...`
//! seeds a data directory from a backup (`concord_topo::restore`).

use clap::Parser;
use concord_topo::config::{Cli, Config};

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "ctl") {
        std::process::exit(concord_ctl::main(std::env::args_os().skip(2)));
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "restore") {
        // Parsed here, not in the library: the library does not link the ctl crate.
        let args = std::env::args_os().skip(2);
        let code = match concord_ctl::parse_subcommand("concord-topo restore", args) {
            Ok(cli) => concord_topo::restore::main(cli),
            Err(code) => code,
        };
        std::process::exit(code);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("concord-topo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = concord_topo::process::run(config) {
        eprintln!("concord-topo: {e}");
        std::process::exit(1);
    }
}
