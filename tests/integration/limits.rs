//! Bounds on what a stranger can make a server hold: memory for cached answers,
//! connections on either port, time for a request head or body, queued control work
//! and SSE streams per client address. Each test drives a real server past one limit
//! with raw sockets and checks it answers (503 + `Retry-After`, 408, or a close) and
//! keeps serving everyone else.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use concord_testkit::http::{request_within, try_request, Response};
use concord_testkit::process::serve_args;
use concord_testkit::sse::SseClient;
use concord_testkit::{eventually, free_addr, server_binary, TopoProcess};

/// One server with both of its ports known (single-server tests elsewhere only need
/// the client port).
struct Limited {
    process: TopoProcess,
    client: SocketAddr,
    peer: SocketAddr,
    data_dir: PathBuf,
    _temp: tempfile::TempDir,
}

/// A configuration without health probing (test topologies point nowhere).
const NO_PROBING: &str = "topology:\n  health_check:\n    enabled: false\n";

impl Limited {
    /// Starts a server with `yaml` as its configuration file and two executors.
    fn start(yaml: &str) -> Limited {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("limits.yaml");
        std::fs::write(&config, yaml).expect("config file");
        let (client, peer) = (free_addr(), free_addr());
        let data_dir = temp.path().join("data");
        let mut args = serve_args(1, client, peer, &data_dir, 2);
        args.extend(["--config".into(), config.display().to_string()]);
        let mut process = TopoProcess::new(server_binary(), args);
        process.spawn();
        process.wait_ready(client, Duration::from_secs(30));
        Limited {
            process,
            client,
            peer,
            data_dir,
            _temp: temp,
        }
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        try_request(self.client, method, path, headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Resident memory of the server process, KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.process.pid().expect("the server runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// One unlabelled sample of `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        let text = self.send("GET", "/metrics", &[], "").text();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}")) as u64
    }

    /// The bearer the peer port wants: a generated peer secret when the server made
    /// one in its data directory, else the configured token.
    fn peer_bearer(&self, configured: &str) -> String {
        std::fs::read_to_string(self.data_dir.join("peer-secret"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| configured.to_string())
    }
}

fn assert_retry_later(r: &Response, names: &str) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
    assert!(
        r.text().contains(names),
        "the 503 names {names}: {}",
        r.text()
    );
}

/// Sockets that connect and send nothing.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect()
}

/// A request on a new connection once the idle ones are in: the kernel completes
/// their handshakes at once, the server counts them when it accepts them.
fn one_more(addr: SocketAddr, method: &str, path: &str) -> Response {
    std::thread::sleep(Duration::from_millis(300));
    request_within(addr, method, path, &[], b"", Duration::from_secs(5))
        .expect("a refusal is an answer, not a reset")
}

