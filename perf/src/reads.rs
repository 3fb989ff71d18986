//! `perf read` and `perf reference`: open-loop reads at a fixed rate, or a ladder of
//! rates to find the peak with P99 under the target; optionally the same load
//! against the may_minihttp reference serving the same bytes, for the ratio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::{self, LoadResult, LoadSpec};
use crate::report::{self, Series};
use crate::server::{self, Server};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReadRoute {
    /// GET /api/topology/version (smallest body)
    Version,
    /// GET /api/topology/shards?shardId=shard-0001
    Shard,
    /// GET /api/topology/snapshot with If-None-Match of the current version → 304
    Snapshot304,
    /// GET /api/topology/snapshot (the whole map: ~16 KB with the sample topology)
    Snapshot,
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    #[arg(long, value_enum, default_value = "version")]
    pub route: ReadRoute,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Climb a ladder of rates and report the highest with P99 under --p99-target-ms.
    #[arg(long)]
    pub max: bool,
    #[arg(long, default_value_t = 5.0)]
    pub p99_target_ms: f64,
    /// Highest rate the ladder tries.
    #[arg(long, default_value_t = 200_000)]
    pub max_rate: u64,
    /// Executors (threads) of the server under test.
    #[arg(long, default_value_t = 1)]
    pub server_executors: usize,
    /// Run the same load against a server already running here instead of starting one.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// Speak TLS to `--target`, trusting this PEM CA (the server's certificate must
    /// carry the target's IP address as a subject alternative name).
    #[arg(long = "tls-ca", value_name = "FILE", requires = "target")]
    pub tls_ca: Option<PathBuf>,
}

