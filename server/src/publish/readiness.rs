//! [`Readiness`]: whether this server may answer reads yet, and whether it is ready.
//!
//! A restarted server must never answer from a state older than what it had durably
//! before it stopped. The control executor sets the *durable floor* (the Raft index
//! the applied state must reach, once it is known) and, should Raft stop, the reason;
//! each serving executor compares the floor with its own publication, so a read is
//! admitted only once the very state it would be answered from has reached it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::Published;
use crate::service::ServiceError;

/// The floor before the control executor knows it (storage still opening, or a
/// restarted cluster member that has not heard a leader's commit index yet).
const UNKNOWN: u64 = u64::MAX;

/// Shared by all executors; written only by the control executor.
pub struct Readiness {
    floor: AtomicU64,
    /// Why Raft stopped, once it has (the process exits shortly after).
    stopped: OnceLock<String>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            floor: AtomicU64::new(UNKNOWN),
            stopped: OnceLock::new(),
        }
    }
}

impl Readiness {
    /// Sets the durable floor: the applied index below which nothing is answered.
    /// Set once; later calls are ignored (the floor never moves).
    pub fn set_floor(&self, index: u64) {
        let _ = self
            .floor
            .compare_exchange(UNKNOWN, index, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Records that Raft has stopped; true the first time.
    pub fn stop(&self, reason: String) -> bool {
        self.stopped.set(reason).is_ok()
    }

    /// Why Raft stopped, if it has.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// Whether reads and SSE may be answered from `published`: refused (503, retry)
    /// while it is older than the durable floor.
    pub fn admit(&self, published: &Published) -> Result<(), ServiceError> {
        match self.loading(published) {
            None => Ok(()),
            Some(why) => Err(ServiceError::unavailable(format!(
                "{why}; retry shortly or ask another server"
            ))
            .retry(true)),
        }
    }

    /// Why `/readyz` is not 200, or `None` when it is: Raft running, the durable state
    /// applied, and a leader known (`leader_known`).
    pub fn not_ready(&self, published: &Published, leader_known: bool) -> Option<String> {
        if let Some(reason) = self.stopped() {
            return Some(format!("raft stopped: {reason}"));
        }
        if let Some(why) = self.loading(published) {
            return Some(why);
        }
        (!leader_known).then(|| "no Raft leader heard".to_string())
    }

    /// While `published` is below the floor: what the server is waiting for.
    fn loading(&self, published: &Published) -> Option<String> {
        let applied = published.applied_index;
        match self.floor.load(Ordering::Acquire) {
            UNKNOWN if self.stopped().is_some() => Some(format!(
                "raft stopped before this server finished loading its state (applied index {applied})"
            )),
            UNKNOWN => Some(format!(
                "this server is loading its state: waiting for the Raft leader's commit index (applied index {applied})"
            )),
            floor if applied < floor => Some(format!(
                "this server is loading its state: applied index {applied} of {floor}"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_model::TopologyState;

    fn at(applied_index: u64) -> Published {
        Published::build(TopologyState::new(16), applied_index, None)
    }

    #[test]
    fn reads_wait_for_the_floor_and_it_is_set_once() {
        let readiness = Readiness::default();
        let refused = readiness.admit(&at(5)).unwrap_err();
        assert!(refused.retry, "{refused:?}");
        assert!(refused.message.contains("loading"), "{}", refused.message);
        readiness.set_floor(7);
        readiness.set_floor(2);
        let refused = readiness.admit(&at(5)).unwrap_err();
        assert!(refused.message.contains("5 of 7"), "{}", refused.message);
        assert!(readiness.admit(&at(7)).is_ok());
        assert_eq!(
            readiness.not_ready(&at(7), false).as_deref(),
            Some("no Raft leader heard")
        );
        assert_eq!(readiness.not_ready(&at(8), true), None);
    }

    #[test]
    fn a_stopped_raft_is_never_ready() {
        let readiness = Readiness::default();
        readiness.set_floor(0);
        assert!(readiness.stop("disk full".into()));
        assert!(!readiness.stop("again".into()));
        let why = readiness.not_ready(&at(3), true).unwrap();
        assert!(why.contains("disk full"), "{why}");
        // Reads of what was recovered are still answered until the process exits.
        assert!(readiness.admit(&at(3)).is_ok());
    }
}
