//! `perf soak`: a 3-server cluster behind the partition proxy, routers following SSE,
//! writers (plain and compare-and-set) and linearizable readers at steady rates, and
//! faults on a schedule (leader SIGKILL, follower SIGKILL, leader SIGSTOP, one server
//! partitioned), each healed before the next, for `--duration` seconds. Writes cycle
//! over a fixed pool of data nodes and one server is spared the SIGKILLs, so a single
//! process lives through the whole run at a constant state size: what its RSS and
//! descriptors do is what the server accumulates.
//!
//! This module owns the cluster and the fault schedule; the clients live in
//! `soak_clients`, the verdicts (lost writes, linearizability in windows, SSE rules,
//! resource growth) and the report in `soak_report`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::http::request_within;
use concord_testkit::process::{initial_cluster, serve_args, Stderr};
use concord_testkit::proxy::Partitions;
use concord_testkit::{free_addr, TopoProcess};

use crate::server::server_binary;
use crate::soak_clients::{self as clients, Shared};
use crate::soak_report::{self as verdict, Outcome};

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the load and the faults run, seconds.
    #[arg(long, default_value_t = 180)]
    pub duration: u64,
    /// Routers following SSE.
    #[arg(long, default_value_t = 20)]
    pub routers: usize,
    /// Writes per second, all writers together (every other one a CAS with If-Match).
    #[arg(long, default_value_t = 20.0)]
    pub write_rate: f64,
    /// Linearizable reads per second, all readers together.
    #[arg(long, default_value_t = 10.0)]
    pub read_rate: f64,
    /// Seconds between the starts of two faults (0: no faults).
    #[arg(long, default_value_t = 20)]
    pub fault_every: u64,
    /// Seconds between two RSS / descriptor samples of each server.
    #[arg(long, default_value_t = 5)]
    pub sample_every: u64,
    /// Data nodes each of the 4 writers cycles over: the topology stays this size
    /// however long the run, so resource growth is not confounded with data growth.
    #[arg(long, default_value_t = 25)]
    pub pool: u64,
    /// The server never SIGKILLed (0: any may be), so one process lives through the
    /// whole run and its resources show whether anything accumulates. A leader kill
    /// that would hit it pauses it instead (SIGSTOP 3 s: also forces an election).
    #[arg(long, default_value_t = 1)]
    pub spare: u64,
}

/// The peer secret the three servers share (loopback only).
const PEER_SECRET: &str = "concord-perf-soak-peer-secret-0123";

/// Writes give up after 2 s on the server, so a client waiting 3 s sees an answer
/// whenever the server gives one; health probing is off (the data nodes are made up).
const SOAK_CONFIG: &str =
    "http:\n  write_timeout: 2s\ntopology:\n  health_check:\n    enabled: false\n";

/// How long a server may take to answer `/healthz` after a restart.
const RESTART_LIMIT: Duration = Duration::from_secs(60);

/// One server of the cluster.
pub struct Member {
    pub id: u64,
    pub client: SocketAddr,
    process: TopoProcess,
    /// SIGSTOPped and not continued yet.
    stopped: bool,
}

impl Member {
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    fn signal(&mut self, signal: libc::c_int) {
        if let Some(pid) = self.process.pid() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
        self.stopped = signal == libc::SIGSTOP;
    }

    fn restart(&mut self) {
        self.process.kill();
        self.process.spawn();
        self.stopped = false;
        let client = self.client;
        self.process
            .wait_until(RESTART_LIMIT, "/healthz answers", || {
                concord_testkit::process::answers_200(client, "/healthz")
            });
    }
}

