//! Test support: start real `concord-topo` processes on free loopback ports and talk
//! to them over real sockets with a deliberately small HTTP/1.1 client (so tests can
//! also send malformed requests byte for byte).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary built by `cargo test --workspace` (the server package's own
/// integration tests make cargo build it before any test runs).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/integration-xxxx → target/<profile>/concord-topo
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let binary = profile_dir.join("concord-topo");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        binary.display()
    );
    binary
}

/// A free loopback port for a server to bind later.
///
/// Chosen below Linux's ephemeral range (32768+): a port taken from the ephemeral range
/// and released can be grabbed by any outgoing connection of a parallel test before the
/// server binds it. Ports here are only ever handed out by this function (a counter from
/// a per-process random start, each one checked by a bind).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000;
    let seed = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// A running `concord-topo` process, killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub client: SocketAddr,
    pub args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a single-node server with a fresh data directory; `extra` flags appended.
    pub fn start(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Server::start_in(&data_dir, extra);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `data_dir` (kept by the caller), on new free ports.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut args: Vec<String> = vec![
            "--node-id".into(),
            "1".into(),
            "--client-addr".into(),
            client.to_string(),
            "--peer-addr".into(),
            peer.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--executors".into(),
            "2".into(),
        ];
        args.extend(without_probing(extra, data_dir));
        let mut server = Server {
            child: None,
            client,
            args,
            _temp: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(server_binary())
            .args(&self.args)
            .env("RUST_LOG", "warn,openraft=error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn concord-topo");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30));
    }

    /// With `--dev`, the sample topology is committed (version ≥ 1) shortly after the
    /// server is ready; tests that read the version first must not race it.
    fn sample_ready(&self) -> bool {
        if !self.args.iter().any(|a| a == "--dev") {
            return true;
        }
        try_request(self.client, "GET", "/api/topology/version", &[], b"")
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["version"].as_u64())
            .is_some_and(|v| v > 0)
    }

    /// Waits until `/readyz` answers 200 (and, with `--dev`, the sample is in).
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("concord-topo exited during start-up: {status}");
            }
            if let Ok(r) = try_request(self.client, "GET", "/readyz", &[], b"") {
                if r.status == 200 && self.sample_ready() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown path runs, exactly like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same server again (same flags, same data directory and ports).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.client, "GET", path, &[], b"")
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        request(self.client, method, path, headers, body.as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
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

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): status {} body {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    raw_exchange(addr, &request_bytes(addr, method, path, headers, body))
}

/// The bytes of one `Connection: close` request.
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Sends `raw` bytes as they are and parses whatever comes back.
pub fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    raw_exchange_within(addr, raw, Duration::from_secs(30))
}

/// [`raw_exchange`] with `limit` on each read and write.
pub fn raw_exchange_within(
    addr: SocketAddr,
    raw: &[u8],
    limit: Duration,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(raw)?;
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    parse_response(&data)
}

pub fn parse_response(data: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of response head"))?;
    let head = std::str::from_utf8(&data[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = data[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}
