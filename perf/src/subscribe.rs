//! `perf subscribe` and `perf memory`: K real SSE subscribers, a paced stream of
//! writes, and per event per subscriber the time from the write leaving the client
//! (and from its acknowledgement) to the event arriving; lost and duplicated events
//! are counted (they must be zero). With `--subscriber-cpus` the subscribers run in
//! a child process pinned apart from the server (`--server-cpus`), and the server's
//! CPU time per delivery is read from `/proc`. When `etcd` is on PATH the same load
//! runs against it for a side-by-side column.

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::etcd::{self, Etcd};
use crate::procstat::{self, mono_ns};
use crate::report;
use crate::server::{self, Server};
use crate::subscribers::{Arrivals, Feed, Io, Subscribers};

#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// Concurrent SSE subscribers.
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: usize,
    /// Writes (each one version with one event).
    #[arg(long, default_value_t = 200)]
    pub writes: usize,
    /// Writes per second.
    #[arg(long, default_value_t = 50.0)]
    pub write_rate: f64,
    /// Executors (threads) of the server under test.
    #[arg(long, default_value_t = 2)]
    pub server_executors: usize,
    /// Data nodes and shards to bootstrap first (0 = the sample topology).
    #[arg(long, default_value_t = 0)]
    pub nodes: usize,
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// Upper bound on the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    pub time_limit: u64,
    /// Pin the server (and etcd) to these CPUs, e.g. `0` (needs --subscriber-cpus).
    #[arg(long, requires = "subscriber_cpus")]
    pub server_cpus: Option<String>,
    /// Run the subscribers in a child process pinned to these CPUs, e.g. `1` (the
    /// writer stays in this process, on the same CPUs).
    #[arg(long)]
    pub subscriber_cpus: Option<String>,
    /// Skip the etcd side-by-side even when `etcd` is on PATH.
    #[arg(long)]
    pub no_etcd: bool,
    /// Write only configuration keys every concord-topo release knows (no `http:`
    /// caps), so `--server-bin` may name a binary from before those keys existed;
    /// keep `--subscribers` under the current defaults' caps (1,000 per address).
    #[arg(long)]
    pub legacy_config: bool,
    /// Seconds to wait before each RSS sample (idle, connected, after the writes), so
    /// that it shows what the server holds rather than a transient peak.
    #[arg(long, default_value_t = 2)]
    pub settle: u64,
    /// How the subscribers wait for their sockets: `epoll` (one thread, as a client
    /// process waits) or `uring` (one glommio executor, one io_uring poll per socket,
    /// as figures before this option were taken; on loopback each delivery then costs
    /// the server ~5 µs more, see `benches/benches/fanout_send.rs`).
    #[arg(long, value_enum, default_value_t = Io::Epoll)]
    pub subscriber_io: Io,
}

/// The outcome of one run.
pub struct Outcome {
    pub report: Value,
    pub lost: u64,
    pub duplicated: u64,
}

/// Where the server and the harness run: the calling thread's CPU mask is switched
/// before each process starts, which then inherits it.
struct Pins {
    server: Option<Vec<usize>>,
    harness: Option<Vec<usize>>,
}

impl Pins {
    fn from_args(args: &SubscribeArgs) -> Pins {
        let parse = |list: &Option<String>| {
            list.as_deref()
                .map(|l| procstat::parse_cpu_list(l).unwrap_or_else(|e| panic!("perf: {e}")))
        };
        Pins {
            server: parse(&args.server_cpus),
            harness: parse(&args.subscriber_cpus),
        }
    }

    /// Subscribers in a child process (pinned or not only by `--subscriber-cpus`).
    fn separate(&self) -> bool {
        self.harness.is_some()
    }

    /// Runs `start` with this thread on the server's CPUs, then moves it to the
    /// harness' CPUs.
    fn start_server<T>(&self, start: impl FnOnce() -> T) -> T {
        pin(self.server.as_deref());
        let started = start();
        pin(self.harness.as_deref());
        started
    }
}

