//! Configuration: the YAML file, the command line, and their merge.
//!
//! Owns the one `Config` value every other module reads. Every key has a default;
//! unknown keys and bad values are rejected at start with the key's path in the
//! message (`topology.health_check.interval: invalid duration ...`). Command-line
//! flags (a contract for scripts and the systemd unit) override the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

pub mod auth;
pub mod live;
pub mod secret;
pub use auth::AuthConfig;
pub use live::LiveCredentials;
pub use secret::PeerSecret;
mod tls;
pub use tls::{PeerTlsConfig, TlsConfig, TlsFlags};

use crate::net::allow::AllowList;
use crate::net::bearer::ClientCredentials;

/// Errors found while loading the configuration; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {key}: {message}")]
    Parse {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The command line. Every flag overrides the matching config key.
#[derive(Debug, Default, Parser)]
#[command(name = "concord-topo", version, about = "ConcordKV topology service")]
pub struct Cli {
    /// YAML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This server's Raft node id (a positive integer, unique in the cluster).
    #[arg(long = "node-id", value_name = "N")]
    pub node_id: Option<u64>,
    /// Address the HTTP API listens on.
    #[arg(long = "client-addr", value_name = "HOST:PORT")]
    pub client_addr: Option<SocketAddr>,
    /// Address the Raft peer transport listens on.
    #[arg(long = "peer-addr", value_name = "HOST:PORT")]
    pub peer_addr: Option<SocketAddr>,
    /// Directory holding the Raft log, vote and state-machine snapshots.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Initial members: `1=HOST:PEERPORT,2=HOST:PEERPORT,...`.
    #[arg(long = "initial-cluster", value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,
    /// Join an existing cluster: never initialise one; wait to be added as a learner
    /// (`POST /api/cluster/learners` on the leader).
    #[arg(long)]
    pub join: bool,
    /// Peer address the other servers use to reach this one, when it differs from
    /// `--peer-addr` (NAT, a proxy, or `--peer-addr 0.0.0.0:PORT`).
    #[arg(long = "advertise-peer-addr", value_name = "HOST:PORT")]
    pub advertise_peer_addr: Option<SocketAddr>,
    /// Number of executors (threads, one per core); 0 means one per available core.
    #[arg(long, value_name = "N")]
    pub executors: Option<usize>,
    /// Development only: one token for writes and admin routes, visible in `ps`
    /// (use `auth.write_token_file` / `auth.admin_token_file` in production).
    #[arg(long = "auth-token", value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// Start even where the credentials leave a port open to anyone: a client port
    /// reachable from other hosts with no write or admin credential, or a cluster
    /// whose servers share no peer secret.
    #[arg(long)]
    pub insecure: bool,
    /// Development mode: one node in ./concord-data, port 7070, a sample topology.
    #[arg(long)]
    pub dev: bool,
    #[command(flatten)]
    pub tls: TlsFlags,
}

impl Cli {
    /// True when no flag at all was given: `concord-topo` alone behaves as `--dev`.
    pub fn is_empty(&self) -> bool {
        self.config.is_none()
            && self.node_id.is_none()
            && self.client_addr.is_none()
            && self.peer_addr.is_none()
            && self.data_dir.is_none()
            && self.initial_cluster.is_none()
            && !self.join
            && self.advertise_peer_addr.is_none()
            && self.executors.is_none()
            && self.auth_token.is_none()
            && !self.insecure
            && self.tls.is_empty()
    }
}

/// The whole configuration, as read from YAML (all keys optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node_id: u64,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Raft node id → peer address of every initial member (including this one).
    pub initial_cluster: BTreeMap<u64, SocketAddr>,
    /// Never initialise a cluster: this server waits to be added to an existing one.
    pub join: bool,
    /// The peer address other servers dial (default: `peer_addr`).
    pub advertise_peer_addr: Option<SocketAddr>,
    /// Executors (threads); 0 = one per available core.
    pub executors: usize,
    /// io_uring registered-buffer memory per executor, bytes. Small: memlock is often 8 MiB.
    pub io_memory: usize,
    /// Development alias: sets both the write and the admin token (logs a warning).
    pub auth_token: Option<String>,
    /// Credentials read from files (`auth:`; see [`auth`]).
    pub auth: AuthConfig,
    /// Start even where the credentials leave a port open to anyone (see `load`).
    pub insecure: bool,
    /// The peer secret in force: from `auth.peer_secret_file` or `CONCORD_PEER_SECRET`
    /// (resolved by [`Config::load`]), or generated in the data directory at start.
    /// As loaded at start: the one in force is [`LiveCredentials::peer_secret`].
    #[serde(skip)]
    pub peer_secret: Option<PeerSecret>,
    /// The client tokens, loaded by [`Config::load`] from `auth`, the environment and
    /// `auth_token`; empty (everything open) for a config that was only parsed. As
    /// loaded at start: the set in force is [`LiveCredentials::client`] (SIGHUP).
    #[serde(skip)]
    pub credentials: ClientCredentials,
    /// HTTPS on the client port (plain HTTP when not configured).
    pub tls: TlsConfig,
    /// Mutual TLS between topology servers on the peer port.
    pub peer_tls: PeerTlsConfig,
    /// Bootstrap this sample topology when the data directory is new (`--dev` sets it).
    pub sample_topology: Option<SampleTopology>,
    pub http: HttpConfig,
    pub raft: RaftConfig,
    pub topology: TopologyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            client_addr: "127.0.0.1:7070".parse().expect("static address"),
            peer_addr: "127.0.0.1:7071".parse().expect("static address"),
            data_dir: PathBuf::from("concord-data"),
            initial_cluster: BTreeMap::new(),
            join: false,
            advertise_peer_addr: None,
            executors: 0,
            io_memory: 512 * 1024,
            auth_token: None,
            auth: AuthConfig::default(),
            insecure: false,
            peer_secret: None,
            credentials: ClientCredentials::default(),
            tls: TlsConfig::default(),
            peer_tls: PeerTlsConfig::default(),
            sample_topology: None,
            http: HttpConfig::default(),
            raft: RaftConfig::default(),
            topology: TopologyConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SampleTopology {
    pub nodes: u32,
    pub shards: u32,
    pub replication_factor: u32,
    /// First data-node port; node i listens on base_port + i on 127.0.0.1.
    pub base_port: u16,
}

impl Default for SampleTopology {
    fn default() -> Self {
        SampleTopology {
            nodes: 6,
            shards: 64,
            replication_factor: 3,
            base_port: 9001,
        }
    }
}

/// Limits of the HTTP/1.1 front.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request head (request line + headers) accepted, bytes.
    pub max_header_bytes: usize,
    /// Largest request body accepted, bytes (a 413 past it).
    pub max_body_bytes: usize,
    /// Time allowed to produce an answer once a request has arrived.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open; also bounds how long a
    /// request head may take to arrive (hyper runs one timer for both).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// How long a write may wait for Raft before the client gets 503.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Client connections open at once on this server (all executors); past it a new
    /// connection is answered 503 with `Retry-After` and closed.
    pub max_connections: usize,
    /// Time allowed for a request head, from its first byte to its last (on both ports).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole request body once its handler reads it (408 past it).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            // 10,000 SSE subscribers plus routers and operators.
            max_connections: 12_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// Build a state-machine snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the last snapshot (for slow followers).
    pub keep_after_snapshot: u64,
    /// Time allowed to send and install a whole snapshot on a lagging peer.
    #[serde(with = "humantime_serde")]
    pub snapshot_timeout: Duration,
    /// Largest peer-transport message (request or answer body) accepted, bytes.
    pub max_message_bytes: usize,
    /// Connections open at once on the peer port; past it a new one gets 503 and is
    /// closed. (A peer request body must arrive within `snapshot_timeout`.)
    pub max_peer_connections: usize,
    /// Operations (writes, read indexes, health rounds, membership changes) queued for
    /// or running on the control executor; past it a request is answered 503 at once.
    pub max_pending_operations: usize,
    /// Once Raft has stopped (a fatal storage error), how long the process keeps
    /// answering (`/readyz` 503, writes 503) before it exits non-zero to be restarted.
    #[serde(with = "humantime_serde")]
    pub fatal_exit_grace: Duration,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_interval: Duration::from_millis(50),
            // A follower campaigns after `election_timeout_max` (the leader lease) plus
            // a random election timeout without a heartbeat: 300–400 ms, six to eight
            // missed heartbeats. That is what makes failover ~0.35 s (the target is a
            // median under 0.5 s); raise both for WAN links or heavily loaded hosts.
            election_timeout_min: Duration::from_millis(100),
            election_timeout_max: Duration::from_millis(200),
            snapshot_every: 5000,
            keep_after_snapshot: 1000,
            snapshot_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024 * 1024,
            max_peer_connections: 64,
            max_pending_operations: 1024,
            fatal_exit_grace: Duration::from_secs(5),
        }
    }
}

