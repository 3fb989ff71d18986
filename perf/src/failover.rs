//! `perf failover`: a 3-server cluster on loopback, the leader SIGKILLed again and
//! again; per kill, the time until a write is acknowledged again (clients retrying
//! every server every 2 ms) and until an SSE subscriber that was streaming from the
//! dead leader has resumed elsewhere and received the first post-kill event.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_testkit::http;
use concord_testkit::process::{initial_cluster, serve_args, Stderr};
use concord_testkit::{free_addr, SseClient, TopoProcess};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::report;
use crate::server::server_binary;

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Leader kills.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

struct Member {
    id: u64,
    client: SocketAddr,
    process: TopoProcess,
}

fn leader_of(members: &[Member]) -> Option<u64> {
    members
        .iter()
        .filter(|m| m.process.is_running())
        .find_map(|m| {
            let r = http::get(m.client, "/api/cluster/status").ok()?;
            r.try_json()?["cluster"]["leader"].as_u64()
        })
}

fn write(addr: SocketAddr, name: &str) -> Option<u64> {
    let r = http::try_request(
        addr,
        "PUT",
        &format!("/api/topology/nodes/{name}"),
        &[],
        br#"{"address":"127.0.0.1:7000"}"#,
    )
    .ok()?;
    (r.status == 200)
        .then(|| r.json()["version"].as_u64())
        .flatten()
}

/// Follows the SSE stream from `servers` in turn, resuming with Last-Event-ID; stores
/// every version it completes in `seen` (the highest) until `stop`.
fn follow(
    servers: Vec<SocketAddr>,
    seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    streaming_from: Arc<Mutex<Option<SocketAddr>>>,
) {
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let addr = servers[next % servers.len()];
        next += 1;
        let last = seen.load(Ordering::Relaxed).to_string();
        let headers = [("Last-Event-ID", last.as_str())];
        let path = "/api/topology/subscribe";
        let mut sub = match SseClient::open(addr, path, &headers, Duration::from_millis(300)) {
            Ok(sub) if sub.status == 200 => sub,
            Ok(_) => continue, // refused (e.g. 503): the next server
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        *streaming_from.lock().unwrap() = Some(addr);
        while !stop.load(Ordering::Relaxed) {
            // The end, a failure, or 300 ms of quiet (a dead server's socket may just go
            // quiet) ends this stream; the loop resumes on the next server.
            let Ok(Some(event)) = sub.read_event(Duration::from_millis(300)) else {
                break;
            };
            if let Some(v) = event.completed_version() {
                seen.fetch_max(v, Ordering::Relaxed);
            }
        }
        *streaming_from.lock().unwrap() = None;
    }
}

/// The peer secret the three measured servers share (loopback only).
const PEER_SECRET: &str = "concord-perf-failover-peer-secret";

