//! The clients of `perf soak`, one thread each, every loop bounded by the run's end
//! (and by a give-up time after it): writers (plain and `If-Match` writes at a steady
//! rate, retrying on another server while a write can still be answered within 1 s),
//! linearizable readers, SSE routers (resuming after their last version on the next
//! server whenever a stream ends or goes quiet), a history collector (the committed
//! events, to resolve writes of unknown outcome) and the RSS / descriptor sampler.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_testkit::http::{request_within, Response};
use concord_testkit::linearizability::{Op, Recorded, Ret};
use concord_testkit::observations::SseItem;
use concord_testkit::register::{self, Outcome};
use concord_testkit::SseClient;

use crate::soak::{Member, SoakArgs};

/// What one request may take before its outcome counts as unknown (servers give up
/// on a write after 2 s).
const REQUEST_LIMIT: Duration = Duration::from_secs(3);
/// A write answered later than this after its scheduled time counts as unavailable.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// How long routers and the collector may take to reach the final version.
const CATCH_UP: Duration = Duration::from_secs(90);
/// A router whose stream is quiet this long moves to the next server (a paused or
/// partitioned server keeps the socket open and says nothing).
const QUIET: Duration = Duration::from_secs(3);

const WRITERS: usize = 4;
const READERS: usize = 2;

/// What every client thread shares with the run.
pub struct Shared {
    pub servers: Vec<SocketAddr>,
    /// The highest version any client saw (what a CAS expects).
    latest: AtomicU64,
    pub started: Instant,
    until: Instant,
    stop_load: AtomicBool,
    /// Routers and the collector stop once they reach it (u64::MAX until known).
    pub final_version: AtomicU64,
    stop_all: AtomicBool,
}

impl Shared {
    pub fn new(servers: Vec<SocketAddr>, initial: u64, started: Instant, until: Instant) -> Shared {
        Shared {
            servers,
            latest: AtomicU64::new(initial),
            started,
            until,
            stop_load: AtomicBool::new(false),
            final_version: AtomicU64::new(u64::MAX),
            stop_all: AtomicBool::new(false),
        }
    }

    fn load_runs(&self) -> bool {
        !self.stop_load.load(Ordering::Relaxed) && Instant::now() < self.until
    }

    fn reached_end(&self, last: u64) -> bool {
        last >= self.final_version.load(Ordering::SeqCst) || self.stop_all.load(Ordering::Relaxed)
    }

    fn since_start(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }
}

/// The current process id of each server (they change at every restart).
pub struct Pids(Mutex<Vec<(u64, Option<u32>)>>);

impl Pids {
    pub fn new(members: &[Member]) -> Pids {
        let pids = Pids(Mutex::new(Vec::new()));
        pids.refresh(members);
        pids
    }

    pub fn refresh(&self, members: &[Member]) {
        *self.0.lock().unwrap() = members.iter().map(|m| (m.id, m.pid())).collect();
    }
}

/// The label that carries a write's unique tag, so that the committed history tells
/// which write made which version even though writes overwrite a fixed set of nodes.
pub const TAG_LABEL: &str = "soak-write";

fn get(addr: SocketAddr, path: &str) -> Outcome {
    register::send(addr, "GET", path, None, REQUEST_LIMIT)
}

/// Writes data node `node` with the unique `tag` in its labels.
fn put_tagged(addr: SocketAddr, node: &str, tag: &str, if_match: Option<u64>) -> Outcome {
    let path = format!("/api/topology/nodes/{node}");
    let body = serde_json::json!({"address": "127.0.0.1:1", "labels": {TAG_LABEL: tag}});
    register::send_body(
        addr,
        "PUT",
        &path,
        body.to_string().as_bytes(),
        if_match,
        REQUEST_LIMIT,
    )
}

/// What a 4xx (or a 200 without a version) said, for the report.
fn unexpected(method: &str, path: &str, r: &Response) -> String {
    format!("{method} {path}: {} {}", r.status, r.text())
}