fn pin(cpus: Option<&[usize]>) {
    if let Some(cpus) = cpus {
        procstat::pin_current_thread(cpus)
            .unwrap_or_else(|e| panic!("perf: cannot pin to CPUs {cpus:?}: {e}"));
    }
}

/// One acknowledged write: its version, when it was sent and acknowledged ([`mono_ns`]).
struct Written {
    version: u64,
    sent: u64,
    acked: u64,
}

/// `args.writes` calls of `write(i)` (which returns the committed version) at
/// `args.write_rate`, stopping early at `deadline`.
fn paced_writes(
    args: &SubscribeArgs,
    deadline: Instant,
    what: &str,
    mut write: impl FnMut(usize) -> u64,
) -> Vec<Written> {
    let _progress = report::progress(
        &format!(
            "{what}: {} writes to {} subscribers",
            args.writes, args.subscribers
        ),
        args.writes as f64 / args.write_rate,
    );
    let mut writes = Vec::with_capacity(args.writes);
    let gap = Duration::from_secs_f64(1.0 / args.write_rate);
    let begin = Instant::now();
    for i in 0..args.writes {
        let due = begin + gap.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = mono_ns();
        let version = write(i);
        writes.push(Written {
            version,
            sent,
            acked: mono_ns(),
        });
        if Instant::now() > deadline {
            break;
        }
    }
    writes
}

/// Each write's time from send to acknowledgement: the writer's view, which grows if
/// the answer waits behind the pass that publishes the write.
fn time_to_acknowledge(writes: &[Written]) -> Histogram<u64> {
    let mut took = latency_histogram();
    for w in writes {
        let _ = took.record(micros_between(w.sent, w.acked));
    }
    took
}

/// Microseconds, 1 µs to 60 s, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

/// Microseconds from `from` to `to` ([`mono_ns`] instants), at least 1 (an event that
/// arrived before its answer counts as 1 µs).
fn micros_between(from: u64, to: u64) -> u64 {
    (to.saturating_sub(from) / 1_000).max(1)
}

/// Latencies and loss over every subscriber's arrivals.
///
/// The commit of a version lies between its write's send and its acknowledgement, so
/// `from_send` bounds commit → delivered from above and `from_ack` from below. The
/// acknowledgement may itself wait behind the pass that delivers the version (one
/// executor answers the writer and walks the sockets), which makes `from_ack` flatter
/// the longer the pass. `from_first`, the delay after the version's earliest arrival
/// at any subscriber, is a lower bound that does not depend on the answer: it is how
/// long the pass took to reach each subscriber once it had started.
struct Deliveries {
    from_send: Histogram<u64>,
    from_ack: Histogram<u64>,
    from_first: Histogram<u64>,
    lost: u64,
    duplicated: u64,
}

impl Deliveries {
    /// `expected`: the versions every subscriber must see, ascending.
    fn count(arrivals: &Arrivals, writes: &[Written], expected: &[u64]) -> Deliveries {
        let mut from_send = latency_histogram();
        let mut from_ack = latency_histogram();
        let mut from_first = latency_histogram();
        let (mut lost, mut duplicated) = (0u64, 0u64);
        let by_version: std::collections::HashMap<u64, &Written> =
            writes.iter().map(|w| (w.version, w)).collect();
        let mut first_arrival = std::collections::HashMap::<u64, u64>::new();
        for (version, at) in arrivals.iter().flatten() {
            let first = first_arrival.entry(*version).or_insert(*at);
            *first = (*first).min(*at);
        }
        for seen in arrivals {
            let mut got: Vec<u64> = seen.iter().map(|(v, _)| *v).collect();
            let total = got.len();
            got.sort_unstable();
            got.dedup();
            duplicated += (total - got.len()) as u64;
            lost += expected
                .iter()
                .filter(|v| got.binary_search(v).is_err())
                .count() as u64;
            for (version, at) in seen {
                if let Some(w) = by_version.get(version) {
                    let _ = from_send.record(micros_between(w.sent, *at));
                    let _ = from_ack.record(micros_between(w.acked, *at));
                    let _ = from_first.record(micros_between(first_arrival[version], *at));
                }
            }
        }
        Deliveries {
            from_send,
            from_ack,
            from_first,
            lost,
            duplicated,
        }
    }

