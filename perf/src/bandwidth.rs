//! `perf bandwidth`: bytes a client receives to follow a run of single-shard changes,
//! by refetching the full snapshot after each change (identity and gzip) versus by
//! following the SSE stream of incremental events.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::http;
use serde_json::{json, Value};

use crate::report;
use crate::server::{self, Server};

#[derive(Debug, clap::Args)]
pub struct BandwidthArgs {
    /// Single-shard changes to follow.
    #[arg(long, default_value_t = 100)]
    pub changes: usize,
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 16_384)]
    pub shards: usize,
}

/// The gzip-encoded snapshot's body size.
fn gzip_len(addr: std::net::SocketAddr) -> u64 {
    let gzip = [("Accept-Encoding", "gzip")];
    let r = http::try_request(addr, "GET", "/api/topology/snapshot", &gzip, b"").expect("snapshot");
    r.body.len() as u64
}

pub fn run(args: &BandwidthArgs, bin: Option<&Path>, out: &Path) -> Value {
    let server = Server::start(&server::server_binary(bin), 2, &[]);
    let addr = server.addr;
    server::bootstrap(addr, args.nodes, args.shards);
    let snapshot = http::get(addr, "/api/topology/snapshot").expect("snapshot");
    let full_identity = snapshot.body.len() as u64;
    let full_gzip = gzip_len(addr);
    let version = snapshot.json()["version"].as_u64().unwrap_or(0);
    let shard_ids: Vec<String> = snapshot.json()["snapshot"]["shardMap"]
        .as_object()
        .map(|m| m.keys().take(args.changes.max(1)).cloned().collect())
        .unwrap_or_default();

    // One SSE subscriber counting every byte after the response head.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r2, s2) = (received.clone(), stop.clone());
    let reader = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200))).ok();
        s.write_all(format!("GET /api/topology/subscribe?sinceVersion={version} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .expect("subscribe");
        let mut buf = vec![0u8; 64 * 1024];
        let mut head_skipped = false;
        let mut head = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if head_skipped => {
                    r2.fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head_skipped = true;
                        r2.fetch_add((head.len() - end - 4) as u64, Ordering::Relaxed);
                    }
                }
                Err(_) => {}
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut last = version;
    for (i, id) in shard_ids.iter().enumerate().take(args.changes) {
        let status = if i % 2 == 0 { "readonly" } else { "active" };
        let r = http::try_request(
            addr,
            "PUT",
            &format!("/api/topology/shards/{id}"),
            &[],
            format!(r#"{{"status":"{status}"}}"#).as_bytes(),
        )
        .expect("write");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        last = r.json()["version"].as_u64().unwrap_or(last);
    }
    // Wait until the stream has carried the last version (its id line), bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let settled = loop {
        let before = received.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        if received.load(Ordering::Relaxed) == before || Instant::now() > deadline {
            break received.load(Ordering::Relaxed);
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    drop(server);
    let changes = (last - version) as f64;
    let full_total = full_identity as f64 * changes;
    let gzip_total = full_gzip as f64 * changes;
    let saved = 1.0 - settled as f64 / full_total;
    let saved_vs_gzip = 1.0 - settled as f64 / gzip_total;
    report::print_table(
        &format!(
            "bandwidth: {} single-shard changes on {} nodes / {} shards",
            changes, args.nodes, args.shards
        ),
        &[
            (
                "full snapshot, identity",
                format!("{full_identity} B each, {full_total:.0} B total"),
            ),
            (
                "full snapshot, gzip",
                format!("{full_gzip} B each, {gzip_total:.0} B total"),
            ),
            (
                "incremental SSE events",
                format!(
                    "{settled} B total ({:.0} B per change)",
                    settled as f64 / changes
                ),
            ),
            (
                "saved vs identity / vs gzip",
                format!("{:.3}% / {:.3}%", saved * 100.0, saved_vs_gzip * 100.0),
            ),
        ],
    );
    let value = json!({"scenario": "bandwidth", "changes": changes, "nodes": args.nodes, "shards": args.shards,
        "full_snapshot_bytes": full_identity, "full_snapshot_gzip_bytes": full_gzip,
        "incremental_bytes": settled, "saved_vs_identity": saved, "saved_vs_gzip": saved_vs_gzip});
    report::write_json(out, "bandwidth", value.clone());
    value
}
