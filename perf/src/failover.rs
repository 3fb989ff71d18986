//! `perf failover`: a 3-server cluster on loopback, the leader SIGKILLed again and
//! again; per kill, the time until a write is acknowledged again (clients retrying
//! every server every 2 ms) and until an SSE subscriber that was streaming from the
//! dead leader has resumed elsewhere and received the first post-kill event.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::report;
use crate::server::{free_addr, server_binary};
use crate::subscribe::SseParser;

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Leader kills.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

struct Member {
    id: u64,
    client: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
}

impl Member {
    fn spawn(&mut self, bin: &Path) {
        let child = Command::new(bin)
            .args(&self.args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start concord-topo");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn leader_of(members: &[Member]) -> Option<u64> {
    members.iter().filter(|m| m.child.is_some()).find_map(|m| {
        let r = crate::http::get(m.client, "/api/cluster/status").ok()?;
        r.json()["cluster"]["leader"].as_u64()
    })
}

fn write(addr: SocketAddr, name: &str) -> Option<u64> {
    let r = crate::http::request(
        addr,
        "PUT",
        &format!("/api/topology/nodes/{name}"),
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
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let last = seen.load(Ordering::Relaxed);
        let request = format!(
            "GET /api/topology/subscribe HTTP/1.1\r\nHost: {addr}\r\nLast-Event-ID: {last}\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_err() {
            continue;
        }
        *streaming_from.lock().unwrap() = Some(addr);
        let mut parser = SseParser::default();
        let mut buf = [0u8; 16 * 1024];
        let mut quiet = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    quiet = Instant::now();
                    parser.feed(&buf[..n], |v| {
                        seen.fetch_max(v, Ordering::Relaxed);
                    });
                    if parser.rejected() {
                        break;
                    }
                }
                // A dead server's socket may just go quiet: give up on it after 300 ms.
                Err(_) if quiet.elapsed() < Duration::from_millis(300) => {}
                Err(_) => break,
            }
        }
        *streaming_from.lock().unwrap() = None;
    }
}

pub fn run(args: &FailoverArgs, bin: Option<&Path>, out: &Path) {
    let bin: PathBuf = server_binary(bin);
    let dir = std::env::temp_dir().join(format!("concord-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("c.yaml");
    std::fs::write(&config, "topology:\n  health_check:\n    enabled: false\n").expect("config");
    let peers: Vec<(u64, SocketAddr, SocketAddr)> =
        (1..=3).map(|id| (id, free_addr(), free_addr())).collect();
    let initial: Vec<String> = peers.iter().map(|(id, _, p)| format!("{id}={p}")).collect();
    let mut members: Vec<Member> = peers
        .iter()
        .map(|(id, client, peer)| Member {
            id: *id,
            client: *client,
            args: vec![
                "--config".into(),
                config.display().to_string(),
                "--node-id".into(),
                id.to_string(),
                "--client-addr".into(),
                client.to_string(),
                "--peer-addr".into(),
                peer.to_string(),
                "--initial-cluster".into(),
                initial.join(","),
                "--data-dir".into(),
                dir.join(format!("d{id}")).display().to_string(),
                "--executors".into(),
                "1".into(),
            ],
            child: None,
        })
        .collect();
    for m in members.iter_mut() {
        m.spawn(&bin);
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
            .spawn(&bin);
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
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
            if members.iter().any(|m| m.id == l && m.child.is_some()) {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