/// The cluster: its members, their proxies and their data (deleted on drop).
pub struct Cluster {
    pub members: Vec<Member>,
    pub partitions: Partitions,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(bin: &Path) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("concord-soak-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("soak.yaml");
        std::fs::write(&config, SOAK_CONFIG).expect("config");
        let partitions = Partitions::new();
        let ports: Vec<(u64, SocketAddr, SocketAddr)> = (1..=3)
            .map(|id| {
                let peer = free_addr();
                (id, peer, partitions.proxy(id, peer))
            })
            .collect();
        let initial = initial_cluster(ports.iter().map(|(id, _, adv)| (*id, *adv)));
        let members = ports
            .iter()
            .map(|(id, peer, advertised)| {
                let client = free_addr();
                let mut args =
                    serve_args(*id, client, *peer, &dir.path().join(format!("d{id}")), 1);
                args.extend([
                    "--advertise-peer-addr".to_string(),
                    advertised.to_string(),
                    "--config".to_string(),
                    config.display().to_string(),
                    "--initial-cluster".to_string(),
                    initial.clone(),
                ]);
                let log = dir.path().join(format!("node{id}.log"));
                let mut process = TopoProcess::new(bin.to_path_buf(), args)
                    .env("CONCORD_PEER_SECRET", PEER_SECRET)
                    .rust_log("error")
                    .stderr(Stderr::File(log));
                process.spawn();
                Member {
                    id: *id,
                    client,
                    process,
                    stopped: false,
                }
            })
            .collect();
        let cluster = Cluster {
            members,
            partitions,
            _dir: dir,
        };
        cluster.wait_leader(Duration::from_secs(30));
        cluster
    }

    fn member(&mut self, id: u64) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.id == id)
            .expect("a known server")
    }

    pub fn servers(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client).collect()
    }

    /// The leader every running, unstopped server names, if they agree.
    fn leader(&self) -> Option<u64> {
        let mut named = None;
        for m in self.members.iter().filter(|m| !m.stopped) {
            let r = request_within(
                m.client,
                "GET",
                "/api/cluster/status",
                &[],
                b"",
                Duration::from_secs(1),
            )
            .ok()?;
            let leader = r.try_json()?["cluster"]["leader"].as_u64()?;
            if named.is_some_and(|n| n != leader) {
                return None;
            }
            named = Some(leader);
        }
        named
    }

    pub fn wait_leader(&self, limit: Duration) -> u64 {
        concord_testkit::wait_for(limit, "one leader named by every server", || self.leader())
    }

    /// Every server's applied version, once all agree (at least `min`).
    pub fn converged(&self, min: u64, limit: Duration) -> u64 {
        concord_testkit::wait_for(limit, "every server at the same version", || {
            let versions: Vec<u64> = self
                .members
                .iter()
                .map(|m| clients::plain_version(m.client))
                .collect::<Option<_>>()?;
            let first = *versions.first()?;
            (first >= min && versions.iter().all(|v| *v == first)).then_some(first)
        })
    }

    /// Undoes whatever a fault left: continues a stopped server, heals every link.
    fn heal_all(&mut self) {
        for m in self.members.iter_mut().filter(|m| m.stopped) {
            m.signal(libc::SIGCONT);
        }
        self.partitions.heal();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.heal_all();
        for m in &mut self.members {
            m.process.kill();
        }
        self.partitions.stop();
    }
}

/// The faults, in the order they rotate.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    Partition,
}

const ROTATION: [Fault; 4] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::Partition,
];

/// One injected fault, for the report.
#[derive(Clone, Debug)]
pub struct Injected {
    pub fault: Fault,
    pub server: u64,
    /// Seconds since the start of the load.
    pub at: f64,
    /// Seconds until it was healed (the server answers again, or the link is back).
    pub healed_after: f64,
}

