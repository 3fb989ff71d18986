//! Checked histories (`linearizable.rs`) under paused processes, asymmetric and
//! flapping partitions, and a slow disk on one server.

use crate::fault_schedule::Fault;
use crate::linearizable::{run_checked_history, Plan};

use super::shims::{build_slow_fsync, SLOW_FSYNC_ANNOUNCE};

#[test]
fn history_under_paused_leaders_and_followers_is_linearizable() {
    let checked = run_checked_history(&Plan::new(
        3,
        3,
        &[Fault::PauseLeader, Fault::PauseFollower],
    ));
    // Each paused leader came back as a follower of the leader elected without it.
    assert!(
        checked.faults.stepped_down >= 1,
        "no paused leader came back: {:?}",
        checked.faults
    );
}

#[test]
fn history_under_one_way_and_flapping_partitions_is_linearizable() {
    run_checked_history(&Plan::new(3, 3, &[Fault::OneWayCut, Fault::Flap]));
}

#[test]
fn history_with_a_slow_fsync_on_one_server_is_linearizable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let shim = build_slow_fsync(temp.path()).display().to_string();
    // Server 1 (usually the first leader) waits 50 ms on every fsync.
    let env = move |id: u64| {
        if id != 1 {
            return Vec::new();
        }
        vec![
            ("LD_PRELOAD".to_string(), shim.clone()),
            ("CONCORD_FSYNC_DELAY_MS".to_string(), "50".to_string()),
        ]
    };
    let checked = run_checked_history(&Plan {
        env: &env,
        ..Plan::new(3, 3, &[Fault::KillLeader, Fault::Isolate])
    });
    let log = checked.cluster.node(1).log();
    assert!(
        log.contains(SLOW_FSYNC_ANNOUNCE),
        "server 1 never went through the fsync shim; its log:\n{log}"
    );
}
