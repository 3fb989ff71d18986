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
use concordkv_topology::http::{tls_config as tls_config_from, Endpoint, TlsIdentity};

use crate::cli::{Cli, Command, SnapshotCommand};
use crate::error::{CtlError, Result};
use crate::transport::{TlsConfig, Transport};

/// Runs one invocation; `args` are what follows `ctl`. Returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli: Cli = match parse_subcommand("concord-topo ctl", args) {
        Ok(cli) => cli,
        Err(code) => return code,
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
    // Reads a local file: no server, no credentials.
    if let Command::Snapshot(SnapshotCommand::Inspect { file }) = &cli.command {
        return backup::inspect(cli.output, file);
    }
    let endpoints = cli
        .endpoints
        .iter()
        .map(|e| {
            Endpoint::parse(e).map_err(|why| CtlError::Usage(format!("--endpoints {e:?}: {why}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let tls = tls_config(cli, &endpoints)?;
    let token = token(cli.token_file.as_deref())?;
    let transport = Transport::new(endpoints, token, cli.timeout, tls);
    commands::run(cli, &transport)
}

/// Parses the arguments of a subcommand of the binary (`name`: how help shows it);
/// on `--help`/`--version` or a usage error, prints what clap says and returns the
/// exit code (0, or 2 for a usage error).
pub fn parse_subcommand<T: Parser>(
    name: &str,
    args: impl IntoIterator<Item = OsString>,
) -> std::result::Result<T, i32> {
    let argv = std::iter::once(OsString::from(name)).chain(args);
    T::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            2
        } else {
            0
        }
    })
}

/// The TLS configuration from `--cacert` (and `--cert`/`--key`), which `https://`
/// endpoints need; the files are read now, so a bad one shows before anything is sent.
fn tls_config(cli: &Cli, endpoints: &[Endpoint]) -> Result<Option<TlsConfig>> {
    let Some(cacert) = cli.cacert.as_deref() else {
        if let Some(ep) = endpoints.iter().find(|e| e.tls) {
            return Err(CtlError::Usage(format!(
                "https://{} needs --cacert FILE (the CA that signed the servers' certificates)",
                ep.authority
            )));
        }
        if cli.cert.is_some() {
            return Err(CtlError::Usage(
                "--cert is presented over https:// only, which needs --cacert too".into(),
            ));
        }
        return Ok(None);
    };
    let identity = cli
        .cert
        .as_deref()
        .zip(cli.key.as_deref())
        .map(|(cert_file, key_file)| TlsIdentity {
            cert_file,
            key_file,
        });
    tls_config_from(cacert, identity).map(Some).map_err(|e| {
        // The library names its own options; ctl's are flags.
        let text = e
            .to_string()
            .replacen("ca_file", "--cacert", 1)
            .replacen("client_cert_file", "--cert", 1)
            .replacen("client_key_file", "--key", 1);
        CtlError::Usage(text)
    })
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
