//! Restart safety: a server restarted on its data directory never answers from a
//! state older than the one acknowledged before it stopped. From the first accepted
//! connection on, every read, snapshot and SSE connect is either `503 loading`
//! (with `Retry-After: 1`) or the acknowledged version or newer; `/readyz` stays 503
//! until then.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_testkit::http::request_within;
use concord_testkit::process::serve_args;
use concord_testkit::{free_addr, server_binary, wait_for, SseClient, TopoProcess};

use crate::cluster_support::{put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// How long a probe may wait for one answer.
const PROBE: Duration = Duration::from_secs(5);

/// How long the probes keep going once the restarted server answered the right version.
const SETTLE: Duration = Duration::from_millis(500);

/// What the probes of one restart saw.
#[derive(Default)]
struct Observed {
    loading: usize,
    current: usize,
    /// Answers that break the rule (a stale version, a wrong refusal), described.
    violations: Vec<String>,
}

/// Which answer a probe got.
enum Answer {
    /// No connection (not listening yet) or no answer: the probe tries again.
    Nothing,
    Loading,
    Current,
    Violation(String),
}

/// A 503 that says the server is loading and advises a retry; anything else is a violation.
fn loading_or_violation(what: &str, status: u16, retry_after: Option<&str>, body: &str) -> Answer {
    if status == 503 && retry_after == Some("1") && body.contains("loading") {
        Answer::Loading
    } else {
        Answer::Violation(format!(
            "{what}: status {status}, Retry-After {retry_after:?}, body {body}"
        ))
    }
}

/// `GET path` once: the acknowledged version (or newer) or `503 loading`.
fn probe_read(client: SocketAddr, path: &str, acknowledged: u64) -> Answer {
    let Ok(r) = request_within(client, "GET", path, &[], b"", PROBE) else {
        return Answer::Nothing;
    };
    if r.status != 200 {
        return loading_or_violation(path, r.status, r.header("retry-after"), &r.text());
    }
    match r.try_json().and_then(|v| v["version"].as_u64()) {
        Some(v) if v >= acknowledged => Answer::Current,
        seen => Answer::Violation(format!(
            "{path}: 200 with version {seen:?}, below the acknowledged {acknowledged}"
        )),
    }
}

/// One SSE connect: a stream starting at the acknowledged version (or newer) or `503 loading`.
fn probe_subscribe(client: SocketAddr, acknowledged: u64) -> Answer {
    let Ok(sse) = SseClient::open(client, "/api/topology/subscribe", &[], PROBE) else {
        return Answer::Nothing;
    };
    if sse.status != 200 {
        return loading_or_violation(
            "subscribe",
            sse.status,
            sse.header("retry-after"),
            // The refusal's body is not read by the SSE client; its status and
            // Retry-After are what an EventSource acts on.
            "loading",
        );
    }
    match sse
        .header("x-topology-version")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(v) if v >= acknowledged => Answer::Current,
        seen => Answer::Violation(format!(
            "subscribe: stream opened at version {seen:?}, below the acknowledged {acknowledged}"
        )),
    }
}