/// A server's applied version (`GET /api/topology/version`), if it answers 200.
pub fn plain_version(addr: SocketAddr) -> Option<u64> {
    let r = request_within(
        addr,
        "GET",
        "/api/topology/version",
        &[],
        b"",
        Duration::from_secs(2),
    )
    .ok()?;
    (r.status == 200).then(|| r.try_json()?["version"].as_u64())?
}

/// One write of the history with its unique tag (to find it in the committed history
/// when its outcome is unknown).
#[derive(Clone, Debug)]
pub struct WriteRecord {
    pub tag: String,
    pub recorded: Recorded,
}

/// What the writers and readers recorded.
#[derive(Default)]
pub struct Load {
    pub writes: Vec<WriteRecord>,
    pub reads: Vec<Recorded>,
    /// Per scheduled write: seconds since the start, and whether it was answered
    /// (applied or a CAS conflict) within [`ANSWER_WITHIN`].
    pub ticks: Vec<(f64, bool)>,
    pub unexpected: Vec<String>,
}

/// One writer: a logical write every `period`, cycling over its `pool` data nodes
/// (the state stays the same size however long the run); every other one a CAS
/// expecting the newest version seen. A refused or quickly failed attempt is retried
/// (with a new tag) on the next server while the 1 s budget lasts.
fn writer(id: usize, shared: &Shared, period: Duration, pool: u64) -> Load {
    let mut log = Load::default();
    let n = shared.servers.len();
    let mut server = id % n;
    let mut next = shared.started + period.mul_f64(id as f64 / WRITERS as f64);
    let mut seq = 0u64;
    while shared.load_runs() {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let scheduled = next;
        next += period;
        let mut answered = false;
        for _attempt in 0..3 {
            let expected = (seq % 2 == 1).then(|| shared.latest.load(Ordering::SeqCst));
            let node = format!("w{id}-{}", seq % pool);
            let tag = format!("w{id}-{seq}");
            seq += 1;
            let invoked = Instant::now();
            let returned = match put_tagged(shared.servers[server], &node, &tag, expected) {
                Outcome::Version(v) => {
                    shared.latest.fetch_max(v, Ordering::SeqCst);
                    Some((Instant::now(), Ret::Written(v)))
                }
                Outcome::Conflict => Some((Instant::now(), Ret::Conflict)),
                Outcome::Unknown => None,
                Outcome::Refused => {
                    server = (server + 1) % n;
                    continue;
                }
                Outcome::Unexpected(r) => {
                    log.unexpected.push(unexpected(
                        "PUT",
                        &format!("/api/topology/nodes/{node}"),
                        &r,
                    ));
                    break;
                }
            };
            let done = returned.is_some();
            let recorded = Recorded {
                client: id,
                op: expected.map_or(Op::Write, Op::Cas),
                invoked,
                returned,
            };
            log.writes.push(WriteRecord { tag, recorded });
            if done {
                answered = scheduled.elapsed() <= ANSWER_WITHIN;
                break;
            }
            server = (server + 1) % n;
            if scheduled.elapsed() > ANSWER_WITHIN {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log.ticks.push((shared.since_start(scheduled), answered));
        // Writes this writer could not even send (it was blocked) were not accepted.
        while next + period < Instant::now() && shared.load_runs() {
            log.ticks.push((shared.since_start(next), false));
            next += period;
        }
    }
    log
}

/// One linearizable reader: a read every `period` on the servers in turn.
fn reader(id: usize, shared: &Shared, period: Duration) -> Load {
    let mut log = Load::default();
    let mut next = shared.started + period.mul_f64(id as f64 / READERS as f64);
    let mut server = id;
    let path = "/api/topology/version?consistency=linearizable";
    while shared.load_runs() {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next = (next + period).max(Instant::now());
        server = (server + 1) % shared.servers.len();
        let invoked = Instant::now();
        match get(shared.servers[server], path) {
            Outcome::Version(v) => {
                shared.latest.fetch_max(v, Ordering::SeqCst);
                log.reads.push(Recorded {
                    client: id,
                    op: Op::Read,
                    invoked,
                    returned: Some((Instant::now(), Ret::Read(v))),
                });
            }
            Outcome::Unexpected(r) => log.unexpected.push(unexpected("GET", path, &r)),
            // A read without an answer constrains nothing.
            _ => {}
        }
    }
    log
}

/// The last operation of the history: a linearizable read on the leader once the
/// cluster is quiet and converged.
pub fn final_read(members: &[Member], leader: u64, expected: u64) -> Recorded {
    let addr = members
        .iter()
        .find(|m| m.id == leader)
        .expect("leader")
        .client;
    let invoked = Instant::now();
    let path = "/api/topology/version?consistency=linearizable";
    let version = concord_testkit::wait_for(
        Duration::from_secs(60),
        "a final linearizable read",
        || match get(addr, path) {
            Outcome::Version(v) => Some(v),
            _ => None,
        },
    );
    if version != expected {
        eprintln!(
            "soak: the final linearizable read saw {version}, the servers agreed on {expected}"
        );
    }
    Recorded {
        client: usize::MAX,
        op: Op::Read,
        invoked,
        returned: Some((Instant::now(), Ret::Read(version))),
    }
}

/// One router: follows SSE from `initial` on, starting on server `first`.
fn router(shared: &Shared, first: usize, initial: u64) -> Vec<SseItem> {
    let n = shared.servers.len();
    let mut server = first;
    let mut last = initial;
    let mut items = Vec::new();
    while !shared.reached_end(last) {
        let addr = shared.servers[server % n];
        server += 1;
        let resume = last.to_string();
        let headers = [("Last-Event-ID", resume.as_str())];
        let mut stream = match SseClient::open(
            addr,
            "/api/topology/subscribe",
            &headers,
            Duration::from_secs(2),
        ) {
            Ok(s) if s.status == 200 => s,
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        items.push(SseItem::Resume { from: last });
        let mut heard = Instant::now();
        while !shared.reached_end(last) && heard.elapsed() < QUIET {
            let event = match stream.read_event(Duration::from_millis(500)) {
                Ok(Some(event)) => event,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Ok(None) | Err(_) => break,
            };
            heard = Instant::now();
            let Some(item) = SseItem::from_event(&event) else {
                continue;
            };
            last = item.completed().unwrap_or(last);
            items.push(item);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    items
}

/// The committed history as far as the collector got.
#[derive(Default)]
pub struct Collected {
    /// Write tag -> the version whose change set wrote it.
    pub committed: BTreeMap<String, u64>,
    /// Data node -> the tag of the last committed write to it.
    pub last_tag: BTreeMap<String, String>,
    /// The newest version collected.
    pub through: u64,
    /// 410 answers: history dropped before it was collected.
    pub history_gone: u64,
}

/// Pages `/api/topology/events` on the servers in turn, every second, until the final
/// version (or the give-up time).
fn collector(shared: &Shared, initial: u64) -> Collected {
    let mut got = Collected {
        through: initial,
        ..Collected::default()
    };
    let mut server = 0;
    while !shared.reached_end(got.through) {
        let addr = shared.servers[server % shared.servers.len()];
        let path = format!(
            "/api/topology/events?sinceVersion={}&limit=1000",
            got.through
        );
        let answer = request_within(addr, "GET", &path, &[], b"", Duration::from_secs(2));
        let body = match answer {
            Ok(r) if r.status == 200 => r.try_json(),
            Ok(r) if r.status == 410 => {
                got.history_gone += 1;
                None
            }
            _ => None,
        };
        let Some(body) = body else {
            server += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        for e in body["events"].as_array().into_iter().flatten() {
            let Some(version) = e["version"].as_u64() else {
                continue;
            };
            if let (Some(node), Some(tag)) = (
                e["nodeId"].as_str(),
                e["newValue"]["labels"][TAG_LABEL].as_str(),
            ) {
                got.committed.insert(tag.to_string(), version);
                got.last_tag.insert(node.to_string(), tag.to_string());
            }
            got.through = got.through.max(version);
        }
        if body["hasMore"] != serde_json::Value::Bool(true) {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    got
}

/// One sample of one server's resources.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the start.
    pub at: f64,
    pub server: u64,
    /// The process sampled (a restart changes it).
    pub pid: u32,
    pub rss: u64,
    pub fds: usize,
}

fn sampler(shared: &Shared, pids: &Pids, every: Duration) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while shared.load_runs() {
        let at = shared.since_start(Instant::now());
        for (server, pid) in pids.0.lock().unwrap().iter() {
            let Some(pid) = pid else { continue };
            let (rss, fds) = crate::soak::resources(*pid);
            // A killed server has no /proc entry: no sample.
            if rss > 0 {
                samples.push(Sample {
                    at,
                    server: *server,
                    pid: *pid,
                    rss,
                    fds,
                });
            }
        }
        next += every;
        while Instant::now() < next && shared.load_runs() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    samples
}

/// What routers, collector and sampler saw.
pub struct Observed {
    /// Per router: where it started and what it saw.
    pub routers: Vec<(u64, Vec<SseItem>)>,
    pub collected: Collected,
    pub samples: Vec<Sample>,
}

/// The running client threads.
pub struct Threads {
    shared: Arc<Shared>,
    initial: u64,
    load: Vec<JoinHandle<Load>>,
    routers: Vec<JoinHandle<Vec<SseItem>>>,
    collector: JoinHandle<Collected>,
    sampler: JoinHandle<Vec<Sample>>,
}

pub fn start(args: &SoakArgs, shared: &Arc<Shared>, pids: &Arc<Pids>) -> Threads {
    let initial = shared.latest.load(Ordering::SeqCst);
    let spawn = |f: Box<dyn FnOnce(&Shared) -> Load + Send>| {
        let shared = shared.clone();
        std::thread::spawn(move || f(&shared))
    };
    let mut load = Vec::new();
    let write_period = Duration::from_secs_f64(WRITERS as f64 / args.write_rate.max(0.01));
    let pool = args.pool.max(1);
    for id in 0..WRITERS {
        load.push(spawn(Box::new(move |s| writer(id, s, write_period, pool))));
    }
    let read_period = Duration::from_secs_f64(READERS as f64 / args.read_rate.max(0.01));
    for id in 0..READERS {
        load.push(spawn(Box::new(move |s| {
            reader(WRITERS + id, s, read_period)
        })));
    }
    let routers = (0..args.routers)
        .map(|i| {
            let shared = shared.clone();
            std::thread::spawn(move || router(&shared, i, initial))
        })
        .collect();
    let collector = {
        let shared = shared.clone();
        std::thread::spawn(move || collector(&shared, initial))
    };
    let sampler = {
        let (shared, pids) = (shared.clone(), pids.clone());
        let every = Duration::from_secs(args.sample_every.max(1));
        std::thread::spawn(move || sampler(&shared, &pids, every))
    };
    Threads {
        shared: shared.clone(),
        initial,
        load,
        routers,
        collector,
        sampler,
    }
}

impl Threads {
    /// Stops writers, readers and the sampler; returns what the writers and readers
    /// recorded.
    pub fn stop_load(&mut self) -> Load {
        self.shared.stop_load.store(true, Ordering::SeqCst);
        let mut all = Load::default();
        for handle in self.load.drain(..) {
            let mut one = handle.join().expect("a load thread");
            all.writes.append(&mut one.writes);
            all.reads.append(&mut one.reads);
            all.ticks.append(&mut one.ticks);
            all.unexpected.append(&mut one.unexpected);
        }
        all.ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
        all
    }

    /// Waits (bounded) until routers and collector reach the final version.
    pub fn finish(self) -> Observed {
        let deadline = Instant::now() + CATCH_UP;
        while Instant::now() < deadline
            && !(self.routers.iter().all(|r| r.is_finished()) && self.collector.is_finished())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.shared.stop_all.store(true, Ordering::SeqCst);
        let routers = self
            .routers
            .into_iter()
            .map(|r| (self.initial, r.join().expect("a router")))
            .collect();
        Observed {
            routers,
            collected: self.collector.join().expect("the collector"),
            samples: self.sampler.join().expect("the sampler"),
        }
    }
}
