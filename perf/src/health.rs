//! `perf health`: the leader probes N simulated data nodes (real loopback listeners on
//! a glommio executor of this process) every `interval`; reports the server's CPU with
//! probing on and off, probe latency (exact, from a manual round, and from `/metrics`
//! over the steady window), how the probes spread over the interval, and how quickly
//! and in how many versions K failing nodes are detected and recovered.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use concord_testkit::http;

use crate::procstat::cpu_seconds;
use crate::{report, server};

#[derive(Args, Clone, Debug)]
pub struct HealthArgs {
    /// Simulated data nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// `topology.health_check.interval`, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Steady-state measurement window, seconds (with probing, and again without).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Nodes switched to answering 500 for the detection phase.
    #[arg(long, default_value_t = 10)]
    pub failing: usize,
    /// Probe timeout, milliseconds (at most the interval).
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_probes: usize,
    #[arg(long, default_value_t = 2)]
    pub executors: usize,
}

/// The simulated data nodes, as the measuring thread sees them.
struct Fleet {
    addrs: Vec<SocketAddr>,
    failing: Vec<Arc<AtomicBool>>,
    requests: Arc<AtomicU64>,
    /// Arrival times of probes while `recording` is set.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    recording: Arc<AtomicBool>,
}

/// Starts `n` listeners answering `GET /health` (200, or 500 when told) on a glommio
/// executor thread that lives until the process exits.
fn start_fleet(n: usize) -> Fleet {
    let failing: Vec<Arc<AtomicBool>> = (0..n).map(|_| Arc::default()).collect();
    let requests = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let recording = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flags = failing.clone();
    let (req, arr, rec) = (requests.clone(), arrivals.clone(), recording.clone());
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .name("data-nodes")
        .spawn(move || async move {
            let mut addrs = Vec::with_capacity(flags.len());
            for flag in flags {
                let listener =
                    glommio::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
                addrs.push(listener.local_addr().expect("bound"));
                let (req, arr, rec) = (req.clone(), arr.clone(), rec.clone());
                let flag = flag.clone();
                glommio::spawn_local(async move {
                    while let Ok(mut stream) = listener.accept().await {
                        let flag = flag.clone();
                        let (req, arr, rec) = (req.clone(), arr.clone(), rec.clone());
                        glommio::spawn_local(async move {
                            let mut buf = vec![0u8; 1024];
                            let mut got = 0;
                            while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                                match stream.read(&mut buf[got..]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => got += n,
                                }
                                if got == buf.len() {
                                    return;
                                }
                            }
                            req.fetch_add(1, Ordering::Relaxed);
                            if rec.load(Ordering::Relaxed) {
                                arr.lock().unwrap().push(Instant::now());
                            }
                            let answer: &[u8] = if flag.load(Ordering::Relaxed) {
                                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            } else {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                            };
                            let _ = stream.write_all(answer).await;
                            let _ = stream.close().await;
                        })
                        .detach();
                    }
                })
                .detach();
            }
            tx.send(addrs).expect("report the addresses");
            // Serve until the process exits.
            futures_lite::future::pending::<()>().await;
        })
        .expect("a glommio executor for the data nodes");
    let addrs = rx.recv().expect("the data nodes listen");
    Fleet {
        addrs,
        failing,
        requests,
        arrivals,
        recording,
    }
}

fn start_server(bin: &Path, args: &HealthArgs, enabled: bool) -> (server::Server, SocketAddr) {
    let yaml = format!(
        "topology:\n  health_check:\n    enabled: {enabled}\n    interval: {}ms\n    timeout: {}ms\n    retry_count: 2\n    failure_threshold: 3\n    success_threshold: 2\n    max_concurrent_probes: {}\n",
        args.interval_ms,
        args.timeout_ms.min(args.interval_ms),
        args.max_concurrent_probes
    );
    let s = server::Server::start_with_config(bin, args.executors, &yaml, &[]);
    let addr = s.addr;
    (s, addr)
}

