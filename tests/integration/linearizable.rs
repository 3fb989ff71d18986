//! Cluster histories under faults, checked by a real linearizability checker.
//!
//! A few client threads send a random mix of unconditional writes, compare-and-set
//! writes, linearizable reads and plain reads to random servers of a 3- or 5-server
//! cluster, while the test thread SIGKILLs and restarts the leader and isolates a
//! server behind the partition proxy, then heals it. One SSE subscriber per server
//! follows every change, resuming with `Last-Event-ID` whenever its stream ends.
//! Afterwards:
//! - the writes, CAS and linearizable reads must be linearizable against the version
//!   register model (`concord_testkit::linearizability`, on stateright);
//! - plain reads never go back on one server and never run ahead of the writes sent;
//! - every subscription is gap-free, duplicate-free and ordered, and ends at the final
//!   committed version.
//!
//! The faults come from a list of kinds (`fault_schedule::Fault`); `faults.rs` runs
//! the same history under pauses, asymmetric and flapping partitions, slow fsync and
//! clock jumps.
//!
//! `CONCORD_LONG_TESTS=1` (or `CONCORD_LONG_FAULTS=1`) runs each history for 40 s
//! instead of 12 s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::linearizability::{self, Op, Recorded, Ret};
use concord_testkit::observations::{check_plain_reads, check_subscription, PlainRead, SseItem};
use concord_testkit::register::{self, Outcome};
use concord_testkit::SseClient;

use crate::cluster_support::{join_versions, test_config, Cluster};
use crate::fault_schedule::{self, Fault, FaultLog};

const WAIT: Duration = Duration::from_secs(20);
/// What one request may take before its outcome counts as unknown (the servers give
/// up on a write after 2 s).
const REQUEST_LIMIT: Duration = Duration::from_secs(3);
/// What the checker may take. A correct history of this size checks in well under a
/// second; a violation can make the search exhaustive, so running out of time fails
/// the test too.
const CHECK_LIMIT: Duration = Duration::from_secs(120);

/// What the client threads share with the fault schedule.
struct Shared {
    servers: Vec<SocketAddr>,
    /// Per server: odd while it is being killed and restarted, even while one process
    /// serves it, so plain reads can be attributed to one process.
    incarnations: Vec<AtomicU32>,
    /// Set once the final version is known: subscribers stop when they reach it.
    final_version: AtomicU64,
    /// Subscribers that never reach the final version give up then.
    give_up: Instant,
}

/// One write of the linearizability history: its unique data node, for resolving an
/// unknown outcome against the committed history.
struct WriteOp {
    node: String,
    recorded: Recorded,
}

/// What one client thread saw.
#[derive(Default)]
struct ClientLog {
    writes: Vec<WriteOp>,
    reads: Vec<Recorded>,
    plain: Vec<PlainRead>,
    /// Invocation times of writes that may have applied (for the plain-read bound).
    may_apply: Vec<Instant>,
    /// Answers no operation here should get (4xx other than a CAS conflict).
    unexpected: Vec<String>,
}

fn send(addr: SocketAddr, method: &str, path: &str, if_match: Option<u64>) -> Outcome {
    register::send(addr, method, path, if_match, REQUEST_LIMIT)
}

