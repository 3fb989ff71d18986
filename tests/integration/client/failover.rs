//! Failover: a client of a three-server cluster loses the server it streams from;
//! it moves on by itself and, after a burst of writes made meanwhile, holds exactly
//! the cluster's final topology (same version and configHash), having applied each
//! version once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_testkit::http::{try_request, Response};
use concord_testkit::process::{initial_cluster, serve_args, Stderr};
use concord_testkit::{eventually, free_addr, server_binary, TopoProcess};
use concordkv_topology::{ClientOptions, TopologyClient};
use serde_json::Value;

/// Three `concord-topo` processes forming one Raft cluster (killed on drop).
struct Cluster {
    servers: Vec<TopoProcess>,
    clients: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(SocketAddr, SocketAddr)> =
            (0..3).map(|_| (free_addr(), free_addr())).collect();
        let initial = initial_cluster((1..).zip(ports.iter().map(|(_, peer)| *peer)));
        let mut servers = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data = dir.path().join(format!("node{id}"));
            let mut args = serve_args(id, *client, *peer, &data, 1);
            args.extend(["--initial-cluster".to_string(), initial.clone()]);
            let mut server = TopoProcess::new(server_binary(), args)
                .env("CONCORD_PEER_SECRET", crate::cluster_support::PEER_SECRET)
                .rust_log("error")
                .stderr(Stderr::Null);
            server.spawn();
            servers.push(server);
        }
        for (server, (client, _)) in servers.iter_mut().zip(&ports) {
            server.wait_ready(*client, Duration::from_secs(30));
        }
        Cluster {
            servers,
            clients: ports.iter().map(|(client, _)| *client).collect(),
            _dir: dir,
        }
    }

    fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    fn alive(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.clients
            .iter()
            .zip(&self.servers)
            .filter(|(_, s)| s.is_running())
            .map(|(a, _)| *a)
    }

    /// A write sent to any live server (followers forward it), retried while the
    /// cluster elects a new leader.
    fn write(&self, method: &str, path: &str, body: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for addr in self.alive() {
                let headers = [("Content-Type", "application/json")];
                if let Ok(r) = try_request(addr, method, path, &headers, body.as_bytes()) {
                    if r.status == 200 {
                        return r;
                    }
                }
            }
            assert!(Instant::now() < deadline, "{method} {path} never succeeded");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// (version, configHash) of a linearizable read on a live server.
    fn version(&self) -> (u64, String) {
        let r = self.write_free_get("/api/topology/version?consistency=linearizable");
        (
            r["version"].as_u64().unwrap(),
            r["configHash"].as_str().unwrap().to_string(),
        )
    }

    fn write_free_get(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for addr in self.alive() {
                if let Ok(r) = try_request(addr, "GET", path, &[], b"") {
                    if r.status == 200 {
                        return r.json();
                    }
                }
            }
            assert!(Instant::now() < deadline, "GET {path} never succeeded");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn client_fails_over_and_ends_with_the_clusters_exact_topology() {
    let mut cluster = Cluster::start();
    cluster.write(
        "POST",
        "/api/topology/bootstrap",
        r#"{"nodes":[{"nodeId":"dn-1","address":"127.0.0.1:1"},{"nodeId":"dn-2","address":"127.0.0.1:2"},{"nodeId":"dn-3","address":"127.0.0.1:3"}],"shardCount":16,"replicationFactor":3}"#,
    );
    let mut options = ClientOptions::new(cluster.clients.iter().map(ToString::to_string));
    options.backoff_min = Duration::from_millis(20);
    options.backoff_max = Duration::from_millis(500);
    let client = TopologyClient::new(options).unwrap();
    let applied = Arc::new(Mutex::new(Vec::new()));
    let sink = applied.clone();
    client.on_change(move |c| {
        sink.lock()
            .unwrap()
            .push((c.previous_version, c.version, c.reset))
    });
    client.wait_ready(Duration::from_secs(20)).unwrap();
    assert!(eventually(Duration::from_secs(20), || client
        .stats()
        .streaming));
    let streaming_from = client.stats().current_server;

    cluster.kill(streaming_from);
    let shards: Vec<String> = cluster.write_free_get("/api/topology/shards")["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shardId"].as_str().unwrap().to_string())
        .collect();
    for (i, shard) in shards.iter().cycle().take(24).enumerate() {
        let status = if i % 2 == 0 { "readonly" } else { "active" };
        cluster.write(
            "PUT",
            &format!("/api/topology/shards/{shard}"),
            &format!(r#"{{"status":"{status}"}}"#),
        );
    }

    let settled = eventually(Duration::from_secs(30), || {
        let (version, hash) = cluster.version();
        client.version() == version && client.config_hash().as_deref() == Some(hash.as_str())
    });
    let stats = client.stats();
    assert!(
        settled,
        "client at {} vs cluster {:?}; stats {stats:?}; last error {:?}",
        client.version(),
        cluster.version(),
        client.last_error()
    );
    assert_ne!(
        stats.current_server, streaming_from,
        "moved to another server"
    );
    assert!(stats.failovers >= 1);
    let local: Value = serde_json::from_str(&client.snapshot_json().unwrap()).unwrap();
    let remote = cluster.write_free_get("/api/topology/snapshot?consistency=linearizable");
    if remote["snapshot"]["version"] == local["version"] {
        assert_eq!(local["shardMap"], remote["snapshot"]["shardMap"]);
        assert_eq!(local["nodeStatus"], remote["snapshot"]["nodeStatus"]);
    }

    // Each version reached the listeners once, in order, contiguously between reloads.
    let applied = applied.lock().unwrap().clone();
    // (The listener may have been registered after the first snapshot arrived.)
    let mut last = applied.first().map_or(0, |c| c.0);
    for (previous, version, reset) in &applied {
        assert!(
            *version > last,
            "version {version} after {last}: {applied:?}"
        );
        if !reset {
            assert_eq!(*previous, last, "a gap before {version}: {applied:?}");
            assert_eq!(*version, previous + 1);
        }
        last = *version;
    }
    assert_eq!(last, client.version());
}