fn request_for(route: ReadRoute, addr: SocketAddr) -> Vec<u8> {
    match route {
        ReadRoute::Version => load::get_request(addr, "/api/topology/version", ""),
        ReadRoute::Shard => load::get_request(addr, "/api/topology/shards?shardId=shard-0001", ""),
        ReadRoute::Snapshot => load::get_request(addr, "/api/topology/snapshot", ""),
        ReadRoute::Snapshot304 => {
            let version = concord_testkit::http::get(addr, "/api/topology/version")
                .map(|r| {
                    r.try_json()
                        .and_then(|v| v["version"].as_u64())
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            load::get_request(
                addr,
                "/api/topology/snapshot",
                &format!("If-None-Match: \"{version}\"\r\n"),
            )
        }
    }
}

fn run_at(addr: SocketAddr, request: &[u8], args: &ReadArgs, rate: u64) -> LoadResult {
    let _progress = report::progress(&format!("{rate} req/s"), args.duration);
    load::run(LoadSpec {
        addr,
        request: request.to_vec(),
        rate,
        duration: Duration::from_secs_f64(args.duration),
        connections: args.connections,
        tls: args.tls_ca.as_deref().map(load::tls_config),
    })
}

/// One target's results: a fixed rate, or the ladder.
fn measure(name: &str, addr: SocketAddr, request: &[u8], args: &ReadArgs, out: &Path) -> Value {
    if !args.max {
        let started = Instant::now();
        let r = run_at(addr, request, args, args.rate);
        report::print_table(
            &format!(
                "{name}: {} req/s open loop, {} connections",
                args.rate, args.connections
            ),
            &[
                ("throughput", format!("{:.0} req/s", r.throughput())),
                ("latency", report::latency_row(&r.latency_us)),
                (
                    "sent / completed / errors",
                    format!("{} / {} / {}", r.sent, r.completed, r.errors),
                ),
                (
                    "wall time",
                    format!("{:.1} s", started.elapsed().as_secs_f64()),
                ),
            ],
        );
        report::write_svg(
            &out.join(format!("{name}-latency.svg")),
            &format!("{name}: latency at {} req/s", args.rate),
            "log10(1/(1-percentile))",
            "ms",
            &[report::percentile_series(name, &r.latency_us)],
        );
        return json!({
            "rate": args.rate, "throughput": r.throughput(), "completed": r.completed,
            "errors": r.errors, "latency": report::latency_json(&r.latency_us),
        });
    }
    let mut ladder = Vec::new();
    let mut best: Option<u64> = None;
    let mut max_throughput = 0.0f64;
    let mut misses = 0;
    let mut rate = args.rate;
    // Climb by 1.5x; stop after two consecutive rungs over target (one can be noise).
    while rate <= args.max_rate && misses < 2 {
        let r = run_at(addr, request, args, rate);
        let p99_ms = r.latency_us.value_at_quantile(0.99) as f64 / 1000.0;
        let ok =
            r.errors == 0 && p99_ms <= args.p99_target_ms && r.throughput() >= rate as f64 * 0.95;
        println!(
            "  {name}: rate {rate:>7}  throughput {:>9.0}  p99 {p99_ms:>8.3} ms  errors {}  {}",
            r.throughput(),
            r.errors,
            if ok { "ok" } else { "over" }
        );
        max_throughput = max_throughput.max(r.throughput());
        ladder.push(
            json!({"rate": rate, "throughput": r.throughput(), "errors": r.errors,
                           "latency": report::latency_json(&r.latency_us), "within_target": ok}),
        );
        if ok {
            best = Some(rate);
            misses = 0;
        } else {
            misses += 1;
        }
        rate = (rate as f64 * 1.5) as u64;
    }
    let points = |key: &str| -> Vec<(f64, f64)> {
        ladder
            .iter()
            .map(|p| {
                let y = if key == "p99" {
                    p["latency"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0
                } else {
                    p["throughput"].as_f64().unwrap_or(0.0) / 1000.0
                };
                (p["rate"].as_f64().unwrap_or(0.0) / 1000.0, y)
            })
            .collect()
    };
    report::write_svg(
        &out.join(format!("{name}-throughput.svg")),
        &format!("{name}: throughput vs offered rate"),
        "offered k req/s",
        "k req/s",
        &[Series {
            label: "throughput".into(),
            points: points("throughput"),
        }],
    );
    report::write_svg(
        &out.join(format!("{name}-p99.svg")),
        &format!("{name}: p99 vs offered rate"),
        "offered k req/s",
        "p99 ms",
        &[Series {
            label: "p99".into(),
            points: points("p99"),
        }],
    );
    json!({"peak_rate_within_target": best, "max_throughput": max_throughput,
           "p99_target_ms": args.p99_target_ms, "ladder": ladder})
}

/// `perf read`.
pub fn read(args: &ReadArgs, bin: Option<&Path>, out: &Path) -> Value {
    let (server, addr) = match args.target {
        Some(addr) => (None, addr),
        None => {
            let s = Server::start(
                &server::server_binary(bin),
                args.server_executors,
                &["--dev"],
            );
            let addr = s.addr;
            (Some(s), addr)
        }
    };
    let request = request_for(args.route, addr);
    let result = measure("concord-topo", addr, &request, args, out);
    drop(server);
    let value = json!({"scenario": "read", "route": format!("{:?}", args.route),
                       "server_executors": args.server_executors, "connections": args.connections,
                       "duration_s": args.duration, "concord_topo": result});
    report::write_json(out, "read", value.clone());
    value
}

/// `perf reference`: the same load against concord-topo and against may_minihttp.
pub fn reference(args: &ReadArgs, bin: Option<&Path>, out: &Path) -> Value {
    let server = Server::start(
        &server::server_binary(bin),
        args.server_executors,
        &["--dev"],
    );
    let request = request_for(args.route, server.addr);
    std::fs::create_dir_all(out).expect("report directory");
    let recorded = out.join("reference-answer.http");
    crate::reference::record(server.addr, &request, &recorded);
    let ours = measure("concord-topo", server.addr, &request, args, out);
    drop(server);
    let ref_addr = concord_testkit::free_addr();
    let mut child = start_reference(ref_addr, &recorded, args.server_executors);
    let theirs = measure("may_minihttp", ref_addr, &request, args, out);
    let _ = child.kill();
    let _ = child.wait();
    let key = if args.max {
        "max_throughput"
    } else {
        "throughput"
    };
    let ratio = ours[key].as_f64().unwrap_or(0.0) / theirs[key].as_f64().unwrap_or(f64::NAN);
    report::print_table("ours / reference", &[(key, format!("{ratio:.3}"))]);
    let value = json!({"scenario": "reference", "route": format!("{:?}", args.route),
                       "server_executors": args.server_executors, "concord_topo": ours,
                       "may_minihttp": theirs, "ratio_ours_over_reference": ratio});
    report::write_json(out, "reference", value.clone());
    value
}

fn start_reference(addr: SocketAddr, recorded: &PathBuf, workers: usize) -> Child {
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(["serve-reference", "--addr", &addr.to_string(), "--answer"])
        .arg(recorded)
        .args(["--workers", &workers.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the reference server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the reference server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