/// One client thread: random operations on random servers until `until` or `max_ops`.
fn client(id: usize, shared: &Shared, initial: u64, until: Instant, max_ops: usize) -> ClientLog {
    let mut rng = fastrand::Rng::with_seed(0x5eed ^ id as u64);
    let mut log = ClientLog::default();
    let mut seen = initial;
    for i in 0..max_ops {
        if Instant::now() >= until {
            break;
        }
        let server = rng.usize(..shared.servers.len());
        let addr = shared.servers[server];
        let invoked = Instant::now();
        let mut pause = Duration::from_millis(rng.u64(5..25));
        match rng.u8(0..10) {
            kind @ 0..=5 => {
                // Writes and CAS: CAS names the last version seen, sometimes one older.
                let expected = (kind >= 3).then(|| seen.saturating_sub(rng.u64(0..2)));
                let node = format!("c{id}-{i}");
                let path = format!("/api/topology/nodes/{node}");
                let op = expected.map_or(Op::Write, Op::Cas);
                let returned = match send(addr, "PUT", &path, expected) {
                    Outcome::Version(v) => {
                        seen = seen.max(v);
                        Some((Instant::now(), Ret::Written(v)))
                    }
                    Outcome::Conflict => Some((Instant::now(), Ret::Conflict)),
                    Outcome::Unknown => {
                        // Fewer unknown outcomes keep the check fast.
                        pause = Duration::from_millis(rng.u64(200..400));
                        None
                    }
                    Outcome::Refused => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Outcome::Unexpected(r) => {
                        log.unexpected
                            .push(format!("PUT {path}: {} {}", r.status, r.text()));
                        continue;
                    }
                };
                if !matches!(returned, Some((_, Ret::Conflict))) {
                    log.may_apply.push(invoked);
                }
                let recorded = Recorded {
                    client: id,
                    op,
                    invoked,
                    returned,
                };
                log.writes.push(WriteOp { node, recorded });
            }
            6..=7 => {
                let path = "/api/topology/version?consistency=linearizable";
                match send(addr, "GET", path, None) {
                    Outcome::Version(v) => {
                        seen = seen.max(v);
                        log.reads.push(Recorded {
                            client: id,
                            op: Op::Read,
                            invoked,
                            returned: Some((Instant::now(), Ret::Read(v))),
                        });
                    }
                    Outcome::Unexpected(r) => {
                        log.unexpected
                            .push(format!("GET {path}: {} {}", r.status, r.text()))
                    }
                    // A read without an answer constrains nothing.
                    _ => pause = Duration::from_millis(rng.u64(50..150)),
                }
            }
            _ => {
                let incarnation = shared.incarnations[server].load(Ordering::SeqCst);
                if let Outcome::Version(version) = send(addr, "GET", "/api/topology/version", None)
                {
                    let returned = Instant::now();
                    let now = shared.incarnations[server].load(Ordering::SeqCst);
                    log.plain.push(PlainRead {
                        server: server as u64,
                        incarnation: (now == incarnation && incarnation & 1 == 0)
                            .then_some(incarnation),
                        invoked,
                        returned,
                        version,
                    });
                }
            }
        }
        std::thread::sleep(pause);
    }
    log
}

/// One subscriber on `server`: follows every change from `from` on, resuming after
/// its last completed version whenever the stream ends, until it reaches the final
/// version or the run stops.
fn subscriber(shared: &Shared, server: usize, from: u64) -> (u64, Vec<SseItem>) {
    let addr = shared.servers[server];
    let mut last = from;
    let mut items = Vec::new();
    let done = |last: u64| {
        last >= shared.final_version.load(Ordering::SeqCst) || Instant::now() >= shared.give_up
    };
    while !done(last) {
        let resume = last.to_string();
        let headers = [("Last-Event-ID", resume.as_str())];
        let path = "/api/topology/subscribe";
        let mut stream = match SseClient::open(addr, path, &headers, Duration::from_secs(2)) {
            Ok(s) if s.status == 200 => s,
            // Killed, restarting, no leader or behind: try again shortly.
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        items.push(SseItem::Resume { from: last });
        while !done(last) {
            let event = match stream.read_event(Duration::from_millis(500)) {
                Ok(Some(event)) => event,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Ok(None) | Err(_) => break,
            };
            let Some(item) = SseItem::from_event(&event) else {
                continue;
            };
            last = item.completed().unwrap_or(last);
            items.push(item);
        }
        // A server without a leader ends streams at once: do not spin on it.
        std::thread::sleep(Duration::from_millis(100));
    }
    (from, items)
}

/// How the writes of a run ended.
#[derive(Default)]
struct WriteCounts {
    acked: usize,
    conflicts: usize,
    unknown: usize,
    unknown_applied: usize,
}

/// The writes to check, given the committed history (`joined`: data node -> the
/// version that added it). Every acknowledged write must be there at its version. A
/// write of unknown outcome whose data node is absent never applied and is left out
/// (each such write could otherwise be placed anywhere or nowhere, which multiplies
/// the search); the others stay in flight: the checker may apply them at any point
/// after they were sent.
fn writes_to_check(
    logs: &[ClientLog],
    joined: &BTreeMap<String, u64>,
) -> (Vec<Recorded>, WriteCounts) {
    let mut history = Vec::new();
    let mut counts = WriteCounts::default();
    for write in logs.iter().flat_map(|l| &l.writes) {
        match write.recorded.returned {
            Some((_, Ret::Written(v))) => {
                counts.acked += 1;
                assert_eq!(joined.get(&write.node), Some(&v), "{}", write.node);
            }
            Some(_) => counts.conflicts += 1,
            None if joined.contains_key(&write.node) => {
                counts.unknown += 1;
                counts.unknown_applied += 1;
            }
            None => {
                counts.unknown += 1;
                continue;
            }
        }
        history.push(write.recorded.clone());
    }
    (history, counts)
}

/// What one history run does: its cluster, its clients and the faults it injects.
pub struct Plan<'a> {
    pub servers: u64,
    pub clients: usize,
    /// Injected in turn, over and over, until the run ends.
    pub faults: &'a [Fault],
    /// Environment variables of server `id` (an LD_PRELOAD shim, a faked clock).
    pub env: &'a dyn Fn(u64) -> Vec<(String, String)>,
    /// How long the clients and faults run (longer with [`long_runs`]).
    pub duration: Duration,
}