/// Injects one fault and heals it; returns what was done.
fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    round: usize,
    spare: u64,
    started: Instant,
) -> Injected {
    let leader = cluster.wait_leader(Duration::from_secs(120));
    // Of two followers at least one is not the spare.
    let killable: Vec<u64> = cluster
        .members
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != leader && *id != spare)
        .collect();
    let follower = killable[round % killable.len()];
    let fault = match fault {
        Fault::KillLeader if leader == spare => Fault::PauseLeader,
        other => other,
    };
    let at = Instant::now();
    let server = match fault {
        Fault::KillLeader | Fault::KillFollower => {
            let id = if matches!(fault, Fault::KillLeader) {
                leader
            } else {
                follower
            };
            let member = cluster.member(id);
            member.process.kill();
            std::thread::sleep(Duration::from_secs(2));
            member.restart();
            id
        }
        Fault::PauseLeader => {
            let member = cluster.member(leader);
            member.signal(libc::SIGSTOP);
            std::thread::sleep(Duration::from_secs(3));
            member.signal(libc::SIGCONT);
            leader
        }
        Fault::Partition => {
            // Rotates over the servers, whatever their role.
            let id = (round as u64 / ROTATION.len() as u64) % 3 + 1;
            cluster.partitions.isolate(id, &[1, 2, 3]);
            std::thread::sleep(Duration::from_secs(4));
            cluster.partitions.heal();
            id
        }
    };
    Injected {
        fault,
        server,
        at: at.duration_since(started).as_secs_f64(),
        healed_after: at.elapsed().as_secs_f64(),
    }
}

/// A server's RSS (bytes) and open descriptors right now.
pub fn resources(pid: u32) -> (u64, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (crate::server::rss_bytes(pid), fds)
}

/// After the run, per server: its resources, then those of a fresh process restarted
/// on the same data once it has applied `version`. The difference is what the long
/// run accumulated beyond its data (the data itself grows with every write).
pub type Restarted = Vec<(u64, (u64, usize), (u64, usize))>;

fn fresh_restarts(cluster: &mut Cluster, version: u64) -> Restarted {
    let mut out = Vec::new();
    for i in 0..cluster.members.len() {
        let member = &mut cluster.members[i];
        let Some(before) = member.pid().map(resources) else {
            continue;
        };
        member.restart();
        let client = member.client;
        let caught_up = concord_testkit::wait::poll_until(Duration::from_secs(60), || {
            clients::plain_version(client).filter(|v| *v >= version)
        });
        // Let start-up allocations settle before sampling.
        std::thread::sleep(Duration::from_secs(2));
        if let (Some(_), Some(pid)) = (caught_up, cluster.members[i].pid()) {
            out.push((cluster.members[i].id, before, resources(pid)));
        }
    }
    out
}

/// Runs the soak and prints and writes its report; the outcome says whether every
/// invariant held.
pub fn run(args: &SoakArgs, bin: Option<&Path>, out: &Path) -> Outcome {
    let bin = server_binary(bin);
    let mut cluster = Cluster::start(&bin);
    let initial = cluster.converged(0, Duration::from_secs(30));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let shared = Arc::new(Shared::new(cluster.servers(), initial, started, until));
    let pids = Arc::new(clients::Pids::new(&cluster.members));
    let mut threads = clients::start(args, &shared, &pids);

    let mut faults = Vec::new();
    let progress = crate::report::progress("soak", args.duration as f64);
    // Bounded by the run's end: every round starts `fault_every` seconds later.
    let rounds = if args.fault_every == 0 { 0 } else { usize::MAX };
    for round in 0..rounds {
        let next = started + Duration::from_secs(args.fault_every * (round as u64 + 1));
        // A fault needs about 10 s to inject and heal: none may run past the end.
        if next + Duration::from_secs(10) > until {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let fault = ROTATION[round % ROTATION.len()];
        let injected = inject(&mut cluster, fault, round, args.spare, started);
        pids.refresh(&cluster.members);
        faults.push(injected);
    }
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    drop(progress);

    let load = threads.stop_load();
    // Quiet now: every server runs and every link is up.
    cluster.heal_all();
    let leader = cluster.wait_leader(Duration::from_secs(120));
    let final_version = cluster.converged(initial, Duration::from_secs(120));
    let final_read = clients::final_read(&cluster.members, leader, final_version);
    shared.final_version.store(final_version, Ordering::SeqCst);
    let observed = threads.finish();
    let held = verdict::read_back(&cluster.members);
    let restarted = fresh_restarts(&mut cluster, final_version);
    drop(cluster);
    verdict::report(
        args,
        out,
        verdict::Inputs {
            initial,
            final_version,
            final_read,
            load,
            observed,
            held,
            restarted,
            faults,
            elapsed: started.elapsed().as_secs_f64(),
        },
    )
}
