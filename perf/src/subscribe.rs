//! `perf subscribe` and `perf memory`: K real SSE subscribers (one glommio executor
//! in this process), a stream of writes from another thread, and per event per
//! subscriber the time from the write leaving the client to the event arriving.
//! Lost and duplicated events are counted (they must be zero).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::SseDecoder;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::report;
use crate::server::{self, Server};

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
}

/// What the subscriber side saw: per subscriber, (version, arrival) in arrival order.
type Arrivals = Vec<Vec<(u64, Instant)>>;

/// The outcome of one run.
pub struct Outcome {
    pub report: Value,
    pub lost: u64,
    pub duplicated: u64,
}

pub fn run(args: &SubscribeArgs, bin: Option<&Path>, out: &Path, name: &str) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let dev: &[&str] = if args.nodes == 0 { &["--dev"] } else { &[] };
    let server = Server::start(&server::server_binary(bin), args.server_executors, dev);
    if args.nodes > 0 {
        server::bootstrap(server.addr, args.nodes, args.shards);
    }
    let rss_idle = server::rss_bytes(server.pid());
    let start_version = concord_testkit::http::get(server.addr, "/api/topology/version")
        .expect("version")
        .json()["version"]
        .as_u64()
        .unwrap_or(0);
    let connected = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let addr = server.addr;
    let subscribers = args.subscribers;
    let (c2, t2) = (connected.clone(), target.clone());
    let receiver = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            subscribe_all(addr, subscribers, start_version, c2, t2, deadline).await
        })
        .expect("a glommio executor for the subscribers");
    while connected.load(Ordering::Relaxed) < subscribers {
        assert!(
            Instant::now() < deadline,
            "subscribers did not all connect in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_connected = server::rss_bytes(server.pid());
    // The writes, paced, from this thread.
    let progress = report::progress(
        &format!("{} writes to {} subscribers", args.writes, args.subscribers),
        args.writes as f64 / args.write_rate,
    );
    let mut writes: Vec<(u64, Instant, Instant)> = Vec::with_capacity(args.writes);
    let gap = Duration::from_secs_f64(1.0 / args.write_rate);
    let begin = Instant::now();
    for i in 0..args.writes {
        let due = begin + gap.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let body = br#"{"address":"127.0.0.1:7000"}"#;
        let r = concord_testkit::http::try_request(
            addr,
            "PUT",
            &format!("/api/topology/nodes/perf-{i}"),
            &[],
            body,
        )
        .expect("write");
        assert_eq!(
            r.status,
            200,
            "write refused: {}",
            String::from_utf8_lossy(&r.body)
        );
        let version = r.json()["version"].as_u64().expect("version");
        writes.push((version, sent, Instant::now()));
        if Instant::now() > deadline {
            break;
        }
    }
    let last = writes.last().map_or(start_version, |w| w.0);
    target.store(last, Ordering::Relaxed);
    let arrivals = receiver.join().expect("subscribers finished");
    drop(progress);
    let rss_after = server::rss_bytes(server.pid());
    drop(server);

    let mut from_send = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut from_ack = from_send.clone();
    let (mut lost, mut duplicated) = (0u64, 0u64);
    let expected: Vec<u64> = ((start_version + 1)..=last).collect();
    let by_version: std::collections::HashMap<u64, (Instant, Instant)> =
        writes.iter().map(|&(v, s, a)| (v, (s, a))).collect();
    for seen in &arrivals {
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
            if let Some((sent, ack)) = by_version.get(version) {
                let _ =
                    from_send.record(at.saturating_duration_since(*sent).as_micros().max(1) as u64);
                let _ =
                    from_ack.record(at.saturating_duration_since(*ack).as_micros().max(1) as u64);
            }
        }
    }
    report::print_table(
        &format!(
            "{name}: {} subscribers, {} writes at {}/s",
            args.subscribers,
            writes.len(),
            args.write_rate
        ),
        &[
            (
                "write sent → event delivered",
                report::latency_row(&from_send),
            ),
            (
                "write acknowledged → delivered",
                report::latency_row(&from_ack),
            ),
            ("deliveries", from_send.len().to_string()),
            ("lost / duplicated", format!("{lost} / {duplicated}")),
            (
                "server RSS idle / connected / after",
                format!(
                    "{:.1} / {:.1} / {:.1} MiB",
                    rss_idle as f64 / 1048576.0,
                    rss_connected as f64 / 1048576.0,
                    rss_after as f64 / 1048576.0
                ),
            ),
        ],
    );
    report::write_svg(
        &out.join(format!("{name}-latency.svg")),
        &format!(
            "{name}: commit to delivery, {} subscribers",
            args.subscribers
        ),
        "log10(1/(1-percentile))",
        "ms",
        &[
            report::percentile_series("sent→delivered", &from_send),
            report::percentile_series("acked→delivered", &from_ack),
        ],
    );
    let report = json!({
        "scenario": name, "subscribers": args.subscribers, "writes": writes.len(),
        "write_rate": args.write_rate, "server_executors": args.server_executors,
        "nodes": args.nodes, "shards": args.shards,
        "sent_to_delivered": report::latency_json(&from_send),
        "acked_to_delivered": report::latency_json(&from_ack),
        "lost": lost, "duplicated": duplicated,
        "server_rss_bytes": {"idle": rss_idle, "subscribers_connected": rss_connected, "after_writes": rss_after},
    });
    report::write_json(out, name, report.clone());
    Outcome {
        report,
        lost,
        duplicated,
    }
}

async fn subscribe_all(
    addr: SocketAddr,
    count: usize,
    since: u64,
    connected: Arc<AtomicUsize>,
    target: Arc<AtomicU64>,
    deadline: Instant,
) -> Arrivals {
    let arrivals: Rc<RefCell<Arrivals>> = Rc::new(RefCell::new(vec![Vec::new(); count]));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let (arrivals, connected, target) = (arrivals.clone(), connected.clone(), target.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let request = format!(
                "GET /api/topology/subscribe?sinceVersion={since} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .expect("subscribe");
            let mut decoder = SseDecoder::default();
            let mut buf = vec![0u8; 16 * 1024];
            let mut counted = false;
            loop {
                let limit = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500));
                let n =
                    futures_lite::future::or(async { stream.read(&mut buf).await.ok() }, async {
                        glommio::timer::sleep(limit).await;
                        Some(usize::MAX)
                    })
                    .await;
                match n {
                    Some(0) | None => break,
                    Some(usize::MAX) => {}
                    Some(n) => {
                        let now = Instant::now();
                        // A malformed stream ends this subscriber; what it missed
                        // is counted as lost.
                        if decoder.feed(&buf[..n]).is_err() {
                            break;
                        }
                        while let Ok(Some(event)) = decoder.next_event() {
                            if let Some(version) = event.completed_version() {
                                arrivals.borrow_mut()[index].push((version, now));
                            }
                        }
                        if !counted && decoder.status().is_some() {
                            counted = true;
                            connected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let goal = target.load(Ordering::Relaxed);
                let have = arrivals.borrow()[index].last().map_or(0, |(v, _)| *v);
                if (goal != u64::MAX && have >= goal) || Instant::now() >= deadline {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    Rc::try_unwrap(arrivals)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}
