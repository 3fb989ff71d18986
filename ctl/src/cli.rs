//! The command line of `concord-topo ctl` (clap derive): global options and one
//! subcommand per operation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operate a ConcordKV topology cluster over its HTTP API.
#[derive(Debug, Parser)]
#[command(name = "concord-topo ctl", version)]
#[command(after_help = "Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 no server answered.")]
pub struct Cli {
    /// Client addresses of the servers (host:port, or https://host:port with
    /// --cacert), tried in order on failure.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:7070"
    )]
    pub endpoints: Vec<String>,
    /// File holding the bearer token for writes (overrides CONCORD_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the servers' certificates (for https:// endpoints).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --key).
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Time allowed per server for an answer (and for retries after 503).
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Write only if the topology is still at this version (If-Match).
    #[arg(long, global = true, value_name = "VERSION")]
    pub if_match: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Raft members, leader, term, applied/committed index and topology version.
    Status,
    /// All shards, or one.
    Shards { id: Option<String> },
    /// All data nodes, or one.
    Nodes { id: Option<String> },
    /// Register, update or remove a data node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Change shards: move, split, merge, migrate.
    #[command(subcommand)]
    Shard(ShardCommand),
    /// Create the initial topology.
    Bootstrap {
        /// Data nodes as id=address, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        shards: u32,
        #[arg(long)]
        replication: u32,
    },
    /// Apply a JSON file `{"operations": [...]}` as one change set.
    Batch { file: PathBuf },
    /// Change the Raft membership.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Follow topology changes (Server-Sent Events), one line per event.
    Watch(WatchArgs),
    /// Health checks.
    #[command(subcommand)]
    Health(HealthCommand),
    /// Backups: save the replicated state to a file, or inspect one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Committed events after a version.
    Events {
        #[arg(long)]
        since: u64,
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Register a data node or update its address and labels.
    Put {
        id: String,
        #[arg(long)]
        address: String,
        /// A label as key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Remove a data node (refused while it holds shards).
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ShardCommand {
    /// Split a shard at a hash point (default: its midpoint).
    Split {
        id: String,
        /// Split point, 16 hex digits.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        new_id: Option<String>,
    },
    /// Merge a shard with its neighbour.
    Merge {
        id: String,
        #[arg(long)]
        with: String,
    },
    /// Set a shard's primary (and replicas).
    Move {
        id: String,
        #[arg(long)]
        primary: String,
        #[arg(long, value_delimiter = ',')]
        replicas: Option<Vec<String>>,
    },
    /// Start moving a shard's copy from one node to another.
    Migrate {
        id: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Report a migration's progress.
    Progress { id: String, percent: u8 },
    /// Complete a migration.
    Complete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add a server as a non-voting learner.
    AddLearner {
        id: u64,
        /// The server's peer address.
        address: String,
        /// Answer only once the learner has caught up.
        #[arg(long)]
        wait: bool,
    },
    /// Make learners voters.
    Promote {
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Remove servers from the voters.
    Remove {
        #[arg(required = true)]
        ids: Vec<u64>,
    },
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Start after this version (default: now).
    #[arg(long)]
    pub since: Option<u64>,
    /// Only these event types (e.g. NodeJoin,ShardSplit).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Stop after this long (e.g. 30s).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent, checksummed backup (needs an admin token); restore it
    /// with `concord-topo restore --from FILE`.
    Save { file: PathBuf },
    /// Print a backup file's header and verify it.
    Inspect { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// Run a health round now, on every node or one.
    Run { node: Option<String> },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere_and_lists_split_on_commas() {
        let cli = Cli::try_parse_from([
            "ctl",
            "shard",
            "move",
            "s1",
            "--primary",
            "n1",
            "--replicas",
            "n2,n3",
            "-o",
            "json",
            "--endpoints",
            "a:1,b:2",
            "--timeout",
            "3s",
        ])
        .unwrap();
        assert_eq!(cli.endpoints, ["a:1", "b:2"]);
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.timeout, Duration::from_secs(3));
        match cli.command {
            Command::Shard(ShardCommand::Move { replicas, .. }) => {
                assert_eq!(replicas.unwrap(), ["n2", "n3"])
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["ctl", "shard", "progress", "s1", "x"]).is_err());
        assert!(Cli::try_parse_from(["ctl", "members", "promote"]).is_err());
    }
}
