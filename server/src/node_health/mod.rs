//! The data-node health monitor: the leader probes every registered data node and
//! commits health transitions through Raft.
//!
//! Code map: `tracker` decides transitions (pure: outcomes + committed state → updates);
//! `schedule` plans a round (pure: targets, probe kind per node, jitter); `probe` does
//! the I/O (HTTP `GET /health` or a TCP connect on glommio); `monitor` runs rounds on
//! the control executor while this server leads, commits each round's transitions as
//! one change set, and runs rounds asked for through [`HealthHandle`] (the service's
//! `HealthRound` operation; on a follower the service forwards it to the leader).
//!
//! Invariants: only the leader probes (a monitor lives exactly as long as one
//! leadership term); rounds never overlap; one round commits at most one change set
//! holding at most one update per node; a steady node is never committed.

pub mod monitor;
pub mod probe;
pub mod schedule;
pub mod tracker;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use concord_api::RoundReport;

use crate::config::ProbeKind;
use crate::executor::Shared;
use crate::service::{ErrorKind, ServiceError};

pub use monitor::supervise;

/// Why a round asked for through [`HealthHandle::run_here`] did not run.
#[derive(Debug, thiserror::Error)]
pub enum HealthRoundError {
    #[error("this server is not the Raft leader; only the leader probes{}", leader_hint(*.leader))]
    NotLeader { leader: Option<u64> },
    #[error("no data node {0:?} is registered")]
    UnknownNode(String),
    #[error("health checking is disabled (topology.health_check.enabled: false)")]
    Disabled,
    #[error("the round's changes were not committed: {0}")]
    Commit(ServiceError),
    #[error("the health monitor stopped (leadership changed); retry")]
    Stopped,
    #[error(
        "{MANUAL_ROUNDS_QUEUED} health rounds are already waiting on the leader; retry shortly"
    )]
    Busy,
    #[error("the round was abandoned: its caller left before the probes finished")]
    Abandoned,
}

impl From<HealthRoundError> for ServiceError {
    fn from(e: HealthRoundError) -> ServiceError {
        let message = e.to_string();
        match e {
            HealthRoundError::NotLeader { .. } => ServiceError::not_leader_here(message),
            HealthRoundError::UnknownNode(_) => ServiceError::new(ErrorKind::NotFound, message),
            HealthRoundError::Disabled => ServiceError::new(ErrorKind::Conflict, message),
            HealthRoundError::Commit(_)
            | HealthRoundError::Stopped
            | HealthRoundError::Busy
            | HealthRoundError::Abandoned => ServiceError::busy(message),
        }
    }
}

/// The wire name of a probe kind.
pub fn probe_name(kind: ProbeKind) -> String {
    match kind {
        ProbeKind::Http => "http".into(),
        ProbeKind::Tcp => "tcp".into(),
    }
}

fn leader_hint(leader: Option<u64>) -> String {
    match leader {
        Some(id) => format!("; the leader is node {id}"),
        None => "; no leader is known".into(),
    }
}

/// Rounds asked for and not yet started, at most (each one is a whole round of probes:
/// queueing more only makes callers wait past their timeouts).
pub const MANUAL_ROUNDS_QUEUED: usize = 8;

/// A request for a round now, from the HTTP route. The caller drops the receiving end
/// of `reply` when it gives up; the monitor then skips or abandons the round.
pub struct ManualRequest {
    pub only: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<Result<RoundReport, HealthRoundError>>,
}

/// The control executor's handle on the monitor of the current leadership term.
#[derive(Clone)]
pub struct HealthHandle {
    shared: Arc<Shared>,
    /// Set while this server leads and its monitor runs.
    current: Rc<RefCell<Option<async_channel::Sender<ManualRequest>>>>,
}

impl std::fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHandle")
            .field("monitoring", &self.current.borrow().is_some())
            .finish()
    }
}

impl HealthHandle {
    pub fn new(shared: Arc<Shared>) -> HealthHandle {
        HealthHandle {
            shared,
            current: Rc::default(),
        }
    }

    fn set(&self, sender: Option<async_channel::Sender<ManualRequest>>) {
        *self.current.borrow_mut() = sender;
    }

    /// Runs a round now (after the one in progress, if any) over every node or `only`,
    /// when this server leads; `NotLeaderHere` otherwise (the service forwards it);
    /// a retryable 503 at once when [`MANUAL_ROUNDS_QUEUED`] rounds are waiting.
    pub async fn run_here(&self, only: Option<String>) -> Result<RoundReport, ServiceError> {
        if !self.shared.config.topology.health_check.enabled {
            return Err(HealthRoundError::Disabled.into());
        }
        let sender = self.current.borrow().clone();
        let Some(sender) = sender else {
            return Err(self.not_leader().into());
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        match sender.try_send(ManualRequest { only, reply }) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(_)) => {
                self.shared.refusals.operation_refused();
                return Err(HealthRoundError::Busy.into());
            }
            Err(async_channel::TrySendError::Closed(_)) => {
                return Err(HealthRoundError::Stopped.into())
            }
        }
        answer
            .await
            .unwrap_or(Err(HealthRoundError::Stopped))
            .map_err(ServiceError::from)
    }

    fn not_leader(&self) -> HealthRoundError {
        let leader = self.shared.raft.leader();
        HealthRoundError::NotLeader {
            leader: (leader != 0).then_some(leader),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Answer, Outcome};
    use concord_api::NodeResult;
    use concord_model::Health;

    #[test]
    fn a_round_report_crosses_the_peer_port() {
        let report = RoundReport {
            version: 9,
            updated: 1,
            results: vec![NodeResult {
                node_id: "n1".into(),
                address: "127.0.0.1:1".into(),
                probe: "tcp".into(),
                passed: false,
                error: Some("refused".into()),
                attempts: 3,
                latency_us: 120,
                previous_health: Health::Healthy,
                health: Health::Degraded,
                failure_count: 1,
                success_count: 0,
                last_seen: 5,
                last_error: Some("refused".into()),
                committed: true,
                label_error: None,
            }],
        };
        let answers: Vec<Answer> = vec![
            Ok(Outcome::HealthRound(report)),
            Err(HealthRoundError::Disabled.into()),
        ];
        for answer in answers {
            let bytes = postcard::to_stdvec(&answer).unwrap();
            let back: Answer = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{answer:?}"));
        }
    }
}
