//! Starting and stopping real `concord-topo` processes for a scenario, on loopback.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

/// The server binary: `--server-bin`, else next to this executable.
pub fn server_binary(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("a directory");
    // target/<profile>/perf, or target/<profile>/deps/smoke-xxxx for the tests.
    for candidate in [dir.join("concord-topo"), dir.join("../concord-topo")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "concord-topo not found next to {}: build it (cargo build --release -p concord-topo) or pass --server-bin",
        exe.display()
    )
}

/// A free loopback address for a server to bind later, below the ephemeral port range
/// (32768+) so that no outgoing connection can take it in the meantime.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(40_503) % 16_000;
    (0..16_000u32)
        .map(|_| 16_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 16_000)
        .find_map(|port| {
            TcpListener::bind(("127.0.0.1", port as u16))
                .and_then(|l| l.local_addr())
                .ok()
        })
        .expect("a free loopback port between 16000 and 32000")
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// A directory removed on drop (no dependency needed for this one use).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration of every scenario but `health`. Health probing is off: the
/// scenarios' data nodes are made-up addresses, and probing them would add commits,
/// events and CPU to what the scenario measures.
const PERF_CONFIG: &str = "topology:\n  notifications:\n    max_subscribers: 50000\n    subscriber_queue: 100000\n  health_check:\n    enabled: false\n";

impl Server {
    /// Starts a single-node server with `executors` executors and `extra` flags.
    pub fn start(bin: &Path, executors: usize, extra: &[&str]) -> Server {
        Server::start_with_config(bin, executors, PERF_CONFIG, extra)
    }

    /// Like [`Server::start`], with `yaml` as the configuration file.
    pub fn start_with_config(bin: &Path, executors: usize, yaml: &str, extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "concord-perf-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ free_addr().port() as u128
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let addr = free_addr();
        let peer = free_addr();
        let config = dir.join("perf.yaml");
        std::fs::write(&config, yaml).expect("config");
        let mut args: Vec<String> = vec![
            "--config".into(),
            config.display().to_string(),
            "--client-addr".into(),
            addr.to_string(),
            "--peer-addr".into(),
            peer.to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--executors".into(),
            executors.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(bin)
            .args(&args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Server {
            child,
            addr,
            _dir: TempDir(dir),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("concord-topo exited at start: {status}");
            }
            if http::get(self.addr, "/readyz").is_ok_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("concord-topo not ready within 30 s");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let specs: Vec<String> = (0..nodes)
        .map(|i| {
            format!(
                r#"{{"nodeId":"dn-{i:04}","address":"10.1.{}.{}:7000"}}"#,
                i / 250,
                i % 250
            )
        })
        .collect();
    let body = format!(
        r#"{{"nodes":[{}],"shardCount":{shards},"replicationFactor":{}}}"#,
        specs.join(","),
        3.min(nodes)
    );
    let r =
        http::request(addr, "POST", "/api/topology/bootstrap", body.as_bytes()).expect("bootstrap");
    assert_eq!(
        r.status,
        200,
        "bootstrap failed: {}",
        String::from_utf8_lossy(&r.body)
    );
}