/// True once the server closed `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Sends `head`, then one byte of `drip` every 100 ms, until the server answers or
/// closes; returns what it sent back and how long that took (`None`: still open
/// after `limit`).
fn trickle(
    addr: SocketAddr,
    head: &str,
    drip: &[u8],
    limit: Duration,
) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(head.as_bytes()).expect("head");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut answer = Vec::new();
    let mut sink = [0u8; 4096];
    for byte in drip.iter().cycle() {
        if started.elapsed() > limit {
            return None;
        }
        let _ = stream.write_all(&[*byte]);
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&sink[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !answer.is_empty() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some((
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    ))
}

/// 2 KiB of labels: eight values of 250 characters.
fn heavy_labels(i: usize) -> String {
    (0..8)
        .map(|k| format!(r#""k{k}":"{}""#, format!("{i:04}").repeat(62) + "xx"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn distinct_event_range_reads_leave_memory_bounded() {
    // Default cache settings: this is what a stranger meets.
    let server = Limited::start(NO_PROBING);
    let nodes = 200;
    for i in 0..nodes {
        let body = format!(
            r#"{{"address":"10.0.0.1:{}","labels":{{{}}}}}"#,
            1000 + i,
            heavy_labels(i)
        );
        let r = server.send("PUT", &format!("/api/topology/nodes/n{i}"), &[], &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Warm the process up (allocator arenas, encoders) before the baseline.
    for since in [0, 100] {
        let r = server.send(
            "GET",
            &format!("/api/topology/events?sinceVersion={since}&limit=1000"),
            &[],
            "",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let before = server.rss_kib();
    // ~600 distinct event pages and 200 distinct deltas, 220 KiB each on average: over
    // 150 MiB of distinct bodies, which a cache bounded by entries alone would keep.
    for since in 0..nodes {
        for limit in [1000, 999, 998] {
            let path = format!("/api/topology/events?sinceVersion={since}&limit={limit}");
            assert_eq!(server.send("GET", &path, &[], "").status, 200, "{path}");
        }
        let path = format!("/api/topology/snapshot?since={since}");
        assert_eq!(server.send("GET", &path, &[], "").status, 200, "{path}");
    }
    let grown_mib = server.rss_kib().saturating_sub(before) / 1024;
    eprintln!("RSS grew by {grown_mib} MiB over 800 distinct range reads");
    // Two executors, each with an 8 MiB cache budget, plus allocator slack.
    assert!(
        grown_mib < 64,
        "the server's RSS grew by {grown_mib} MiB over distinct event-range reads"
    );
}

#[test]
fn a_full_client_port_answers_503_and_idle_connections_are_closed() {
    let yaml = format!("{NO_PROBING}http:\n  max_connections: 6\n  keepalive_timeout: 2s\n");
    let server = Limited::start(&yaml);
    let mut idle = idle_connections(server.client, 6);
    let refused = one_more(server.client, "GET", "/api/topology/version");
    assert_retry_later(&refused, "http.max_connections");
    // Idle connections are closed after `keepalive_timeout`, freeing their places.
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(6)),
            "an idle connection outlived http.keepalive_timeout"
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || try_request(
            server.client,
            "GET",
            "/api/topology/version",
            &[],
            b""
        )
        .is_ok_and(|r| r.status == 200)),
        "the client port serves again once connections close"
    );
    assert!(server.metric("concord_http_connections_refused_total") >= 1);
}

#[test]
fn a_full_peer_port_answers_503() {
    let yaml = format!("{NO_PROBING}raft:\n  max_peer_connections: 2\n");
    let server = Limited::start(&yaml);
    let _idle = idle_connections(server.peer, 2);
    let refused = one_more(server.peer, "POST", "/raft/vote");
    assert_retry_later(&refused, "raft.max_peer_connections");
    assert!(server.metric("concord_peer_connections_refused_total") >= 1);
}

#[test]
fn a_slowly_sent_head_is_cut_off_on_both_ports_but_idle_connections_stay() {
    let yaml = format!("{NO_PROBING}http:\n  header_read_timeout: 1s\n  keepalive_timeout: 30s\n");
    let server = Limited::start(&yaml);
    for (port, addr, path) in [
        ("client", server.client, "/api/topology/version"),
        ("peer", server.peer, "/raft/vote"),
    ] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
        let (answer, took) = trickle(addr, &head, b"X-Slow: 1\r\n", Duration::from_secs(8))
            .unwrap_or_else(|| panic!("a head trickled to the {port} port was never cut off"));
        assert!(
            took < Duration::from_secs(5)
                && (answer.is_empty() || answer.starts_with("HTTP/1.1 408")),
            "{port} port: cut off after {took:?} with {answer:?}"
        );
    }
    // Idle longer than the head limit, then a whole request: still served.
    let mut idle = TcpStream::connect(server.client).expect("connect");
    std::thread::sleep(Duration::from_millis(2500));
    idle.write_all(b"GET /api/topology/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("an idle connection is still open");
    let mut answer = String::new();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = idle.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[test]
fn a_slowly_sent_peer_body_is_cut_off() {
    // Only keys the server always had: the peer body limit is `raft.snapshot_timeout`.
    let token = "limits-test-peer-token-0123456789";
    let yaml = format!("{NO_PROBING}auth_token: {token}\nraft:\n  snapshot_timeout: 2s\n");
    let server = Limited::start(&yaml);
    let bearer = server.peer_bearer(token);
    let head = format!(
        "POST /raft/append HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\nContent-Length: 100000\r\n\r\n"
    );
    let (answer, took) = trickle(server.peer, &head, b"\0", Duration::from_secs(10))
        .expect("a body trickled to the peer port was never cut off");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {answer:?}"
    );
    assert!(took < Duration::from_secs(6), "cut off only after {took:?}");
}

#[test]
fn a_slowly_sent_client_body_is_cut_off() {
    let yaml = format!("{NO_PROBING}http:\n  body_read_timeout: 1s\n");
    let server = Limited::start(&yaml);
    let head = "PUT /api/topology/nodes/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
    let (answer, took) = trickle(server.client, head, b" ", Duration::from_secs(10))
        .expect("a body trickled to the client port was never cut off");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {answer:?}"
    );
    assert!(answer.contains("http.body_read_timeout"), "{answer:?}");
    assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
}

/// A data node that accepts connections (the kernel does) and never answers.
fn hanging_data_node() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// Health rounds on demand only, against a node whose probe takes the whole timeout.
fn manual_rounds(extra: &str) -> String {
    format!(
        "topology:\n  health_check:\n    interval: 1h\n    timeout: 1s\n    retry_count: 0\n    probe: http\n{extra}"
    )
}

/// `n` clients ask for a health round at once and give up after `patience`; answers
/// the responses that came back in time.
fn impatient_rounds(server: &Limited, n: usize, patience: Duration) -> Vec<Response> {
    let client = server.client;
    let askers: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                request_within(client, "POST", "/api/topology/health", &[], b"", patience).ok()
            })
        })
        .collect();
    askers
        .into_iter()
        .filter_map(|a| a.join().expect("asker thread"))
        .collect()
}

