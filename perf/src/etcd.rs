//! etcd as the side-by-side reference of `perf subscribe`: a single-member etcd on
//! loopback (data dir in a temp dir), watches over its JSON gateway
//! (`POST /v3/watch`, a chunked stream of JSON lines, keys in base64) and writes
//! with `POST /v3/kv/put`. Absent `etcd` on PATH, callers skip with a message.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use concord_testkit::http;
use concordkv_topology::http::{parse_head, BodyDecoder};

/// The `etcd` executable on PATH, if there is one.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

/// A running single-member etcd, killed on drop.
pub struct Etcd {
    child: Child,
    pub addr: SocketAddr,
    pub version: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `bin` on two free loopback ports and waits (up to 30 s) until it is healthy.
    pub fn start(bin: &std::path::Path) -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("concord-perf-etcd-")
            .tempdir()
            .expect("temp dir");
        let (client, peer) = (concord_testkit::free_addr(), concord_testkit::free_addr());
        let child = Command::new(bin)
            .args(["--name", "perf"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &format!("http://{client}")])
            .args(["--advertise-client-urls", &format!("http://{client}")])
            .args(["--listen-peer-urls", &format!("http://{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
            .args(["--initial-cluster", &format!("perf=http://{peer}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut etcd = Etcd {
            child,
            addr: client,
            version: String::new(),
            _dir: dir,
        };
        etcd.version =
            concord_testkit::wait::wait_for(Duration::from_secs(30), "etcd to start", || {
                let health = http::get(client, "/health").ok()?.try_json()?;
                (health["health"] == "true").then_some(())?;
                let version = http::get(client, "/version").ok()?.try_json()?;
                version["etcdserver"].as_str().map(str::to_string)
            });
        etcd
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Puts `value` at `key`; returns the revision it committed at.
    pub fn put(&self, key: &str, value: &str) -> u64 {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            B64.encode(key),
            B64.encode(value)
        );
        let r = http::request(self.addr, "POST", "/v3/kv/put", &[], body.as_bytes());
        assert_eq!(r.status, 200, "etcd put refused: {}", r.text());
        revision(&r.json()["header"]["revision"]).expect("the put's revision")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a watch on every key under `prefix`.
pub fn watch_request(prefix: &str) -> String {
    format!(
        r#"{{"create_request":{{"key":"{}","range_end":"{}"}}}}"#,
        B64.encode(prefix),
        B64.encode(prefix_end(prefix))
    )
}

/// The first key after every key starting with `prefix` (the last byte plus one).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The gateway writes int64 fields as JSON strings.
fn revision(value: &serde_json::Value) -> Option<u64> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_u64())
}

/// Bytes of one watch response in, the `mod_revision` of every event out.
#[derive(Default)]
pub struct WatchDecoder {
    raw: Vec<u8>,
    body: Option<BodyDecoder>,
    /// Decoded body bytes not yet ending in a newline.
    lines: Vec<u8>,
    created: bool,
}

impl WatchDecoder {
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn feed(&mut self, bytes: &[u8], mut revision_seen: impl FnMut(u64)) -> io::Result<()> {
        self.raw.extend_from_slice(bytes);
        if self.body.is_none() {
            let Some((head, used)) = parse_head(&self.raw, |_, _| {})? else {
                return Ok(());
            };
            if head.status != 200 {
                return Err(io::Error::other(format!(
                    "etcd watch: status {}",
                    head.status
                )));
            }
            self.raw.drain(..used);
            self.body = Some(BodyDecoder::new(&head.body));
        }
        let body = self.body.as_mut().expect("set above");
        let used = body.decode(&self.raw, &mut self.lines)?;
        self.raw.drain(..used);
        while let Some(end) = self.lines.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.lines.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message: serde_json::Value = serde_json::from_slice(&line)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let result = &message["result"];
            if result["created"] == true {
                self.created = true;
            }
            for event in result["events"].as_array().into_iter().flatten() {
                if let Some(r) = revision(&event["kv"]["mod_revision"]) {
                    revision_seen(r);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("perf/"), b"perf0".to_vec());
    }

    #[test]
    fn watch_stream_yields_created_then_revisions_across_chunks() {
        let created = br#"{"result":{"header":{"revision":"1"},"created":true}}"#;
        let event = br#"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"cGVyZi8x","mod_revision":"7"}}]}}"#;
        let mut stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for message in [&created[..], &event[..]] {
            stream.extend(format!("{:x}\r\n", message.len() + 1).bytes());
            stream.extend_from_slice(message);
            stream.extend_from_slice(b"\n\r\n");
        }
        let mut decoder = WatchDecoder::default();
        let mut seen = Vec::new();
        for piece in stream.chunks(7) {
            decoder.feed(piece, |r| seen.push(r)).unwrap();
        }
        assert!(decoder.created());
        assert_eq!(seen, vec![7]);
    }
}
