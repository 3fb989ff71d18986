//! Test support for multi-server clusters: start 3–5 real `concord-topo` processes on
//! loopback (optionally behind the partition proxy), find the leader, kill and restart
//! servers, add joining servers, and wait until everyone agrees.
//!
//! Every wait here is bounded in time and fails the test with what it last saw.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use concord_testkit::http::{request_within, Response};
use concord_testkit::process::{initial_cluster, serve_args, Stderr};
use concord_testkit::{free_addr, server_binary, wait_for, TopoProcess};
use serde_json::Value;

use concord_testkit::proxy::Partitions;

/// The configuration of every test server, with `raft_extra` (indented YAML lines)
/// added to its `raft:` section.
///
/// Raft timing: the defaults' heartbeat with election timeouts doubled, so a loaded
/// 2-core machine (several test binaries, compilers) does not see spurious elections;
/// writes give up after 2 s so minority-side checks stay quick; the health monitor
/// never probes (test data nodes listen nowhere, and its commits would add versions).
pub fn test_config(raft_extra: &str) -> String {
    format!(
        "\
raft:
  heartbeat_interval: 50ms
  election_timeout_min: 300ms
  election_timeout_max: 600ms
{raft_extra}http:
  write_timeout: 2s
topology:
  health_check:
    enabled: false
"
    )
}

/// The peer secret every test server is given (`CONCORD_PEER_SECRET`): servers of a
/// cluster must share one.
pub const PEER_SECRET: &str = "test-peer-secret-0123456789abcdef";

/// One server of a test cluster.
pub struct Node {
    pub id: u64,
    pub client: SocketAddr,
    /// What the others dial: the proxy in front of the peer port, or the port itself.
    pub advertised: SocketAddr,
    log: PathBuf,
    process: TopoProcess,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// SIGKILL: no shutdown path runs, exactly like a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGHUP: the server reloads its credential files.
    pub fn signal_reload(&self) {
        self.process.signal_reload();
    }

    /// SIGSTOP: frozen with its sockets open (see [`TopoProcess::pause`]).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) {
        self.process.resume();
    }

    /// The exit status, if the process has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// Waits (up to `limit`) for the process to exit on its own, and reaps it (it no
    /// longer counts as running); `why` says what should have stopped it.
    pub fn wait_exit(&mut self, limit: Duration, why: &str) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server {} still runs {limit:?} after {why}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.kill();
        status
    }

    /// This server's log (standard error) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Option<Response> {
        request_within(self.client, "GET", path, &[], b"", Duration::from_secs(10)).ok()
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<Response> {
        request_within(
            self.client,
            method,
            path,
            headers,
            body.as_bytes(),
            Duration::from_secs(10),
        )
        .ok()
    }

    /// This server's `/api/cluster/status` `cluster` object, if it answers.
    pub fn status(&self) -> Option<Value> {
        let r = self.get("/api/cluster/status")?;
        (r.status == 200).then(|| r.json()["cluster"].clone())
    }

    /// `(version, configHash)` from this server's applied state.
    pub fn version(&self) -> Option<(u64, String)> {
        let r = self.get("/api/topology/version")?;
        if r.status != 200 {
            return None;
        }
        let body = r.json();
        Some((
            body["version"].as_u64()?,
            body["configHash"].as_str()?.to_string(),
        ))
    }
}

