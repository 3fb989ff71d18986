//! Restarts during snapshot install: a follower cut off while the leader compacts
//! its log (a snapshot every 20 entries, little kept behind it) can only catch up
//! from the leader's snapshot; it is killed and restarted several times at random
//! moments while that happens. It must end converged with every acknowledged
//! write, and a prober that polls it from outside across all its restarts must
//! never see a version older than one it already saw (the readiness gate holds
//! after a snapshot install as after a log replay).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_testkit::http::request_within;
use concord_testkit::poll_until;

use crate::cluster_support::Cluster;

use super::{assert_has_all, write_acked, WAIT};

/// Restarts while the follower catches up.
const RESTARTS: usize = 4;

#[test]
fn a_follower_killed_during_snapshot_install_converges_and_never_goes_back() {
    let mut cluster = Cluster::start(3, true, "  snapshot_every: 20\n  keep_after_snapshot: 2\n");
    let mut acked = write_acked(&cluster, "before", 5);
    let leader = cluster.leader(WAIT);
    let lagging = cluster.others(leader)[0];
    let ids = cluster.ids();
    cluster
        .partitions
        .as_ref()
        .expect("proxied")
        .isolate(lagging, &ids);

    // Versions the lagging follower answers, in order, from now on.
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let addr = cluster.node(lagging).client;
        std::thread::spawn(move || {
            // Bounded by the flag and, in case the test dies first, a count.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = "/api/topology/version";
                match request_within(addr, "GET", path, &[], b"", Duration::from_secs(2)) {
                    Ok(r) if r.status == 200 => {
                        let version = r.json()["version"].as_u64().expect("version");
                        seen.lock().unwrap().push(version);
                    }
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };

    acked.extend(write_acked(&cluster, "compacted", 60));
    let behind = cluster.node(lagging).status().expect("follower status");
    let its_last = behind["lastLogIndex"].as_u64().unwrap_or(0);
    // The leader purges after it has built a snapshot, and not while a replication
    // stream still reads the entries (the one to the cut-off follower waits for its
    // RPC deadline first): wait for it rather than catch it in between.
    let mut status = serde_json::Value::Null;
    let purged = poll_until(WAIT, || {
        status = cluster.node(leader).status()?;
        let purged = status["purgedIndex"].as_u64().unwrap_or(0);
        (purged > its_last).then_some(purged)
    })
    .unwrap_or_else(|| {
        panic!(
            "the leader kept the entries the follower lacks (follower's last {its_last}): \
             no snapshot would be needed\n{status}"
        )
    });

    cluster.partitions.as_ref().unwrap().heal();
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..RESTARTS {
        std::thread::sleep(Duration::from_millis(rng.u64(50..400)));
        cluster.spawn_again(lagging);
    }
    cluster.restart(lagging);
    let last = acked.values().copied().max().expect("writes");
    cluster.converged(&ids, last, WAIT);
    assert_has_all(&cluster, lagging, &acked);
    let installed = cluster.node(lagging).status().expect("follower status");
    assert!(
        installed["snapshotIndex"].as_u64().unwrap_or(0) >= purged,
        "the follower caught up without the snapshot: {installed}"
    );

    stop.store(true, Ordering::SeqCst);
    prober.join().expect("prober");
    let seen = seen.lock().unwrap();
    eprintln!(
        "prober: {} answers, versions {:?}..{:?}",
        seen.len(),
        seen.first(),
        seen.last()
    );
    for pair in seen.windows(2) {
        assert!(
            pair[1] >= pair[0],
            "the restarted follower answered version {} after {}",
            pair[1],
            pair[0]
        );
    }
    assert!(
        seen.last().is_some_and(|&v| v >= last),
        "the prober never saw {last}"
    );
}