/// Probes `client` in tight loops (version, snapshot, SSE connect, each on its own
/// thread) from before the server listens until every probe has seen the right
/// version for [`SETTLE`]; once `/readyz` is 200, a read must answer that version.
fn watch_restart(client: SocketAddr, acknowledged: u64) -> Observed {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let first_current = Arc::new(Mutex::new(None::<Instant>));
    let stop = Arc::new(AtomicBool::new(false));
    type Probe = Box<dyn Fn() -> Answer + Send>;
    let probes: Vec<Probe> = vec![
        Box::new(move || probe_read(client, "/api/topology/version", acknowledged)),
        Box::new(move || probe_read(client, "/api/topology/snapshot", acknowledged)),
        Box::new(move || probe_subscribe(client, acknowledged)),
        // Once ready, a read must answer the acknowledged version.
        Box::new(move || {
            let Ok(r) = request_within(client, "GET", "/readyz", &[], b"", PROBE) else {
                return Answer::Nothing;
            };
            match r.status {
                200 => match probe_read(client, "/api/topology/version", acknowledged) {
                    Answer::Current => Answer::Current,
                    Answer::Violation(what) => Answer::Violation(format!("ready, yet {what}")),
                    _ => Answer::Violation("ready, yet the next read was refused".into()),
                },
                503 => Answer::Loading,
                other => Answer::Violation(format!("/readyz answered {other}")),
            }
        }),
    ];
    let started = Instant::now();
    let threads: Vec<_> = probes
        .into_iter()
        .map(|probe| {
            let observed = observed.clone();
            let first_current = first_current.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && started.elapsed() < WAIT {
                    let answer = probe();
                    let mut seen = observed.lock().unwrap();
                    match answer {
                        Answer::Nothing => {}
                        Answer::Loading => seen.loading += 1,
                        Answer::Current => {
                            seen.current += 1;
                            let mut first = first_current.lock().unwrap();
                            let at = *first.get_or_insert_with(Instant::now);
                            if at.elapsed() > SETTLE {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        Answer::Violation(what) => seen.violations.push(what),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("probe thread");
    }
    Arc::try_unwrap(observed)
        .unwrap_or_else(|_| panic!("probe threads are done"))
        .into_inner()
        .unwrap()
}

fn assert_never_stale(observed: &Observed, acknowledged: u64) {
    assert!(
        observed.violations.is_empty(),
        "after restart, answers older than the acknowledged version {acknowledged} (or wrong refusals), {} in all: {:#?}",
        observed.violations.len(),
        &observed.violations[..observed.violations.len().min(10)]
    );
    assert!(
        observed.current > 0,
        "the restarted server never answered version {acknowledged} (loading answers: {})",
        observed.loading
    );
}

/// A single server on `data_dir` with the health monitor off, two executors.
fn single_server(data_dir: &Path, client: SocketAddr) -> TopoProcess {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let config = data_dir.with_file_name("restart.yaml");
    std::fs::write(&config, "topology:\n  health_check:\n    enabled: false\n").expect("config");
    let mut args = serve_args(1, client, free_addr(), data_dir, 2);
    args.extend(["--config".to_string(), config.display().to_string()]);
    TopoProcess::new(server_binary(), args)
}

#[test]
fn a_restarted_server_never_answers_an_older_version() {
    let temp = tempfile::tempdir().unwrap();
    let client = free_addr();
    let mut server = single_server(&temp.path().join("data"), client);
    server.spawn();
    server.wait_ready(client, WAIT);
    let mut acknowledged = 0;
    for i in 0..300 {
        acknowledged = put_node(client, &format!("n{i}"), None).expect("write");
    }
    for round in 0..2 {
        server.kill();
        server.spawn();
        let observed = watch_restart(client, acknowledged);
        eprintln!(
            "restart {round}: {} loading answers, {} current",
            observed.loading, observed.current
        );
        assert_never_stale(&observed, acknowledged);
        // And the restarted server takes writes again, on top of what it had.
        let next = put_node(client, &format!("after-{round}"), None).expect("write after restart");
        assert_eq!(next, acknowledged + 1);
        acknowledged = next;
    }
}

#[test]
fn a_restarted_follower_never_answers_an_older_version() {
    // Compaction every 20 entries, 5 kept: the follower catches up by snapshot.
    let mut cluster = Cluster::start(3, false, "  snapshot_every: 20\n  keep_after_snapshot: 5\n");
    let leader = cluster.leader(WAIT);
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let leader_client = cluster.node(leader).client;
    for i in 0..20 {
        put_node(leader_client, &format!("before-{i}"), None).expect("write");
    }
    let ids = cluster.ids();
    let newest = cluster.node(leader).version().unwrap().0;
    cluster.converged(&ids, newest, WAIT);

    let follower_log = cluster.node(follower).status().unwrap()["lastLogIndex"]
        .as_u64()
        .unwrap();
    cluster.kill(follower);
    // Write until the leader has compacted its log past what the follower holds (the
    // purge may wait while replication to the dead follower is still in flight).
    let mut acknowledged = 0;
    let mut purged = 0;
    for i in 0..1000 {
        acknowledged = put_node(leader_client, &format!("while-down-{i}"), None).expect("write");
        if i % 20 == 19 {
            purged = cluster.node(leader).status().unwrap()["purgedIndex"]
                .as_u64()
                .unwrap_or(0);
            if purged > follower_log {
                break;
            }
        }
    }
    assert!(
        purged > follower_log,
        "the leader purged up to {purged} only; the follower (log up to {follower_log}) would not need a snapshot"
    );
    let client = cluster.node(follower).client;
    cluster.spawn_again(follower);
    let observed = watch_restart(client, acknowledged);
    eprintln!(
        "follower {follower}: {} loading answers, {} current",
        observed.loading, observed.current
    );
    assert_never_stale(&observed, acknowledged);
    wait_for(WAIT, "the restarted follower is ready", || {
        request_within(client, "GET", "/readyz", &[], b"", PROBE)
            .ok()
            .filter(|r| r.status == 200)
    });
}
