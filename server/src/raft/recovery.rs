//! [`DurableFloor`]: what this server held durably when it started, i.e. the applied
//! index it must reach again before it answers a read.
//!
//! openraft re-applies the log up to the committed index `raft-log` persisted, but
//! that index is persisted lazily: an entry may have been committed, applied and
//! acknowledged to a client while its commit record was still unflushed. So:
//! - a single voter (its log is the cluster's) must apply its whole log: whatever it
//!   holds may have been acknowledged, and it commits all of it once it leads again;
//! - a member of a larger cluster cannot tell which entries of its log tail were
//!   committed, so it waits for a leader's commit index (openraft's
//!   `cluster_committed`, which is only ever set from a leader granted by a quorum)
//!   and applies up to it;
//! - a server with nothing on disk (brand new, or joining) had nothing to lose.

/// The applied index below which this server must not answer, as known at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurableFloor {
    /// Nothing was on disk: the empty state is all this server ever had.
    Nothing,
    /// The only voter: this index (its last log entry, or its snapshot's).
    Index(u64),
    /// A member of a larger cluster: the commit index of the first leader heard, and
    /// at least this (the committed index persisted here, or the snapshot's).
    LeaderCommit { at_least: u64 },
}

impl DurableFloor {
    /// The floor of a server whose storage held, at start, a log up to
    /// `last_log_index`, a persisted commit index `committed`, a snapshot up to
    /// `snapshot_index`, and whose membership has these `voters`.
    pub fn at_start(
        node_id: u64,
        last_log_index: Option<u64>,
        committed: Option<u64>,
        snapshot_index: Option<u64>,
        voters: &[u64],
    ) -> DurableFloor {
        if last_log_index.is_none() && snapshot_index.is_none() {
            return DurableFloor::Nothing;
        }
        let on_disk = last_log_index.max(snapshot_index).unwrap_or(0);
        if voters == [node_id] {
            return DurableFloor::Index(on_disk);
        }
        DurableFloor::LeaderCommit {
            at_least: committed.max(snapshot_index).unwrap_or(0),
        }
    }

    /// The floor once known: `cluster_committed` is the leader's commit index as
    /// heard here (`None` until a leader has granted or reported one).
    pub fn resolve(self, cluster_committed: Option<u64>) -> Option<u64> {
        match self {
            DurableFloor::Nothing => Some(0),
            DurableFloor::Index(index) => Some(index),
            DurableFloor::LeaderCommit { at_least } => {
                cluster_committed.map(|leader| leader.max(at_least))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brand_new_server_has_nothing_to_wait_for() {
        let floor = DurableFloor::at_start(1, None, None, None, &[]);
        assert_eq!(floor, DurableFloor::Nothing);
        assert_eq!(floor.resolve(None), Some(0));
    }

    #[test]
    fn a_single_voter_waits_for_its_whole_log() {
        // Commit record persisted up to 7 only; entries up to 9 may have been acknowledged.
        let floor = DurableFloor::at_start(1, Some(9), Some(7), Some(5), &[1]);
        assert_eq!(floor, DurableFloor::Index(9));
        assert_eq!(floor.resolve(None), Some(9));
        // A log purged up to its snapshot.
        let floor = DurableFloor::at_start(1, None, None, Some(5), &[1]);
        assert_eq!(floor.resolve(None), Some(5));
    }

    #[test]
    fn a_cluster_member_waits_for_a_leader_commit_index() {
        let floor = DurableFloor::at_start(2, Some(9), Some(7), Some(5), &[1, 2, 3]);
        assert_eq!(floor, DurableFloor::LeaderCommit { at_least: 7 });
        assert_eq!(floor.resolve(None), None);
        assert_eq!(floor.resolve(Some(12)), Some(12));
        assert_eq!(floor.resolve(Some(6)), Some(7));
        // A learner of a single-voter cluster also waits for that voter.
        let floor = DurableFloor::at_start(2, Some(9), None, None, &[1]);
        assert_eq!(floor.resolve(None), None);
    }
}