/// The seed's `topology:` section, with its original keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    pub health_check: HealthCheckConfig,
    pub notifications: NotificationConfig,
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Http,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Whether the leader probes data nodes at all (off: health is left as committed).
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retry_count: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub probe: ProbeKind,
    pub max_concurrent_probes: usize,
    /// Where probes may go: a node whose resolved address no rule allows is never
    /// probed (it stays `unknown`). Default: loopback, RFC 1918 and IPv6 ULA
    /// networks, ports 1024-65535; a configured list replaces it whole.
    pub allowed_targets: AllowList,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            retry_count: 2,
            failure_threshold: 3,
            success_threshold: 2,
            probe: ProbeKind::Http,
            max_concurrent_probes: 64,
            allowed_targets: AllowList::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    pub enable_sse: bool,
    /// Events kept in the replicated history (resume and `?since=` deltas).
    pub event_buffer_size: usize,
    #[serde(with = "humantime_serde")]
    pub subscription_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    pub max_subscribers: usize,
    /// Streams one client address may hold (IPv6: one /64); past it, 503.
    pub max_subscribers_per_address: usize,
    /// Loopback clients count only against `max_subscribers` (the load harness opens
    /// 10,000 streams from 127.0.0.1).
    pub exempt_loopback: bool,
    /// Frames a subscriber may have queued before it is disconnected.
    pub subscriber_queue: usize,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            enable_sse: true,
            event_buffer_size: 10_000,
            subscription_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(15),
            max_subscribers: 20_000,
            max_subscribers_per_address: 1_000,
            exempt_loopback: true,
            subscriber_queue: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `Cache-Control: max-age` sent on read responses (0 = `no-cache`).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How many per-shard / per-node response bodies each published version keeps
    /// encoded; lookups past it are encoded per request.
    pub max_entries: usize,
    /// Bytes of encoded bodies each executor keeps per published version (plain and
    /// gzip counted); bodies past it are encoded per request.
    pub max_bytes: usize,
    /// Whether gzip is offered to clients that send `Accept-Encoding: gzip`.
    pub compression: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::ZERO,
            max_entries: 100_000,
            max_bytes: 8 * 1024 * 1024,
            compression: true,
        }
    }
}

