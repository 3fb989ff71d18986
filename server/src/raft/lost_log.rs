//! Followers that lost log entries they had acknowledged: a data directory wiped, or
//! restored from an older copy, and the server restarted under its old id.
//!
//! openraft treats a follower whose log went back below what it acknowledged to the
//! current leader as a bug: the leader panics ("follower log reversion is not
//! allowed"), which stops this process. One damaged disk would so take the leader
//! down. Instead, the peer client keeps an [`AckLedger`]: per peer, how far it
//! acknowledged this server's log in this server's current leader term. An append
//! answered `Conflict` at or below that point is not handed to openraft; the RPC
//! fails as `Unreachable`, so the leader goes on with the other servers and the
//! damaged one stays out, reported (one ERROR line per peer and term, and
//! `concord_raft_followers_log_lost_total`), until it is replaced under a new id.
//!
//! Within one leader's term a follower never drops an entry it acknowledged: what it
//! acknowledged matches the leader's log, and only entries that conflict with the
//! leader's are ever truncated. So a conflict there is lost data, nothing else. Across
//! terms an acknowledged entry may rightly go (a newer leader overwrites what was
//! never committed), so the record is per term.

use std::cell::RefCell;
use std::collections::HashMap;

/// How far one peer acknowledged this server's log, in one leader term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Acknowledged {
    term: u64,
    index: u64,
    reported: bool,
}

/// What a conflict contradicted: the peer had acknowledged up to `acknowledged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostLog {
    pub acknowledged: u64,
    /// True the first time this peer's loss is found in this term (log and count once).
    pub first_report: bool,
}

/// Per peer, the highest log index it acknowledged in this server's latest term as
/// leader. Single-threaded: the peer clients all run on the control executor.
#[derive(Debug, Default)]
pub struct AckLedger {
    peers: RefCell<HashMap<u64, Acknowledged>>,
}

impl AckLedger {
    /// `peer` answered an append of leader term `term` with success: it holds this
    /// server's log through `index`.
    pub fn acknowledged(&self, peer: u64, term: u64, index: u64) {
        let fresh = Acknowledged {
            term,
            index,
            reported: false,
        };
        let mut peers = self.peers.borrow_mut();
        let entry = peers.entry(peer).or_insert(fresh);
        match term.cmp(&entry.term) {
            std::cmp::Ordering::Greater => *entry = fresh,
            std::cmp::Ordering::Equal => entry.index = entry.index.max(index),
            std::cmp::Ordering::Less => {}
        }
    }

    /// `peer` answered an append of leader term `term` whose previous entry is at
    /// `prev_index` with `Conflict`: the loss it reveals, if it contradicts what the
    /// peer acknowledged in that term (`None`: an ordinary conflict, the search for
    /// where the logs agree goes on).
    pub fn conflict(&self, peer: u64, term: u64, prev_index: u64) -> Option<LostLog> {
        let mut peers = self.peers.borrow_mut();
        let entry = peers.get_mut(&peer)?;
        if entry.term != term || prev_index > entry.index {
            return None;
        }
        let first_report = !entry.reported;
        entry.reported = true;
        Some(LostLog {
            acknowledged: entry.index,
            first_report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_below_what_was_acknowledged_in_the_term_is_a_lost_log() {
        let ledger = AckLedger::default();
        assert_eq!(ledger.conflict(3, 5, 0), None, "nothing acknowledged yet");
        ledger.acknowledged(3, 5, 10);
        ledger.acknowledged(3, 5, 7); // an older answer arriving late
        assert_eq!(ledger.conflict(3, 5, 11), None, "past it: the usual search");
        assert_eq!(
            ledger.conflict(3, 5, 10),
            Some(LostLog {
                acknowledged: 10,
                first_report: true
            })
        );
        assert_eq!(
            ledger.conflict(3, 5, 2),
            Some(LostLog {
                acknowledged: 10,
                first_report: false
            }),
            "reported once per term"
        );
        assert_eq!(ledger.conflict(4, 5, 0), None, "another peer");
    }

    #[test]
    fn each_leader_term_starts_afresh() {
        let ledger = AckLedger::default();
        ledger.acknowledged(3, 5, 10);
        // Another leader's term: what was acknowledged to this server before may have
        // been overwritten rightly.
        assert_eq!(ledger.conflict(3, 6, 4), None);
        ledger.acknowledged(3, 7, 4);
        assert_eq!(ledger.conflict(3, 7, 9), None);
        assert_eq!(
            ledger.conflict(3, 7, 4).map(|l| l.acknowledged),
            Some(4),
            "the new term's own record counts"
        );
        ledger.acknowledged(3, 5, 50);
        assert_eq!(
            ledger.conflict(3, 7, 20),
            None,
            "an answer from an older term changes nothing"
        );
        ledger.acknowledged(3, 8, 1);
        assert_eq!(
            ledger.conflict(3, 8, 1).map(|l| l.first_report),
            Some(true),
            "a new term reports again"
        );
    }
}
