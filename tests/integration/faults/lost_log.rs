//! A follower whose data directory was lost restarts under its old id: it no longer
//! holds entries it had acknowledged. openraft's leader stops on such a follower
//! ("follower log reversion is not allowed"); ours keeps it out of replication,
//! reports it once (an ERROR line naming it, `concord_raft_followers_log_lost_total`)
//! and goes on leading with the other server.

use std::time::Duration;

use concord_testkit::wait_for;

use crate::cluster_support::{Cluster, Node};

use super::{assert_has_all, write_acked, WAIT};

/// `concord_raft_followers_log_lost_total` from `node`'s `/metrics`.
fn lost_logs(node: &Node) -> Option<u64> {
    let metrics = node.get("/metrics")?.text();
    metrics.lines().find_map(|l| {
        l.strip_prefix("concord_raft_followers_log_lost_total ")?
            .parse()
            .ok()
    })
}

#[test]
fn a_follower_that_lost_its_data_is_kept_out_and_the_leader_goes_on() {
    let mut cluster = Cluster::start(3, false, "");
    let mut acked = write_acked(&cluster, "before", 10);
    let leader = cluster.leader(WAIT);
    let victim = cluster.others(leader)[0];
    let last = acked.values().copied().max().expect("writes");
    // The victim has acknowledged every write before its disk goes.
    cluster.converged(&cluster.ids(), last, WAIT);
    assert_eq!(lost_logs(cluster.node(leader)), Some(0));
    cluster.kill(victim);
    let data = cluster.data_dir(victim);
    std::fs::remove_dir_all(&data).expect("wipe the victim's data directory");
    std::fs::create_dir_all(&data).expect("an empty data directory");
    cluster.restart(victim);

    // The leader meets it at its next heartbeat.
    wait_for(WAIT, "the leader reports the follower's lost log", || {
        lost_logs(cluster.node(leader)).filter(|n| *n > 0)
    });
    acked.extend(write_acked(&cluster, "after", 5));
    std::thread::sleep(Duration::from_millis(500));
    let node = cluster.node(leader);
    assert!(node.is_running(), "the leader goes on:\n{}", node.log());
    assert_eq!(cluster.leader(WAIT), leader, "and still leads");
    assert_eq!(
        lost_logs(node),
        Some(1),
        "reported once, however often the follower is retried"
    );
    let log = node.log();
    assert!(
        log.contains(&format!("peer {victim} "))
            && log.contains("lost log entries it had acknowledged"),
        "the leader's log names the follower:\n{log}"
    );
    let witness = cluster
        .others(leader)
        .into_iter()
        .find(|id| *id != victim)
        .expect("a third server");
    assert_has_all(&cluster, leader, &acked);
    assert_has_all(&cluster, witness, &acked);
}