fn register_all(addr: SocketAddr, fleet: &Fleet) {
    let ops: Vec<String> = fleet
        .addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!(r#"{{"op":"registerNode","nodeId":"dn-{i:04}","address":"{a}"}}"#))
        .collect();
    let body = format!(r#"{{"operations":[{}]}}"#, ops.join(","));
    let r = http::try_request(addr, "POST", "/api/topology/batch", &[], body.as_bytes())
        .expect("register");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn stats(addr: SocketAddr) -> Value {
    http::get(addr, "/api/topology/stats")
        .expect("stats")
        .json()
}

fn count(addr: SocketAddr, health: &str) -> u64 {
    stats(addr)["nodesByHealth"][health].as_u64().unwrap_or(0)
}

/// Polls until `done` holds; the time it took (None past `limit`).
fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn version(addr: SocketAddr) -> u64 {
    stats(addr)["version"].as_u64().unwrap_or(0)
}

/// Count and sum of the probe-duration histogram in `/metrics`.
fn probe_histogram(addr: SocketAddr) -> (u64, f64, Vec<(f64, u64)>) {
    let text = String::from_utf8(http::get(addr, "/metrics").expect("metrics").body).unwrap();
    let mut buckets = Vec::new();
    let (mut count, mut sum) = (0, 0.0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("concord_health_probe_duration_seconds_bucket{le=\"")
        {
            let (le, n) = rest.split_once("\"} ").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.push((le, n.parse().unwrap()));
        } else if let Some(v) = line.strip_prefix("concord_health_probe_duration_seconds_count ") {
            count = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("concord_health_probe_duration_seconds_sum ") {
            sum = v.parse().unwrap();
        }
    }
    (count, sum, buckets)
}

/// The smallest bucket bound holding quantile `q` of the observations between two scrapes.
fn bucket_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let total = after.last().map_or(0, |b| b.1) - before.last().map_or(0, |b| b.1);
    let want = (total as f64 * q).ceil() as u64;
    after
        .iter()
        .zip(before)
        .find(|((_, a), (_, b))| a - b >= want)
        .map_or(f64::INFINITY, |((le, _), _)| *le)
}

pub fn run(args: &HealthArgs, bin: Option<&Path>, out: &Path) -> Value {
    let bin = server::server_binary(bin);
    let interval = Duration::from_millis(args.interval_ms);
    let fleet = start_fleet(args.nodes);
    let limit = interval * 20 + Duration::from_secs(10);

    // Baseline: the same topology, probing off.
    let (base, addr) = start_server(&bin, args, false);
    register_all(addr, &fleet);
    let c0 = cpu_seconds(base.pid());
    std::thread::sleep(Duration::from_secs(args.seconds));
    let baseline_cpu = (cpu_seconds(base.pid()) - c0) / args.seconds as f64;
    drop(base);

    let (srv, addr) = start_server(&bin, args, true);
    let registered = Instant::now();
    register_all(addr, &fleet);
    let all_healthy =
        wait(limit, || count(addr, "healthy") == args.nodes as u64).map(|_| registered.elapsed());

    // Steady state: every node passes every round; nothing is committed.
    let (v0, c0, r0) = (
        version(addr),
        cpu_seconds(srv.pid()),
        fleet.requests.load(Ordering::Relaxed),
    );
    let (_, _, h0) = probe_histogram(addr);
    let (n0, s0, _) = probe_histogram(addr);
    fleet.recording.store(true, Ordering::Relaxed);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let elapsed = window.elapsed().as_secs_f64();
    fleet.recording.store(false, Ordering::Relaxed);
    let probing_cpu = (cpu_seconds(srv.pid()) - c0) / elapsed;
    let probes = fleet.requests.load(Ordering::Relaxed) - r0;
    let steady_versions = version(addr) - v0;
    let (n1, s1, h1) = probe_histogram(addr);
    let mean_us = if n1 > n0 {
        (s1 - s0) / (n1 - n0) as f64 * 1e6
    } else {
        0.0
    };
    let p50_bucket = bucket_quantile(&h0, &h1, 0.50);
    let p99_bucket = bucket_quantile(&h0, &h1, 0.99);
    // How the probes spread: the busiest 10 ms against the average 10 ms.
    let arrivals = std::mem::take(&mut *fleet.arrivals.lock().unwrap());
    let mut per_10ms = std::collections::HashMap::<u128, u64>::new();
    for a in &arrivals {
        *per_10ms.entry((*a - window).as_millis() / 10).or_default() += 1;
    }
    let peak_10ms = per_10ms.values().copied().max().unwrap_or(0);
    let mean_10ms = arrivals.len() as f64 / (elapsed * 100.0);

    // One manual round: every node at once (bounded by max_concurrent_probes), exact latencies.
    let started = Instant::now();
    let manual =
        http::try_request(addr, "POST", "/api/topology/health", &[], b"").expect("manual round");
    let manual_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        manual.status,
        200,
        "{}",
        String::from_utf8_lossy(&manual.body)
    );
    let mut exact = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for r in manual.json()["results"].as_array().expect("results") {
        exact
            .record(r["latencyUs"].as_u64().unwrap_or(0).max(1))
            .expect("in range");
    }

    // Detection: K nodes start answering 500, then recover.
    let k = args.failing.min(args.nodes);
    let v_fail = version(addr);
    let failed_at = Instant::now();
    for flag in &fleet.failing[..k] {
        flag.store(true, Ordering::Relaxed);
    }
    let to_degraded = wait(limit, || {
        count(addr, "degraded") + count(addr, "unhealthy") == k as u64
    });
    let to_unhealthy =
        wait(limit, || count(addr, "unhealthy") == k as u64).map(|_| failed_at.elapsed());
    let failure_versions = version(addr) - v_fail;
    let v_rec = version(addr);
    let recovered_at = Instant::now();
    for flag in &fleet.failing[..k] {
        flag.store(false, Ordering::Relaxed);
    }
    let to_healthy =
        wait(limit, || count(addr, "healthy") == args.nodes as u64).map(|_| recovered_at.elapsed());
    let recovery_versions = version(addr) - v_rec;
    drop(srv);

    let ms = |d: Option<Duration>| d.map_or(-1.0, |d| d.as_secs_f64() * 1000.0);
    let value = json!({
        "nodes": args.nodes,
        "interval_ms": args.interval_ms,
        "seconds": args.seconds,
        "executors": args.executors,
        "max_concurrent_probes": args.max_concurrent_probes,
        "server_cpu_cores": { "probing": probing_cpu, "baseline_probing_off": baseline_cpu },
        "first_round_all_healthy_ms": ms(all_healthy),
        "steady": {
            "probes": probes,
            "probes_per_second": probes as f64 / elapsed,
            "versions_committed": steady_versions,
            "latency_mean_us": mean_us,
            "latency_p50_bucket_s": p50_bucket,
            "latency_p99_bucket_s": p99_bucket,
            "peak_probes_per_10ms": peak_10ms,
            "mean_probes_per_10ms": mean_10ms,
        },
        "manual_round": { "wall_ms": manual_ms, "latency": report::latency_json(&exact) },
        "failure": {
            "failing_nodes": k,
            "all_degraded_ms": ms(to_degraded),
            "all_unhealthy_ms": ms(to_unhealthy),
            "versions_committed": failure_versions,
            "recovered_ms": ms(to_healthy),
            "recovery_versions": recovery_versions,
        },
    });
    report::print_table(
        &format!("health: {} data nodes probed every {} ms", args.nodes, args.interval_ms),
        &[
            ("server CPU, probing", format!("{:.1} % of one core", probing_cpu * 100.0)),
            ("server CPU, probing off", format!("{:.1} % of one core", baseline_cpu * 100.0)),
            ("probes/s (steady)", format!("{:.0}", probes as f64 / elapsed)),
            ("versions while steady", steady_versions.to_string()),
            ("probe latency (steady)", format!("mean {mean_us:.0} µs, p50 ≤ {p50_bucket} s, p99 ≤ {p99_bucket} s (buckets)")),
            ("manual round, all nodes", format!("{manual_ms:.1} ms wall; {}", report::latency_row(&exact))),
            ("probe spread", format!("peak {peak_10ms} per 10 ms, mean {mean_10ms:.1}")),
            ("first round: all healthy", format!("{:.0} ms", ms(all_healthy))),
            (
                "failing nodes",
                format!(
                    "{k}: all degraded in {:.0} ms, unhealthy in {:.0} ms, {failure_versions} versions; healthy again in {:.0} ms, {recovery_versions} versions",
                    ms(to_degraded), ms(to_unhealthy), ms(to_healthy)
                ),
            ),
        ],
    );
    report::write_json(out, "health", value.clone());
    value
}