impl Plan<'_> {
    /// `servers` servers, `clients` clients, `faults`, no extra environment.
    pub fn new(servers: u64, clients: usize, faults: &[Fault]) -> Plan<'_> {
        Plan {
            servers,
            clients,
            faults,
            env: &|_| Vec::new(),
            duration: Duration::from_secs(12),
        }
    }
}

/// Whether the longer runs are asked for (`CONCORD_LONG_TESTS=1` or
/// `CONCORD_LONG_FAULTS=1`).
pub fn long_runs() -> bool {
    ["CONCORD_LONG_TESTS", "CONCORD_LONG_FAULTS"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1"))
}

/// Everything a run recorded, once the cluster is quiet again.
struct Run {
    /// Kept alive until the checks are done (its logs are shown on a failure).
    cluster: Cluster,
    initial: u64,
    final_version: u64,
    history: Vec<Recorded>,
    plain: Vec<PlainRead>,
    may_apply: Vec<Instant>,
    streams: Vec<(u64, Vec<SseItem>)>,
    faults: FaultLog,
}

/// A run that passed every check: the cluster (quiet, every server running) and
/// what the fault schedule did, for a test's own further checks.
pub struct Checked {
    pub cluster: Cluster,
    pub faults: FaultLog,
}

/// Runs the plan's workload and faults and checks everything it recorded.
pub fn run_checked_history(plan: &Plan) -> Checked {
    let run = record_history(plan);
    assert_linearizable(run.initial, run.history);
    if let Err(broken) = check_plain_reads(&run.plain, run.initial, &run.may_apply) {
        panic!("{broken}");
    }
    assert_subscriptions(&run.cluster.ids(), &run.streams, run.final_version);
    Checked {
        cluster: run.cluster,
        faults: run.faults,
    }
}

/// Runs the plan's workload under its faults and records what the clients saw.
fn record_history(plan: &Plan) -> Run {
    let (n, clients) = (plan.servers, plan.clients);
    let (duration, max_ops) = if long_runs() {
        (plan.duration * 10 / 3, 250)
    } else {
        (plan.duration, 100)
    };
    // Streams end every few seconds, so resumes happen throughout the run.
    let yaml = format!(
        "{}  notifications:\n    subscription_timeout: 3s\n",
        test_config("")
    );
    let mut cluster = Cluster::start_prepared(n, true, &yaml, |id, _| (plan.env)(id));
    let leader = cluster.leader(WAIT);
    let initial = cluster.converged(&cluster.ids(), 0, WAIT).0;
    let until = Instant::now() + duration;
    let shared = Arc::new(Shared {
        servers: cluster.nodes.iter().map(|n| n.client).collect(),
        incarnations: cluster.nodes.iter().map(|_| AtomicU32::new(0)).collect(),
        final_version: AtomicU64::new(u64::MAX),
        // Time enough to converge and catch up after the faults end.
        give_up: until + 3 * WAIT,
    });

    let subscribers: Vec<_> = (0..cluster.nodes.len())
        .map(|server| {
            let shared = shared.clone();
            std::thread::spawn(move || subscriber(&shared, server, initial))
        })
        .collect();
    let workers: Vec<_> = (0..clients)
        .map(|id| {
            let shared = shared.clone();
            std::thread::spawn(move || client(id, &shared, initial, until, max_ops))
        })
        .collect();
    let faults = fault_schedule::inject(&mut cluster, &shared.incarnations, plan.faults, until);
    let fault_count = faults.count;
    let logs: Vec<ClientLog> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    // Quiet now: every server runs and every link is up. The final version, read
    // linearizably and recorded as the history's last operation.
    let leader_after = cluster.leader(WAIT);
    let final_version = cluster.converged(&cluster.ids(), initial, WAIT).0;
    let invoked = Instant::now();
    let read = crate::cluster_support::linearizable_version(cluster.node(leader_after).client)
        .expect("a final linearizable read");
    assert_eq!(read, final_version);
    let final_read = Recorded {
        client: clients,
        op: Op::Read,
        invoked,
        returned: Some((Instant::now(), Ret::Read(read))),
    };
    shared.final_version.store(final_version, Ordering::SeqCst);
    let streams: Vec<(u64, Vec<SseItem>)> =
        subscribers.into_iter().map(|s| s.join().unwrap()).collect();

    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");

    let joined = join_versions(cluster.node(leader_after));
    let (mut history, counts) = writes_to_check(&logs, &joined);
    history.push(final_read);
    let reads: Vec<Recorded> = logs.iter().flat_map(|l| l.reads.clone()).collect();
    history.extend(reads.iter().cloned());
    let plain: Vec<PlainRead> = logs.iter().flat_map(|l| l.plain.clone()).collect();
    eprintln!(
        "{n} servers, {clients} clients, {fault_count} faults (first leader {leader}): \
         {} checked operations ({} acknowledged writes, {} CAS conflicts, \
         {} linearizable reads, {} unknown outcomes of which {} applied), \
         {} plain reads, versions {initial}..{final_version}; faults {:?}: {faults:?}",
        history.len(),
        counts.acked,
        counts.conflicts,
        reads.len(),
        counts.unknown,
        counts.unknown_applied,
        plain.len(),
        plan.faults,
    );
    assert!(fault_count >= 2, "only {fault_count} faults");
    assert!(
        counts.acked >= 10,
        "only {} writes were acknowledged",
        counts.acked
    );
    assert!(reads.len() >= 10, "only {} linearizable reads", reads.len());

    let may_apply: Vec<Instant> = logs.iter().flat_map(|l| l.may_apply.clone()).collect();
    Run {
        cluster,
        initial,
        final_version,
        history,
        plain,
        may_apply,
        streams,
        faults,
    }
}

/// Runs the checker with a time limit; a violation comes with the history.
fn linearizability_verdict(initial: u64, history: &[Recorded]) -> Result<(), String> {
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let checked = history.to_vec();
    std::thread::spawn(move || {
        let _ = tx.send(linearizability::check(initial, &checked));
    });
    let verdict = rx
        .recv_timeout(CHECK_LIMIT)
        .unwrap_or_else(|_| panic!("the checker did not finish within {CHECK_LIMIT:?}"));
    eprintln!("linearizability check took {:?}", started.elapsed());
    verdict.map(|_| ()).map_err(|violation| {
        let mut history = history.to_vec();
        history.sort_by_key(|r| r.invoked);
        let lines: Vec<String> = history.iter().map(|r| r.to_string()).collect();
        format!("{violation}\nhistory by invocation:\n{}", lines.join("\n"))
    })
}

/// Runs the checker and fails the test with the history when it says no.
fn assert_linearizable(initial: u64, history: Vec<Recorded>) {
    if let Err(violation) = linearizability_verdict(initial, &history) {
        panic!("{violation}");
    }
}

/// Every subscription (one per server in `ids`) follows the rules and ends at
/// `final_version`.
fn assert_subscriptions(ids: &[u64], streams: &[(u64, Vec<SseItem>)], final_version: u64) {
    let count = |wanted: fn(&SseItem) -> bool| {
        streams
            .iter()
            .flat_map(|(_, items)| items)
            .filter(|i| wanted(i))
            .count()
    };
    eprintln!(
        "{} subscriptions, {} (re)connections, {} Reset events",
        streams.len(),
        count(|i| matches!(i, SseItem::Resume { .. })),
        count(|i| matches!(i, SseItem::Reset { .. })),
    );
    for (id, (from, items)) in ids.iter().zip(streams) {
        let last =
            check_subscription(*id, *from, items).unwrap_or_else(|broken| panic!("{broken}"));
        assert_eq!(
            last, final_version,
            "subscriber on server {id} ended at {last}, not the final version"
        );
    }
}

/// The faults of the two basic runs.
const KILLS_AND_PARTITIONS: &[Fault] = &[Fault::KillLeader, Fault::Isolate];

#[test]
fn three_server_history_under_leader_kills_and_partitions_is_linearizable() {
    run_checked_history(&Plan::new(3, 3, KILLS_AND_PARTITIONS));
}

#[test]
fn five_server_history_under_leader_kills_and_partitions_is_linearizable() {
    run_checked_history(&Plan::new(5, 4, KILLS_AND_PARTITIONS));
}
