//! Starting and stopping real `concord-topo` processes for a scenario, on loopback
//! (through the test kit's process spawner and port allocator).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use concord_testkit::http;
use concord_testkit::process::serve_args;
use concord_testkit::{free_addr, TopoProcess};

/// The server binary: `--server-bin`, else next to this executable.
pub fn server_binary(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(concord_testkit::server_binary, Path::to_path_buf)
}

/// A running server, killed on drop.
pub struct Server {
    process: TopoProcess,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The keys of [`PERF_CONFIG`] every release knows.
macro_rules! legacy_keys {
    () => {
        "topology:\n  notifications:\n    max_subscribers: 50000\n    subscriber_queue: 100000\n  health_check:\n    enabled: false\n"
    };
}

/// The configuration of every scenario but `health`. Health probing is off: the
/// scenarios' data nodes are made-up addresses, and probing them would add commits,
/// events and CPU to what the scenario measures.
pub const PERF_CONFIG: &str = concat!("http:\n  max_connections: 60000\n", legacy_keys!());

/// [`PERF_CONFIG`] without the keys the security work added (`http.max_connections`),
/// which a server from before it refuses: for same-run comparisons with such a binary.
pub const LEGACY_CONFIG: &str = legacy_keys!();

impl Server {
    /// Starts a single-node server with `executors` executors and `extra` flags.
    pub fn start(bin: &Path, executors: usize, extra: &[&str]) -> Server {
        Server::start_with_config(bin, executors, PERF_CONFIG, extra)
    }

    /// Like [`Server::start`], with `yaml` as the configuration file.
    pub fn start_with_config(bin: &Path, executors: usize, yaml: &str, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("concord-perf-")
            .tempdir()
            .expect("temp dir");
        let addr = free_addr();
        let config = dir.path().join("perf.yaml");
        std::fs::write(&config, yaml).expect("config");
        let mut args = serve_args(1, addr, free_addr(), &dir.path().join("data"), executors);
        args.extend(["--config".to_string(), config.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut process = TopoProcess::new(bin.to_path_buf(), args).rust_log("error");
        process.spawn();
        process.wait_ready(addr, Duration::from_secs(30));
        Server {
            process,
            addr,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().expect("the server runs")
    }
}

/// Resident set size of a process, bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Registers `nodes` data nodes and bootstraps `shards` shards (replication 3).
pub fn bootstrap(addr: SocketAddr, nodes: usize, shards: usize) {
    let body = concord_testkit::register::bootstrap_body(nodes, shards);
    let r = http::try_request(
        addr,
        "POST",
        "/api/topology/bootstrap",
        &[],
        body.as_bytes(),
    )
    .expect("bootstrap");
    assert_eq!(
        r.status,
        200,
        "bootstrap failed: {}",
        String::from_utf8_lossy(&r.body)
    );
}