    fn deliveries(&self) -> u64 {
        self.from_send.len()
    }
}

/// CPU seconds and read/write syscalls of the server and the subscribers' process.
#[derive(Clone, Copy, Default)]
struct Usage {
    server_cpu: f64,
    server_syscalls: u64,
    subscriber_cpu: f64,
}

impl Usage {
    fn sample(server: u32, subscribers: u32) -> Usage {
        Usage {
            server_cpu: procstat::cpu_seconds(server),
            server_syscalls: procstat::rw_syscalls(server),
            subscriber_cpu: procstat::cpu_seconds(subscribers),
        }
    }

    /// Per delivery over the phase from `self` to `after`: (server CPU µs, server
    /// read/write syscalls, subscriber-side CPU µs).
    fn per_delivery(&self, after: &Usage, deliveries: u64) -> Value {
        let n = deliveries.max(1) as f64;
        json!({
            "server_cpu_seconds": after.server_cpu - self.server_cpu,
            "server_cpu_us_per_delivery": (after.server_cpu - self.server_cpu) * 1e6 / n,
            "server_rw_syscalls_per_delivery": after.server_syscalls.saturating_sub(self.server_syscalls) as f64 / n,
            "subscriber_cpu_seconds": after.subscriber_cpu - self.subscriber_cpu,
            "subscriber_cpu_us_per_delivery": (after.subscriber_cpu - self.subscriber_cpu) * 1e6 / n,
        })
    }
}

/// The process under test and what its subscribers stream.
struct Target<'a> {
    addr: std::net::SocketAddr,
    pid: u32,
    feed: Feed,
    /// Label of the progress line.
    name: &'a str,
}

/// The measured phase against one server process: subscribers connected, paced
/// writes, every subscriber drained.
struct Phase {
    deliveries: Deliveries,
    writes: Vec<Written>,
    rss_connected: u64,
    cost: Value,
}

/// `write(i)` returns the committed version; `expected` turns the writes into the
/// versions every subscriber must see, ascending.
fn measure(
    args: &SubscribeArgs,
    pins: &Pins,
    deadline: Instant,
    target: &Target<'_>,
    write: impl FnMut(usize) -> u64,
    expected: impl FnOnce(&[Written]) -> Vec<u64>,
) -> Phase {
    let mut subscribers = Subscribers::start(
        target.addr,
        args.subscribers,
        target.feed.clone(),
        deadline,
        pins.separate(),
        args.subscriber_io,
    );
    subscribers.wait_connected(deadline);
    let rss_connected = settled_rss(args, target.pid);
    let subscriber_pid = subscribers.pid();
    let before = Usage::sample(target.pid, subscriber_pid);
    let writes = paced_writes(args, deadline, target.name, write);
    let last = writes.last().map_or(0, |w| w.version);
    let finished = subscribers.finish(last);
    let mut after = Usage::sample(target.pid, subscriber_pid);
    if let Some(cpu) = finished.child_cpu_seconds {
        after.subscriber_cpu = cpu;
    }
    let deliveries = Deliveries::count(&finished.arrivals, &writes, &expected(&writes));
    let cost = before.per_delivery(&after, deliveries.deliveries());
    Phase {
        deliveries,
        writes,
        rss_connected,
        cost,
    }
}

/// The server's RSS after `--settle` seconds.
fn settled_rss(args: &SubscribeArgs, pid: u32) -> u64 {
    std::thread::sleep(Duration::from_secs(args.settle));
    server::rss_bytes(pid)
}

