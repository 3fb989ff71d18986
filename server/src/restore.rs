//! `concord-topo restore`: the command line of the disaster-recovery path. It seeds
//! a fresh data directory from a backup file (`raft::restore`); run it on every host
//! of the new cluster with the same file and `--initial-cluster`, then start the
//! servers on those data directories.
//!
//! Exit codes: 0 restored, 2 refused (bad file or arguments, a used directory;
//! nothing written), 1 the file system failed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{parse_initial_cluster, Config};
use crate::raft::restore::restore;

/// Create a fresh data directory that starts a NEW cluster from a backup file
/// (`concord-topo ctl snapshot save`).
#[derive(Debug, Parser)]
#[command(name = "concord-topo restore")]
pub struct RestoreCli {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The data directory to create (it must not exist, or be empty).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// This server's Raft node id in the new cluster.
    #[arg(long = "node-id", value_name = "N", default_value_t = 1)]
    pub node_id: u64,
    /// Members of the new cluster: `1=HOST:PEERPORT,2=HOST:PEERPORT,...` (the same
    /// on every host). Without it, a single-server cluster.
    #[arg(long = "initial-cluster", value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,
    /// Peer address of a single-server cluster (without `--initial-cluster`).
    #[arg(
        long = "peer-addr",
        value_name = "HOST:PORT",
        conflicts_with = "initial_cluster"
    )]
    pub peer_addr: Option<SocketAddr>,
}

/// Runs `concord-topo restore` with its parsed arguments. Returns the exit code.
pub fn main(cli: RestoreCli) -> i32 {
    let members = match &cli.initial_cluster {
        Some(text) => match parse_initial_cluster(text) {
            Ok(members) => members,
            Err(e) => {
                eprintln!("concord-topo restore: {e}");
                return 2;
            }
        },
        None => [(
            cli.node_id,
            cli.peer_addr.unwrap_or(Config::default().peer_addr),
        )]
        .into(),
    };
    match restore(&cli.from, &cli.data_dir, cli.node_id, &members) {
        Ok(header) => {
            let ids: Vec<String> = members.keys().map(u64::to_string).collect();
            println!(
                "restored version {} (configHash {}) into {} as node {} of a new cluster of {{{}}}; start the server on this data directory",
                header.version,
                header.config_hash,
                cli.data_dir.display(),
                cli.node_id,
                ids.join(",")
            );
            0
        }
        Err(e) => {
            eprintln!("concord-topo restore: {e}");
            if e.is_refusal() {
                2
            } else {
                1
            }
        }
    }
}