/// A cluster of real servers on loopback, killed on drop.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub partitions: Option<Partitions>,
    config: PathBuf,
    temp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` servers that form a cluster (behind the partition proxy when
    /// `proxied`); waits until they agree on a leader. `raft_extra`: see [`test_config`].
    pub fn start(n: u64, proxied: bool, raft_extra: &str) -> Cluster {
        Cluster::start_with(n, proxied, &test_config(raft_extra))
    }

    /// Like [`Cluster::start`], with `yaml` as every server's whole configuration.
    pub fn start_with(n: u64, proxied: bool, yaml: &str) -> Cluster {
        let cluster = Cluster::spawn(n, proxied, yaml, |_| PEER_SECRET);
        cluster.leader(Duration::from_secs(20));
        cluster
    }

    /// Starts `n` servers that form a cluster, server `id` with peer secret
    /// `secret_of(id)`; waits until each answers, not for a leader.
    pub fn spawn(
        n: u64,
        proxied: bool,
        yaml: &str,
        secret_of: impl Fn(u64) -> &'static str,
    ) -> Cluster {
        Cluster::spawn_prepared(n, proxied, yaml, secret_of, |_, _| Vec::new())
    }

    /// Like [`Cluster::start_with`], but `prepare(id, data_dir)` runs before server
    /// `id` first starts (it may place the data directory, e.g. on a small tmpfs) and
    /// returns environment variables for that server (kept across restarts).
    pub fn start_prepared(
        n: u64,
        proxied: bool,
        yaml: &str,
        prepare: impl Fn(u64, &std::path::Path) -> Vec<(String, String)>,
    ) -> Cluster {
        let cluster = Cluster::spawn_prepared(n, proxied, yaml, |_| PEER_SECRET, prepare);
        cluster.leader(Duration::from_secs(20));
        cluster
    }

    fn spawn_prepared(
        n: u64,
        proxied: bool,
        yaml: &str,
        secret_of: impl Fn(u64) -> &'static str,
        prepare: impl Fn(u64, &std::path::Path) -> Vec<(String, String)>,
    ) -> Cluster {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("concord.yaml");
        std::fs::write(&config, yaml).expect("config");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            partitions: proxied.then(Partitions::new),
            config,
            temp,
        };
        let ports: Vec<(u64, SocketAddr, SocketAddr)> = (1..=n)
            .map(|id| {
                let peer = free_addr();
                (id, peer, cluster.advertise(id, peer))
            })
            .collect();
        let initial = initial_cluster(ports.iter().map(|(id, _, advertised)| (*id, *advertised)));
        for (id, peer, advertised) in ports {
            let extra = ["--initial-cluster".to_string(), initial.clone()];
            let env = prepare(id, &cluster.data_dir(id));
            cluster.add_node(id, peer, advertised, &extra, secret_of(id), &env);
        }
        cluster
    }

    fn advertise(&self, id: u64, peer: SocketAddr) -> SocketAddr {
        match &self.partitions {
            Some(p) => p.proxy(id, peer),
            None => peer,
        }
    }

    fn add_node(
        &mut self,
        id: u64,
        peer: SocketAddr,
        advertised: SocketAddr,
        extra: &[String],
        secret: &str,
        env: &[(String, String)],
    ) {
        let client = free_addr();
        let data = self.data_dir(id);
        let mut args = serve_args(id, client, peer, &data, 1);
        args.extend([
            "--advertise-peer-addr".to_string(),
            advertised.to_string(),
            "--config".to_string(),
            self.config.display().to_string(),
        ]);
        args.extend(extra.iter().cloned());
        let log = self.temp.path().join(format!("node{id}.log"));
        let mut process = TopoProcess::new(server_binary(), args)
            .env("CONCORD_PEER_SECRET", secret)
            .stderr(Stderr::File(log.clone()));
        for (key, value) in env {
            process = process.env(key, value);
        }
        let mut node = Node {
            id,
            client,
            advertised,
            process,
            log,
        };
        node.process.spawn();
        wait_for(
            Duration::from_secs(20),
            &format!("node {id} answers"),
            || node.get("/healthz").filter(|r| r.status == 200),
        );
        self.nodes.push(node);
    }

    /// Starts server `id` with `--join` and an empty data directory; it serves but is
    /// no member until the leader adds it.
    pub fn start_joining(&mut self, id: u64) -> &Node {
        self.start_joining_with_secret(id, PEER_SECRET)
    }

    /// Like [`Cluster::start_joining`], with peer secret `secret`.
    pub fn start_joining_with_secret(&mut self, id: u64, secret: &str) -> &Node {
        let peer = free_addr();
        let advertised = self.advertise(id, peer);
        self.add_node(id, peer, advertised, &["--join".to_string()], secret, &[]);
        self.node(id)
    }

    /// The data directory of server `id`.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.temp.path().join(format!("node{id}"))
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("known node id")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("known node id")
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// The running servers other than `id`.
    pub fn others(&self, id: u64) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.id != id && n.is_running())
            .map(|n| n.id)
            .collect()
    }

    /// Starts a killed server again on the same ports, flags and data directory,
    /// without waiting for it (to watch it from its first accepted connection).
    pub fn spawn_again(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill();
        node.process.spawn();
    }

    /// Starts a killed server again on the same ports, flags and data directory.
    pub fn restart(&mut self, id: u64) {
        self.spawn_again(id);
        let node = self.node(id);
        wait_for(
            Duration::from_secs(20),
            &format!("node {id} restarts"),
            || node.get("/healthz").filter(|r| r.status == 200),
        );
    }

    /// The leader among the running servers of `among` (all running servers when
    /// empty): named by each of them, and calling itself leader. Waits for one.
    pub fn leader_among(&self, among: &[u64], limit: Duration) -> u64 {
        wait_for(limit, "one leader named by every running server", || {
            let mut named = Vec::new();
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                if among.is_empty() || among.contains(&node.id) {
                    named.push((node.id, node.status()?));
                }
            }
            let leader = named.first()?.1["leader"].as_u64()?;
            let agreed = named
                .iter()
                .all(|(_, s)| s["leader"].as_u64() == Some(leader));
            let claims = named
                .iter()
                .any(|(id, s)| *id == leader && s["state"] == "Leader");
            (agreed && claims).then_some(leader)
        })
    }

    pub fn leader(&self, limit: Duration) -> u64 {
        self.leader_among(&[], limit)
    }

    /// Waits until every server in `ids` reports the same version and configHash (at
    /// least `min_version`), and returns them.
    pub fn converged(&self, ids: &[u64], min_version: u64, limit: Duration) -> (u64, String) {
        wait_for(
            limit,
            "every server at the same version and configHash",
            || {
                let seen: Vec<(u64, String)> = ids
                    .iter()
                    .map(|id| self.node(*id).version())
                    .collect::<Option<_>>()?;
                let first = seen.first()?.clone();
                (first.0 >= min_version && seen.iter().all(|v| *v == first)).then_some(first)
            },
        )
    }

    /// The tail of every server's log, for a failing test's output, after any panic
    /// the log holds (with the lines that follow it: where, and the backtrace's top).
    fn dump_logs(&self) {
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (at, _) in lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("panicked"))
            {
                eprintln!("---- node {} panicked (log line {}) ----", node.id, at + 1);
                for line in lines.iter().skip(at).take(12) {
                    eprintln!("{line}");
                }
            }
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("---- node {} log (last {} lines) ----", node.id, tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for node in &mut self.nodes {
            node.kill();
        }
        if let Some(p) = &self.partitions {
            p.stop();
        }
    }
}

/// Registers data node `name` through the server at `addr`: the version on success,
/// `Err` with the status (0 = no answer) otherwise.
pub fn put_node(addr: SocketAddr, name: &str, if_match: Option<u64>) -> Result<u64, u16> {
    let tag = if_match.map(|v| format!("\"{v}\""));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(tag) = &tag {
        headers.push(("If-Match", tag.as_str()));
    }
    let r = request_within(
        addr,
        "PUT",
        &format!("/api/topology/nodes/{name}"),
        &headers,
        br#"{"address":"127.0.0.1:1"}"#,
        Duration::from_secs(10),
    )
    .map_err(|_| 0u16)?;
    if r.status == 200 {
        Ok(r.json()["version"]
            .as_u64()
            .expect("a write answers its version"))
    } else {
        Err(r.status)
    }
}

/// A linearizable read of the version through the server at `addr`.
pub fn linearizable_version(addr: SocketAddr) -> Result<u64, u16> {
    let r = request_within(
        addr,
        "GET",
        "/api/topology/version?consistency=linearizable",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .map_err(|_| 0u16)?;
    if r.status == 200 {
        Ok(r.json()["version"].as_u64().expect("version"))
    } else {
        Err(r.status)
    }
}

/// The data nodes a server holds (its applied state), by id.
pub fn data_nodes(node: &Node) -> BTreeMap<String, Value> {
    let r = node.get("/api/topology/nodes").expect("nodes answer");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .map(|n| (n["nodeId"].as_str().unwrap().to_string(), n.clone()))
        .collect()
}

/// Every event of a server's history, oldest first (all pages).
pub fn all_events(node: &Node) -> Vec<Value> {
    let mut events = Vec::new();
    let mut since = 0;
    loop {
        let r = node
            .get(&format!(
                "/api/topology/events?sinceVersion={since}&limit=1000"
            ))
            .expect("events answer");
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        for e in body["events"].as_array().expect("events") {
            since = since.max(e["version"].as_u64().unwrap());
            events.push(e.clone());
        }
        if body["hasMore"] != Value::Bool(true) {
            return events;
        }
    }
}

/// The version at which each data node joined, from a server's event history.
pub fn join_versions(node: &Node) -> BTreeMap<String, u64> {
    all_events(node)
        .iter()
        .filter(|e| e["type"] == "NodeJoin")
        .map(|e| {
            (
                e["nodeId"].as_str().unwrap().to_string(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect()
}