pub fn run(args: &SubscribeArgs, bin: Option<&Path>, out: &Path, name: &str) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let pins = Pins::from_args(args);
    let dev: &[&str] = if args.nodes == 0 { &["--dev"] } else { &[] };
    let config = if args.legacy_config {
        server::LEGACY_CONFIG
    } else {
        server::PERF_CONFIG
    };
    let server = pins.start_server(|| {
        let bin = server::server_binary(bin);
        Server::start_with_config(&bin, args.server_executors, config, dev)
    });
    if args.nodes > 0 {
        server::bootstrap(server.addr, args.nodes, args.shards);
    }
    let server_cpus = procstat::allowed_cpus(server.pid());
    let rss_idle = settled_rss(args, server.pid());
    let start_version = concord_testkit::http::get(server.addr, "/api/topology/version")
        .expect("version")
        .json()["version"]
        .as_u64()
        .unwrap_or(0);
    let addr = server.addr;
    let target = Target {
        addr,
        pid: server.pid(),
        feed: Feed::Concord {
            since: start_version,
        },
        name,
    };
    let write = |i: usize| {
        let body = br#"{"address":"127.0.0.1:7000"}"#;
        let path = format!("/api/topology/nodes/perf-{i}");
        let r = concord_testkit::http::try_request(addr, "PUT", &path, &[], body).expect("write");
        assert_eq!(
            r.status,
            200,
            "write refused: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["version"].as_u64().expect("version")
    };
    let every_version_since_start = |writes: &[Written]| {
        ((start_version + 1)..=writes.last().map_or(start_version, |w| w.version)).collect()
    };
    let ours = measure(
        args,
        &pins,
        deadline,
        &target,
        write,
        every_version_since_start,
    );
    let rss_after = settled_rss(args, server.pid());
    drop(server);
    let etcd = if args.no_etcd {
        Err("--no-etcd".to_string())
    } else {
        etcd_side_by_side(args, &pins, deadline)
    };

    let d = &ours.deliveries;
    let per_delivery = |phase: &Phase| {
        format!(
            "{:.1} µs CPU, {:.2} read/write syscalls (server); {:.1} µs CPU (subscribers)",
            phase.cost["server_cpu_us_per_delivery"]
                .as_f64()
                .unwrap_or(0.0),
            phase.cost["server_rw_syscalls_per_delivery"]
                .as_f64()
                .unwrap_or(0.0),
            phase.cost["subscriber_cpu_us_per_delivery"]
                .as_f64()
                .unwrap_or(0.0),
        )
    };
    let acknowledged = time_to_acknowledge(&ours.writes);
    let mut rows = vec![
        (
            "write sent → acknowledged",
            report::latency_row(&acknowledged),
        ),
        (
            "write sent → event delivered",
            report::latency_row(&d.from_send),
        ),
        (
            "write acknowledged → delivered",
            report::latency_row(&d.from_ack),
        ),
        (
            "first arrival → delivered",
            report::latency_row(&d.from_first),
        ),
        ("deliveries", d.deliveries().to_string()),
        (
            "lost / duplicated",
            format!("{} / {}", d.lost, d.duplicated),
        ),
        ("per delivery", per_delivery(&ours)),
        (
            "server RSS idle / connected / after",
            format!(
                "{:.1} / {:.1} / {:.1} MiB",
                rss_idle as f64 / 1048576.0,
                ours.rss_connected as f64 / 1048576.0,
                rss_after as f64 / 1048576.0
            ),
        ),
        (
            "CPUs: server / subscribers",
            format!(
                "{server_cpus} / {} (subscribers wait with {:?})",
                args.subscriber_cpus.as_deref().unwrap_or("same process"),
                args.subscriber_io
            ),
        ),
    ];
    let etcd_json = match &etcd {
        Ok((version, phase)) => {
            let e = &phase.deliveries;
            rows.push(("etcd version", version.clone()));
            rows.push((
                "etcd: acknowledged → delivered",
                report::latency_row(&e.from_ack),
            ));
            rows.push((
                "acked → delivered p99: ours / etcd",
                format!(
                    "{:.3} ms / {:.3} ms",
                    d.from_ack.value_at_quantile(0.99) as f64 / 1000.0,
                    e.from_ack.value_at_quantile(0.99) as f64 / 1000.0
                ),
            ));
            rows.push((
                "etcd: deliveries, lost / dup",
                format!("{}, {} / {}", e.deliveries(), e.lost, e.duplicated),
            ));
            rows.push(("etcd: per delivery", per_delivery(phase)));
            json!({
                "version": version, "writes": phase.writes.len(),
                "sent_to_delivered": report::latency_json(&e.from_send),
                "acked_to_delivered": report::latency_json(&e.from_ack),
                "lost": e.lost, "duplicated": e.duplicated, "cost": phase.cost,
            })
        }
        Err(skipped) => {
            println!("  etcd: skipped ({skipped})");
            json!({ "skipped": skipped })
        }
    };
    report::print_table(
        &format!(
            "{name}: {} subscribers, {} writes at {}/s",
            args.subscribers,
            ours.writes.len(),
            args.write_rate
        ),
        &rows,
    );
    let mut series = vec![
        report::percentile_series("sent→delivered", &d.from_send),
        report::percentile_series("acked→delivered", &d.from_ack),
        report::percentile_series("first arrival→delivered", &d.from_first),
    ];
    if let Ok((_, phase)) = &etcd {
        series.push(report::percentile_series(
            "etcd acked→delivered",
            &phase.deliveries.from_ack,
        ));
    }
    report::write_svg(
        &out.join(format!("{name}-latency.svg")),
        &format!(
            "{name}: commit to delivery, {} subscribers",
            args.subscribers
        ),
        "log10(1/(1-percentile))",
        "ms",
        &series,
    );
    let report = json!({
        "scenario": name, "subscribers": args.subscribers, "writes": ours.writes.len(),
        "write_rate": args.write_rate, "server_executors": args.server_executors,
        "nodes": args.nodes, "shards": args.shards,
        "server_cpus": server_cpus, "subscriber_cpus": args.subscriber_cpus,
        "subscriber_io": format!("{:?}", args.subscriber_io).to_lowercase(),
        "legacy_config": args.legacy_config,
        "sent_to_acknowledged": report::latency_json(&acknowledged),
        "sent_to_delivered": report::latency_json(&d.from_send),
        "acked_to_delivered": report::latency_json(&d.from_ack),
        "first_arrival_to_delivered": report::latency_json(&d.from_first),
        "lost": d.lost, "duplicated": d.duplicated,
        "cost": ours.cost,
        "server_rss_bytes": {"idle": rss_idle, "subscribers_connected": ours.rss_connected, "after_writes": rss_after},
        "etcd": etcd_json,
    });
    report::write_json(out, name, report.clone());
    let lost = d.lost + etcd.as_ref().map_or(0, |(_, p)| p.deliveries.lost);
    let duplicated = d.duplicated + etcd.as_ref().map_or(0, |(_, p)| p.deliveries.duplicated);
    Outcome {
        report,
        lost,
        duplicated,
    }
}

/// The same subscribers and writes against etcd (on the server's CPUs): its version
/// and the phase, or why it was skipped.
fn etcd_side_by_side(
    args: &SubscribeArgs,
    pins: &Pins,
    deadline: Instant,
) -> Result<(String, Phase), String> {
    let bin = etcd::binary().ok_or_else(|| {
        "no `etcd` on PATH; install it (Debian: etcd-server) for the side-by-side".to_string()
    })?;
    let etcd = pins.start_server(|| Etcd::start(&bin));
    let prefix = "perf/";
    let target = Target {
        addr: etcd.addr,
        pid: etcd.pid(),
        feed: Feed::Etcd {
            prefix: prefix.to_string(),
        },
        name: "etcd",
    };
    let write = |i: usize| etcd.put(&format!("{prefix}{i}"), "127.0.0.1:7000");
    let the_writes = |writes: &[Written]| writes.iter().map(|w| w.version).collect();
    let phase = measure(args, pins, deadline, &target, write, the_writes);
    Ok((etcd.version.clone(), phase))
}
