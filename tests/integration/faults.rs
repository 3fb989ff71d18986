//! Faults beyond SIGKILL and clean partitions, each over real processes and bounded
//! in time, each checking what would break on a broken server: acknowledged writes
//! kept, histories linearizable (the checker of `linearizable.rs`), servers rejoining.
//!
//! - [`histories`]: paused leader and follower, asymmetric and flapping partitions,
//!   slow fsync on one server, all under the history checker;
//! - [`clock`]: the leader's wall clock jumps an hour either way;
//! - [`torn_tail`]: a torn record at the end of a server's log after SIGKILL;
//! - [`lost_log`]: a follower restarted on a wiped data directory under its old id;
//! - [`disk_full`]: one server's data directory on a small tmpfs that fills up;
//! - [`snapshot_install`]: a lagging follower killed again and again while it
//!   installs the leader's snapshot;
//! - [`broken`]: a server broken on purpose fails the history checker;
//! - [`shims`]: the fsync-delaying LD_PRELOAD shim and the tmpfs mount guard.
//!
//! The fault matrix (fault, what is asserted, test) is in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cluster_support::{join_versions, put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

mod broken;
mod clock;
mod disk_full;
mod histories;
mod lost_log;
mod shims;
mod snapshot_install;
mod torn_tail;

/// Writes `count` data nodes named `prefix-i` through the leader; returns each one's
/// acknowledged version.
pub fn write_acked(cluster: &Cluster, prefix: &str, count: usize) -> BTreeMap<String, u64> {
    let mut acked = BTreeMap::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let deadline = Instant::now() + WAIT;
        loop {
            let leader = cluster.leader(WAIT);
            match put_node(cluster.node(leader).client, &name, None) {
                Ok(version) => {
                    acked.insert(name, version);
                    break;
                }
                // No leader for a moment: the same unique node again is harmless.
                Err(status) => assert!(Instant::now() < deadline, "write {name} refused: {status}"),
            }
        }
    }
    acked
}

/// Every acknowledged write is on server `id`, at its acknowledged version.
pub fn assert_has_all(cluster: &Cluster, id: u64, acked: &BTreeMap<String, u64>) {
    let joined = join_versions(cluster.node(id));
    for (name, version) in acked {
        assert_eq!(
            joined.get(name),
            Some(version),
            "server {id} lost acknowledged write {name}"
        );
    }
}