pub fn run(args: &FailoverArgs, bin: Option<&Path>, out: &Path) {
    let bin: PathBuf = server_binary(bin);
    let dir = tempfile::Builder::new()
        .prefix("concord-failover-")
        .tempdir()
        .expect("temp dir");
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "topology:\n  health_check:\n    enabled: false\n").expect("config");
    let peers: Vec<(u64, SocketAddr, SocketAddr)> =
        (1..=3).map(|id| (id, free_addr(), free_addr())).collect();
    let initial = initial_cluster(peers.iter().map(|(id, _, peer)| (*id, *peer)));
    let mut members: Vec<Member> = peers
        .iter()
        .map(|(id, client, peer)| {
            let data = dir.path().join(format!("d{id}"));
            let mut args = serve_args(*id, *client, *peer, &data, 1);
            args.extend([
                "--config".to_string(),
                config.display().to_string(),
                "--initial-cluster".to_string(),
                initial.clone(),
            ]);
            Member {
                id: *id,
                client: *client,
                process: TopoProcess::new(bin.clone(), args)
                    .env("CONCORD_PEER_SECRET", PEER_SECRET)
                    .rust_log("error")
                    .stderr(Stderr::Null),
            }
        })
        .collect();
    for m in members.iter_mut() {
        m.process.spawn();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader_of(&members).is_none() {
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let servers: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let mut write_hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut resume_hist = write_hist.clone();
    let mut rows = Vec::new();
    for run in 0..args.runs {
        // Right after an election (or a restart) the leader may not take writes for a
        // moment: retry, re-reading who leads, for a bounded time.
        let started = Instant::now();
        let (leader, leader_addr, base) = loop {
            let leader = wait_leader(&members);
            let addr = members
                .iter()
                .find(|m| m.id == leader)
                .expect("leader")
                .client;
            if let Some(v) = write(addr, &format!("pre-{run}")) {
                break (leader, addr, v);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the leader takes no write"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // A subscriber streaming from the leader (its list starts with the leader).
        let mut order = vec![leader_addr];
        order.extend(servers.iter().filter(|a| **a != leader_addr));
        let seen = Arc::new(AtomicU64::new(base));
        let stop = Arc::new(AtomicBool::new(false));
        let from = Arc::new(Mutex::new(None));
        let follower = {
            let (seen, stop, from) = (seen.clone(), stop.clone(), from.clone());
            std::thread::spawn(move || follow(order, seen, stop, from))
        };
        let t = Instant::now();
        while *from.lock().unwrap() != Some(leader_addr) || seen.load(Ordering::Relaxed) < base {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "subscriber did not start on the leader"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        let killed_at = Instant::now();
        members
            .iter_mut()
            .find(|m| m.id == leader)
            .expect("leader")
            .process
            .kill();
        let survivors: Vec<SocketAddr> = servers
            .iter()
            .copied()
            .filter(|a| *a != leader_addr)
            .collect();
        let (mut acked, mut i) = (None, 0);
        while acked.is_none() {
            assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "no write accepted within 30 s"
            );
            acked = write(survivors[i % survivors.len()], &format!("post-{run}"));
            i += 1;
            if acked.is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let write_after = killed_at.elapsed();
        let first_post = acked.expect("acknowledged");
        while seen.load(Ordering::Relaxed) < first_post {
            assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "subscriber did not resume"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let resumed_after = killed_at.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = follower.join();
        let _ = write_hist.record(write_after.as_micros() as u64);
        let _ = resume_hist.record(resumed_after.as_micros() as u64);
        println!(
            "  run {run:>2}: leader {leader} killed; writes accepted after {:.3} s, subscriber resumed after {:.3} s",
            write_after.as_secs_f64(),
            resumed_after.as_secs_f64()
        );
        rows.push(json!({"run": run, "killed": leader, "write_s": write_after.as_secs_f64(), "resume_s": resumed_after.as_secs_f64()}));
        members
            .iter_mut()
            .find(|m| m.id == leader)
            .expect("leader")
            .process
            .spawn();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(members);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    report::print_table(
        &format!("failover: {} leader kills, 3 servers", args.runs),
        &[
            (
                "writes accepted again",
                format!(
                    "median {:.0} ms  max {:.0} ms",
                    ms(&write_hist, 0.5),
                    write_hist.max() as f64 / 1000.0
                ),
            ),
            (
                "subscriber resumed",
                format!(
                    "median {:.0} ms  max {:.0} ms",
                    ms(&resume_hist, 0.5),
                    resume_hist.max() as f64 / 1000.0
                ),
            ),
        ],
    );
    report::write_json(
        out,
        "failover",
        json!({"scenario": "failover", "runs": args.runs,
               "write_accepted": report::latency_json(&write_hist),
               "subscriber_resumed": report::latency_json(&resume_hist), "each": rows}),
    );
}

fn wait_leader(members: &[Member]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = leader_of(members) {
            if members.iter().any(|m| m.id == l && m.process.is_running()) {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
