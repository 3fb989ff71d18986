//! Scripted fake topology servers on loopback for the client's tests: each
//! connection's request is recorded and answered by a test's handler with exact
//! bytes (snapshots, deltas, SSE change sets). The transport is pluggable: plain
//! TCP, or TLS (a rustls `ServerConnection` over the accepted socket, see `pki`).
//! Shared by several test binaries, each using part of it.
#![allow(dead_code)]

pub mod pki;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_model::TopologyState;
pub use concordkv_topology::testkit::snapshot_body;
use concordkv_topology::testkit::{bootstrap_state, read_request_head, toggle_shard};
use concordkv_topology::{ClientOptions, TopologyEvent};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

pub const WAIT: Duration = Duration::from_secs(10);

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub last_event_id: Option<String>,
    pub authorization: Option<String>,
    /// DER of the certificate the client presented over TLS, if any.
    pub client_certificate: Option<Vec<u8>>,
}

/// A connection of the fake server: plain TCP or TLS over it.
pub trait Transport: Read + Write + Send {
    fn client_certificate(&self) -> Option<Vec<u8>> {
        None
    }
}

impl Transport for TcpStream {}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn client_certificate(&self) -> Option<Vec<u8>> {
        let chain = self.conn.peer_certificates()?;
        chain.first().map(|c| c.to_vec())
    }
}

type Handler = dyn Fn(&Seen, &mut dyn Write, &AtomicBool) + Send + Sync;
type Accept = dyn Fn(TcpStream) -> Option<Box<dyn Transport>> + Send + Sync;

pub struct Fake {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

impl Fake {
    /// A plain HTTP fake; `addr` is `host:port`.
    pub fn start(
        handler: impl Fn(&Seen, &mut dyn Write, &AtomicBool) + Send + Sync + 'static,
    ) -> Fake {
        Fake::start_on(
            Arc::new(|tcp| Some(Box::new(tcp) as Box<dyn Transport>)),
            handler,
        )
    }

    /// An HTTPS fake with this server configuration; `addr` is still `host:port`.
    /// A client that fails the handshake leaves no request in `seen`.
    pub fn start_tls(
        config: Arc<ServerConfig>,
        handler: impl Fn(&Seen, &mut dyn Write, &AtomicBool) + Send + Sync + 'static,
    ) -> Fake {
        let accept = move |tcp| {
            let conn = ServerConnection::new(config.clone()).ok()?;
            Some(Box::new(StreamOwned::new(conn, tcp)) as Box<dyn Transport>)
        };
        Fake::start_on(Arc::new(accept), handler)
    }

    fn start_on(
        accept: Arc<Accept>,
        handler: impl Fn(&Seen, &mut dyn Write, &AtomicBool) + Send + Sync + 'static,
    ) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (handler, seen, stop) = (handler.clone(), seen2.clone(), stop2.clone());
                let accept = accept.clone();
                std::thread::spawn(move || {
                    let Some(mut stream) = accept(stream) else {
                        return;
                    };
                    if let Some(req) = read_request(&mut *stream) {
                        seen.lock().unwrap().push(req.clone());
                        handler(&req, &mut stream, &stop);
                    }
                });
            }
        });
        Fake { addr, seen, stop }
    }

    pub fn targets(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.target.clone())
            .collect()
    }
}

fn read_request(stream: &mut dyn Transport) -> Option<Seen> {
    let text = read_request_head(stream)?;
    let target = text.split_whitespace().nth(1)?.to_string();
    let last_event_id = text
        .lines()
        .find_map(|l| l.strip_prefix("Last-Event-ID: "))
        .map(str::to_string);
    let authorization = text
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: "))
        .map(str::to_string);
    Some(Seen {
        target,
        last_event_id,
        authorization,
        client_certificate: stream.client_certificate(),
    })
}

/// Answers a snapshot a little late, so that a listener registered right after
/// `TopologyClient::new` sees the first change too.
pub fn slow_snapshot(stream: &mut dyn Write, state: &TopologyState) {
    std::thread::sleep(Duration::from_millis(200));
    json_response(stream, 200, &snapshot_body(state));
}

pub fn json_response(stream: &mut dyn Write, status: u16, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

pub fn delta_body(since: u64, version: u64, events: &[TopologyEvent]) -> String {
    let events = serde_json::to_string(events).unwrap();
    format!(
        r#"{{"success":true,"message":"ok","version":{version},"sinceVersion":{since},"events":{events},"hasMore":false}}"#
    )
}

/// SSE blocks for one change set: the id on the last event only.
pub fn sse_set(events: &[TopologyEvent]) -> String {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        out.push_str(&format!("event: {}\n", e.event_type));
        if i + 1 == events.len() {
            out.push_str(&format!("id: {}\n", e.version));
        }
        out.push_str(&format!("data: {}\n\n", serde_json::to_string(e).unwrap()));
    }
    out
}

/// Answers an SSE stream (chunked), then holds it open until the fake stops.
pub fn sse_response(stream: &mut dyn Write, blocks: &str, stop: &AtomicBool) {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    let _ = stream.write_all(head.as_bytes());
    // Split into small chunks so events straddle chunk borders.
    for piece in blocks.as_bytes().chunks(37) {
        let _ = write!(stream, "{:x}\r\n", piece.len());
        let _ = stream.write_all(piece);
        let _ = stream.write_all(b"\r\n");
    }
    while !stop.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A history: states v1..=v(n+1) and the events of each step.
pub fn history(steps: usize) -> (Vec<TopologyState>, Vec<Vec<TopologyEvent>>) {
    let mut state = bootstrap_state(6, 16);
    let ids: Vec<String> = state.shards().map(|s| s.shard_id.clone()).collect();
    let mut states = vec![state.clone()];
    let mut sets = Vec::new();
    for i in 0..steps {
        sets.push(toggle_shard(&mut state, &ids[i % ids.len()]));
        states.push(state.clone());
    }
    (states, sets)
}

pub fn options(servers: &[&str]) -> ClientOptions {
    let mut o = ClientOptions::new(servers.iter().copied());
    o.backoff_min = Duration::from_millis(20);
    o.backoff_max = Duration::from_millis(100);
    o
}
