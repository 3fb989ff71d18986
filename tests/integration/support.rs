//! Test support for single servers: start a real `concord-topo` process on free
//! loopback ports (the health monitor off unless a test asks for it) and talk to it
//! through the workspace's test kit (`concord-testkit`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use concord_testkit::http::{request, try_request, Response};
use concord_testkit::process::{answers_200, serve_args};
use concord_testkit::{free_addr, server_binary, TopoProcess};

/// A running `concord-topo` process, killed on drop.
pub struct Server {
    process: TopoProcess,
    pub client: SocketAddr,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a single-node server with a fresh data directory; `extra` flags appended.
    pub fn start(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        Server::start_owning(temp, extra)
    }

    /// Like [`Server::start`], with `yaml` as the configuration file.
    pub fn with_config(yaml: &str, extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("concord.yaml");
        std::fs::write(&config, yaml).expect("config file");
        let mut args = vec!["--config", config.to_str().expect("a UTF-8 temp path")];
        args.extend_from_slice(extra);
        Server::start_owning(temp, &args)
    }

    /// Starts a server on `temp/data`; `temp` is removed when the server is dropped.
    fn start_owning(temp: tempfile::TempDir, extra: &[&str]) -> Server {
        let mut server = Server::start_in(&temp.path().join("data"), extra);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `data_dir` (kept by the caller), on new free ports.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let client = free_addr();
        let mut args = serve_args(1, client, free_addr(), data_dir, 2);
        args.extend(without_probing(extra, data_dir));
        let mut server = Server {
            process: TopoProcess::new(server_binary(), args),
            client,
            _temp: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.process.spawn();
        self.wait_ready(Duration::from_secs(30));
    }

    /// With `--dev`, the sample topology is committed (version ≥ 1) shortly after the
    /// server is ready; tests that read the version first must not race it.
    fn sample_ready(client: SocketAddr, dev: bool) -> bool {
        if !dev {
            return true;
        }
        try_request(client, "GET", "/api/topology/version", &[], b"")
            .ok()
            .and_then(|r| r.try_json())
            .and_then(|v| v["version"].as_u64())
            .is_some_and(|v| v > 0)
    }

    /// Waits until `/readyz` answers 200 (and, with `--dev`, the sample is in).
    pub fn wait_ready(&mut self, limit: Duration) {
        let client = self.client;
        let dev = self.process.args().iter().any(|a| a == "--dev");
        self.process.wait_until(limit, "ready", || {
            answers_200(client, "/readyz") && Server::sample_ready(client, dev)
        });
    }

    /// SIGKILL: no shutdown path runs, exactly like a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGHUP: reload the credential files.
    pub fn signal_reload(&self) {
        self.process.signal_reload();
    }

    /// Starts the same server again (same flags, same data directory and ports).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The version this server has applied.
    /// The process id while it runs.
    pub fn pid(&self) -> u32 {
        self.process.pid().expect("the server runs")
    }

    pub fn version(&self) -> u64 {
        self.get("/api/topology/version").json()["version"]
            .as_u64()
            .expect("version is a number")
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.client, "GET", path, &[], b"")
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        request(self.client, method, path, headers, body.as_bytes())
    }
}

/// `extra`, with a configuration that turns the health monitor off unless the test's
/// own config file names `topology.health_check`. Test topologies (the `--dev` sample
/// included) point at addresses nobody listens on, and the monitor's commits would
/// interleave with the versions other tests count; health tests opt in explicitly.
/// The file is written next to `data_dir`, so a restart finds it again.
fn without_probing(extra: &[&str], data_dir: &Path) -> Vec<String> {
    use serde_yaml_ng::{Mapping, Value};
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let given = args.iter().position(|a| a == "--config");
    let mut config: Value = match given.and_then(|i| args.get(i + 1)) {
        Some(path) => {
            let text = std::fs::read_to_string(path).expect("test config file");
            serde_yaml_ng::from_str(&text).expect("test config is YAML")
        }
        None => Value::Mapping(Mapping::new()),
    };
    if config["topology"].get("health_check").is_some() {
        return args;
    }
    let root = config.as_mapping_mut().expect("a config is a mapping");
    let topology = root
        .entry("topology".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()))
        .as_mapping_mut()
        .expect("`topology` is a mapping");
    let mut health = Mapping::new();
    health.insert("enabled".into(), false.into());
    topology.insert("health_check".into(), Value::Mapping(health));
    let name = format!(
        "{}-no-probing.yaml",
        data_dir
            .file_name()
            .map_or("data".into(), |n| n.to_string_lossy())
    );
    let path = data_dir.with_file_name(name);
    std::fs::create_dir_all(path.parent().expect("data_dir has a parent")).expect("config dir");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).expect("YAML")).expect("config file");
    let path = path.display().to_string();
    match given {
        Some(i) => args[i + 1] = path,
        None => args.extend(["--config".to_string(), path]),
    }
    args
}