impl Config {
    /// Parses a YAML document; errors carry the path of the offending key.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let config: Config = match serde_path_to_error::deserialize(de) {
            Ok(c) => c,
            Err(e) => {
                let key = e.path().to_string();
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    message: e.into_inner().to_string(),
                });
            }
        };
        Ok(config)
    }

    /// Loads the file named by `--config` (if any), applies the flags, validates.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Config::from_yaml(&text, path)?
            }
            None => Config::default(),
        };
        config.apply_cli(cli)?;
        config.validate()?;
        config.peer_secret = secret::configured_peer_secret(&config)?;
        config.check_peer_port_is_closed()?;
        config.credentials = auth::client_credentials(&config, |name| std::env::var(name).ok())?;
        if config.auth_token.is_some() {
            tracing::warn!(
                "auth_token / --auth-token is for development: the token shows in `ps` and in \
                 config backups, and SIGHUP cannot change it; use auth.write_token_file and \
                 auth.admin_token_file"
            );
        }
        auth::refuse_open_exposure(&config)?;
        Ok(config)
    }

    fn apply_cli(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        if cli.dev || cli.is_empty() {
            self.sample_topology
                .get_or_insert_with(SampleTopology::default);
        }
        if let Some(v) = cli.node_id {
            self.node_id = v;
        }
        if let Some(v) = cli.client_addr {
            self.client_addr = v;
        }
        if let Some(v) = cli.peer_addr {
            self.peer_addr = v;
        }
        if let Some(v) = &cli.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &cli.initial_cluster {
            self.initial_cluster = parse_initial_cluster(v)?;
        }
        if cli.join {
            self.join = true;
        }
        if let Some(v) = cli.advertise_peer_addr {
            self.advertise_peer_addr = Some(v);
        }
        if let Some(v) = cli.executors {
            self.executors = v;
        }
        if let Some(v) = &cli.auth_token {
            self.auth_token = Some(v.clone());
        }
        if cli.insecure {
            self.insecure = true;
        }
        cli.tls.apply(&mut self.tls, &mut self.peer_tls);
        Ok(())
    }

    /// Cross-key checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be a positive integer"));
        }
        if !self.initial_cluster.is_empty() {
            match self.initial_cluster.get(&self.node_id) {
                None => {
                    return Err(invalid(
                        "initial_cluster",
                        format!("does not list this server's node_id {}", self.node_id),
                    ))
                }
                // With an advertised address the entry must be exactly it; without one,
                // the port must match peer_addr (the host may be 0.0.0.0 locally).
                Some(addr)
                    if self
                        .advertise_peer_addr
                        .map_or(addr.port() != self.peer_addr.port(), |advertised| {
                            *addr != advertised
                        }) =>
                {
                    return Err(invalid(
                        "initial_cluster",
                        format!(
                            "lists node {} at {addr}, but this server's peer address is {}",
                            self.node_id,
                            self.advertised_peer_addr()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.io_memory < 64 * 1024 {
            return Err(invalid("io_memory", "must be at least 65536 bytes"));
        }
        if self.auth_token.as_deref() == Some("") {
            return Err(invalid(
                "auth_token",
                "must not be empty (omit it to disable)",
            ));
        }
        // Loads the files once to prove them usable; the server loads them again.
        self.tls.server_config()?;
        self.peer_tls.load()?;
        positive("http.max_header_bytes", self.http.max_header_bytes as u64)?;
        positive("http.max_body_bytes", self.http.max_body_bytes as u64)?;
        nonzero("http.request_timeout", self.http.request_timeout)?;
        nonzero("http.keepalive_timeout", self.http.keepalive_timeout)?;
        nonzero("http.write_timeout", self.http.write_timeout)?;
        positive("http.max_connections", self.http.max_connections as u64)?;
        nonzero("http.header_read_timeout", self.http.header_read_timeout)?;
        nonzero("http.body_read_timeout", self.http.body_read_timeout)?;
        let r = &self.raft;
        nonzero("raft.heartbeat_interval", r.heartbeat_interval)?;
        if r.election_timeout_min <= r.heartbeat_interval {
            return Err(invalid(
                "raft.election_timeout_min",
                "must be longer than raft.heartbeat_interval",
            ));
        }
        if r.election_timeout_max <= r.election_timeout_min {
            return Err(invalid(
                "raft.election_timeout_max",
                "must be longer than raft.election_timeout_min",
            ));
        }
        positive("raft.snapshot_every", r.snapshot_every)?;
        nonzero("raft.snapshot_timeout", r.snapshot_timeout)?;
        if r.max_message_bytes < 64 * 1024 {
            return Err(invalid(
                "raft.max_message_bytes",
                "must be at least 65536 bytes",
            ));
        }
        positive("raft.max_peer_connections", r.max_peer_connections as u64)?;
        positive(
            "raft.max_pending_operations",
            r.max_pending_operations as u64,
        )?;
        let h = &self.topology.health_check;
        nonzero("topology.health_check.interval", h.interval)?;
        nonzero("topology.health_check.timeout", h.timeout)?;
        if h.timeout > h.interval {
            return Err(invalid(
                "topology.health_check.timeout",
                "must not exceed topology.health_check.interval",
            ));
        }
        positive(
            "topology.health_check.failure_threshold",
            h.failure_threshold.into(),
        )?;
        positive(
            "topology.health_check.success_threshold",
            h.success_threshold.into(),
        )?;
        positive(
            "topology.health_check.max_concurrent_probes",
            h.max_concurrent_probes as u64,
        )?;
        let n = &self.topology.notifications;
        positive(
            "topology.notifications.event_buffer_size",
            n.event_buffer_size as u64,
        )?;
        nonzero(
            "topology.notifications.subscription_timeout",
            n.subscription_timeout,
        )?;
        nonzero(
            "topology.notifications.heartbeat_interval",
            n.heartbeat_interval,
        )?;
        positive(
            "topology.notifications.subscriber_queue",
            n.subscriber_queue as u64,
        )?;
        positive(
            "topology.notifications.max_subscribers_per_address",
            n.max_subscribers_per_address as u64,
        )?;
        if let Some(s) = &self.sample_topology {
            positive("sample_topology.nodes", s.nodes.into())?;
            positive("sample_topology.shards", s.shards.into())?;
            if s.replication_factor == 0 || s.replication_factor > s.nodes {
                return Err(invalid(
                    "sample_topology.replication_factor",
                    "must be between 1 and sample_topology.nodes",
                ));
            }
        }
        Ok(())
    }

    /// True when this server runs alone: no other initial member, not joining one.
    pub fn is_single_server(&self) -> bool {
        !self.join && self.initial_cluster.keys().all(|id| *id == self.node_id)
    }

    /// A cluster needs a shared peer secret, or the operator's explicit `insecure`: a
    /// single server generates its own at start (see `process`).
    fn check_peer_port_is_closed(&self) -> Result<(), ConfigError> {
        if self.peer_secret.is_none() && !self.is_single_server() && !self.insecure {
            return Err(invalid(
                "auth.peer_secret_file",
                format!(
                    "a cluster (initial_cluster with other members, or join) needs a peer \
                     secret shared by every server: set auth.peer_secret_file or {} \
                     (e.g. `openssl rand -hex 32 > peer.secret`), or start with --insecure",
                    secret::PEER_SECRET_ENV
                ),
            ));
        }
        Ok(())
    }

    /// The members to initialise a new cluster with: the configured list, or this server
    /// alone; none at all with `join` (the server waits to be added).
    pub fn members(&self) -> BTreeMap<u64, SocketAddr> {
        if self.join {
            BTreeMap::new()
        } else if self.initial_cluster.is_empty() {
            BTreeMap::from([(self.node_id, self.advertised_peer_addr())])
        } else {
            self.initial_cluster.clone()
        }
    }

    /// The peer address other servers use to reach this one.
    pub fn advertised_peer_addr(&self) -> SocketAddr {
        self.advertise_peer_addr.unwrap_or(self.peer_addr)
    }

    /// The executor count to run: the configured one, or one per available core.
    pub fn executor_count(&self) -> usize {
        if self.executors > 0 {
            self.executors
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(())
}

fn nonzero(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(
            key,
            "must be a non-zero duration such as 500ms or 5s",
        ));
    }
    Ok(())
}

/// Parses `1=10.0.0.1:7071,2=10.0.0.2:7071` (etcd's `--initial-cluster` shape).
pub fn parse_initial_cluster(text: &str) -> Result<BTreeMap<u64, SocketAddr>, ConfigError> {
    let key = "--initial-cluster";
    let mut members = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| invalid(key, format!("`{item}` is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| invalid(key, format!("`{id}` is not a positive node id")))?;
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| invalid(key, format!("`{addr}` is not an IP:PORT address")))?;
        if members.insert(id, addr).is_some() {
            return Err(invalid(key, format!("node id {id} is listed twice")));
        }
    }
    if members.is_empty() {
        return Err(invalid(key, "lists no member"));
    }
    Ok(members)
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
