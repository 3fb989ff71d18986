//! The faults a checked history run (`linearizable.rs`) injects, one kind after the
//! other from a list, each bounded in time, while the client threads keep going.
//!
//! Every fault ends with the cluster whole again (processes running, links up), so
//! the next one starts from a healthy cluster and the run can converge at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use concord_testkit::wait_for;

use crate::cluster_support::{linearizable_version, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// Quiet time between two faults.
const GAP: Duration = Duration::from_millis(1200);

/// One kind of fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL the leader, restart it on its data directory 0.5–1.2 s later.
    KillLeader,
    /// Cut a random server off from the others, both ways, for 1–2 s.
    Isolate,
    /// SIGSTOP the leader until the others elect a new one, then SIGCONT it: it must
    /// step down (name the new leader, not call itself leader) without disrupting.
    PauseLeader,
    /// SIGSTOP a random follower for 1–2 s, then SIGCONT it.
    PauseFollower,
    /// Drop the leader → follower direction of one link for 1.5–2.5 s while the
    /// follower still reaches the leader (an asymmetric partition).
    OneWayCut,
    /// Cut and restore the link between two random servers (both ways) every
    /// 150–400 ms for about 2 s.
    Flap,
    /// Step the leader's wall clock by `+1h`, then by `-1h` the next time, for
    /// 1.5–2.5 s. Server `id` reads its offset from `<dir>/clock-<id>`
    /// (libfaketime's `FAKETIME_TIMESTAMP_FILE`, see [`clock_file`]); the file is
    /// back at `+0` after each jump.
    ClockJump(PathBuf),
}

/// What the schedule did.
#[derive(Default, Debug)]
pub struct FaultLog {
    pub count: usize,
    /// Paused leaders that, resumed, named the new leader.
    pub stepped_down: usize,
    /// Per clock jump: the versions before it started and after it ended (changes
    /// in between may carry the jumped clock's stamp).
    pub clock_windows: Vec<(u64, u64)>,
    /// Clock jumps after which another server led or the term had changed.
    pub elections_during_jumps: usize,
}

/// The libfaketime offset file of server `id` under `dir` (see [`Fault::ClockJump`]).
pub fn clock_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("clock-{id}"))
}

/// How long libfaketime may keep using an offset it read (`FAKETIME_CACHE_DURATION`,
/// in seconds, set on the server).
pub const CLOCK_CACHE_SECS: u64 = 1;

/// Injects `kinds` in turn until `until` (never starting one within 3 s of it).
/// `incarnations[i]` is made odd while server `ids[i]` is down (see
/// `linearizable.rs`); pauses keep one process, so they leave it alone.
pub fn inject(
    cluster: &mut Cluster,
    incarnations: &[AtomicU32],
    kinds: &[Fault],
    until: Instant,
) -> FaultLog {
    let mut rng = fastrand::Rng::with_seed(7);
    let ids = cluster.ids();
    let mut log = FaultLog::default();
    let mut jumps = ["+1h", "-1h"].iter().cycle();
    for kind in kinds.iter().cycle() {
        std::thread::sleep(GAP);
        if Instant::now() + Duration::from_secs(3) >= until {
            break;
        }
        let leader = cluster.leader(WAIT);
        match kind {
            Fault::KillLeader => {
                let incarnation = &incarnations[index_of(&ids, leader)];
                incarnation.fetch_add(1, Ordering::SeqCst);
                cluster.kill(leader);
                std::thread::sleep(Duration::from_millis(rng.u64(500..1200)));
                cluster.restart(leader);
                incarnation.fetch_add(1, Ordering::SeqCst);
            }
            Fault::Isolate => {
                let isolated = ids[rng.usize(..ids.len())];
                let partitions = cluster.partitions.as_ref().expect("a proxied cluster");
                partitions.isolate(isolated, &ids);
                std::thread::sleep(Duration::from_millis(rng.u64(1000..2000)));
                partitions.heal();
            }
            Fault::PauseLeader => {
                cluster.node(leader).pause();
                cluster.leader_among(&cluster.others(leader), WAIT);
                // Let the new leader take writes while the old one is frozen.
                std::thread::sleep(Duration::from_millis(rng.u64(300..800)));
                cluster.node(leader).resume();
                let old = cluster.node(leader);
                wait_for(WAIT, "the resumed leader follows another", || {
                    let status = old.status()?;
                    let follows = status["state"] != "Leader"
                        && status["leader"].as_u64().is_some_and(|l| l != leader);
                    follows.then_some(())
                });
                log.stepped_down += 1;
            }
            Fault::PauseFollower => {
                let followers = cluster.others(leader);
                let paused = followers[rng.usize(..followers.len())];
                cluster.node(paused).pause();
                std::thread::sleep(Duration::from_millis(rng.u64(1000..2000)));
                cluster.node(paused).resume();
            }
            Fault::OneWayCut => {
                let followers = cluster.others(leader);
                let follower = followers[rng.usize(..followers.len())];
                let partitions = cluster.partitions.as_ref().expect("a proxied cluster");
                partitions.cut_one_way(leader, follower);
                std::thread::sleep(Duration::from_millis(rng.u64(1500..2500)));
                partitions.restore_one_way(leader, follower);
            }
            Fault::Flap => {
                let a = ids[rng.usize(..ids.len())];
                let b = *ids
                    .iter()
                    .filter(|&&i| i != a)
                    .nth(rng.usize(..ids.len() - 1))
                    .unwrap();
                let partitions = cluster.partitions.as_ref().expect("a proxied cluster");
                let stop = Instant::now() + Duration::from_secs(2);
                while Instant::now() < stop {
                    partitions.isolate(a, &[b]);
                    std::thread::sleep(Duration::from_millis(rng.u64(150..400)));
                    partitions.heal();
                    std::thread::sleep(Duration::from_millis(rng.u64(150..400)));
                }
            }
            Fault::ClockJump(dir) => {
                let file = clock_file(dir, leader);
                let term = cluster
                    .node(leader)
                    .status()
                    .and_then(|s| s["term"].as_u64());
                let before = linearizable_version(cluster.node(leader).client).unwrap_or(0);
                std::fs::write(&file, jumps.next().expect("a cycle")).expect("faketime file");
                std::thread::sleep(Duration::from_millis(rng.u64(1500..2500)));
                std::fs::write(&file, "+0").expect("faketime file");
                // The server may use the jumped offset that long after the reset.
                std::thread::sleep(Duration::from_secs(CLOCK_CACHE_SECS) + GAP);
                let after = linearizable_version(cluster.node(leader).client).unwrap_or(u64::MAX);
                log.clock_windows.push((before, after));
                let status = cluster.node(leader).status();
                let same =
                    status.is_some_and(|s| s["state"] == "Leader" && s["term"].as_u64() == term);
                if !same {
                    log.elections_during_jumps += 1;
                }
            }
        }
        log.count += 1;
    }
    log
}

fn index_of(ids: &[u64], id: u64) -> usize {
    ids.iter().position(|&i| i == id).expect("a known server")
}
