//! `concord-topo ctl`: the operator's command line for a topology cluster.
//!
//! - [`cli`]: the clap definitions (options, subcommands).
//! - [`transport`]: requests with failover across `--endpoints`.
//! - [`answer`]: answers decoded through `concord-api`'s envelope; refusals.
//! - [`commands`]: topology reads and writes; [`members`]: Raft membership;
//!   [`watch`]: following the SSE stream; [`backup`]: `snapshot save/inspect`.
//! - [`render`]: `-o json` or human tables.
//!
//! Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 unreachable.

pub mod answer;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod error;
pub mod members;
pub mod render;
pub mod transport;
pub mod watch;

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;
use concordkv_topology::http::Endpoint;

use crate::cli::Cli;
use crate::error::{CtlError, Result};
use crate::transport::Transport;

/// Runs one invocation; `args` are what follows `ctl`. Returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("concord-topo ctl")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(&cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("concord-topo ctl: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let endpoints = cli
        .endpoints
        .iter()
        .map(|e| {
            Endpoint::parse(e).map_err(|why| CtlError::Usage(format!("--endpoints {e:?}: {why}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if endpoints.iter().any(|e| e.tls) {
        return Err(CtlError::Usage(
            "https:// endpoints are not supported by ctl yet; use the servers' plain client port"
                .into(),
        ));
    }
    let token = token(cli.token_file.as_deref())?;
    let transport = Transport::new(endpoints, token, cli.timeout);
    commands::run(cli, &transport)
}

/// The bearer token: `--token-file`, else `CONCORD_TOKEN`, else none.
fn token(file: Option<&Path>) -> Result<Option<String>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CtlError::Usage(format!("--token-file {}: {e}", path.display())))?,
        None => match std::env::var("CONCORD_TOKEN") {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
    };
    let token = text.trim();
    Ok((!token.is_empty()).then(|| token.to_string()))
}