fn register_node(server: &Limited, address: SocketAddr) {
    let body = format!(r#"{{"address":"{address}"}}"#);
    let r = server.send("PUT", "/api/topology/nodes/hanging", &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn abandoned_health_rounds_stop_and_a_full_round_queue_answers_503() {
    // Only keys the server always had: the round queue's bound is built in.
    let server = Limited::start(&manual_rounds(""));
    let node = hanging_data_node();
    register_node(&server, node.local_addr().unwrap());
    // The periodic round at start (no nodes then) is the only one so far.
    let rounds = "concord_health_rounds_total";
    assert!(eventually(Duration::from_secs(5), || server.metric(rounds) >= 1));
    let before = server.metric(rounds);
    let answered = impatient_rounds(&server, 20, Duration::from_millis(300));
    // One round runs, eight wait; the others are refused at once.
    let refused: Vec<_> = answered.iter().filter(|r| r.status == 503).collect();
    assert!(refused.len() >= 10, "{} refused of 20", refused.len());
    for r in refused {
        assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
    }
    // Every caller left after 300 ms: the running round (1 s of probing) is abandoned
    // and the queued ones never start.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.metric(rounds),
        before,
        "a round finished for a caller that had left"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        server.metric(rounds),
        before,
        "rounds ran for callers that had left"
    );
    assert!(server.metric("concord_operations_refused_total") >= 10);
}

#[test]
fn a_full_operation_queue_answers_503_at_once() {
    let server = Limited::start(&manual_rounds("raft:\n  max_pending_operations: 2\n"));
    let node = hanging_data_node();
    register_node(&server, node.local_addr().unwrap());
    let started = Instant::now();
    let answered = impatient_rounds(&server, 10, Duration::from_millis(500));
    let refused: Vec<_> = answered.iter().filter(|r| r.status == 503).collect();
    assert!(refused.len() >= 8, "{} refused of 10", refused.len());
    for r in refused {
        assert_retry_later(r, "raft.max_pending_operations");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // The places are given back: a write goes through once the rounds are gone.
    assert!(eventually(Duration::from_secs(5), || {
        let body = r#"{"address":"10.0.0.9:1"}"#;
        server
            .send("PUT", "/api/topology/nodes/after", &[], body)
            .status
            == 200
    }));
}

#[test]
fn one_address_cannot_hold_every_sse_stream() {
    let yaml = format!(
        "{NO_PROBING}  notifications:\n    max_subscribers_per_address: 2\n    exempt_loopback: false\n"
    );
    let server = Limited::start(&yaml);
    let path = "/api/topology/subscribe";
    let first = SseClient::connect(server.client, path, &[]);
    let second = SseClient::connect(server.client, path, &[]);
    assert_eq!((first.status, second.status), (200, 200));
    let third = SseClient::connect(server.client, path, &[]);
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), Some("1"));
    drop(third);
    drop(first);
    assert!(
        eventually(Duration::from_secs(5), || SseClient::connect(
            server.client,
            path,
            &[]
        )
        .status
            == 200),
        "a closed stream gives its address's place back"
    );
    assert!(server.metric("concord_sse_refused_per_address_total") >= 1);

    // By default loopback clients (the load harness) are held to the global limit only.
    let yaml = format!("{NO_PROBING}  notifications:\n    max_subscribers_per_address: 1\n");
    let server = Limited::start(&yaml);
    let streams: Vec<_> = (0..3)
        .map(|_| SseClient::connect(server.client, path, &[]))
        .collect();
    assert!(streams.iter().all(|s| s.status == 200));
}
