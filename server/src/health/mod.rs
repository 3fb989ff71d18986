//! The data-node health monitor (design §5): the leader probes every registered data
//! node and commits health transitions through Raft.
//!
//! Code map: `tracker` decides transitions (pure: outcomes + committed state → updates);
//! `schedule` plans a round (pure: targets, probe kind per node, jitter); `probe` does
//! the I/O (HTTP `GET /health` or a TCP connect on glommio); `monitor` runs rounds on
//! the control executor while this server leads, commits each round's transitions as
//! one change set, and serves `POST /api/topology/health` through [`HealthHandle`]
//! (on a follower, by asking the leader over the peer port).
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

use concord_model::Health;
use serde::{Deserialize, Serialize};

use crate::config::ProbeKind;
use crate::control::WriteError;
use crate::executor::Shared;
use crate::raft::RaftNode;

pub use monitor::supervise;

/// One node's result in a round, as `POST /api/topology/health` answers it. (No
/// `skip_serializing_if`: the report also crosses the peer port in postcard, which
/// is not self-describing; absent values are JSON `null`.)
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    pub node_id: String,
    pub address: String,
    /// `http` or `tcp`.
    pub probe: String,
    pub passed: bool,
    pub error: Option<String>,
    pub attempts: u32,
    /// Duration of the last attempt, microseconds.
    pub latency_us: u64,
    pub previous_health: Health,
    pub health: Health,
    /// Consecutive failed checks (the leader's count; the topology holds it while
    /// the node is degraded).
    pub failure_count: u32,
    /// Consecutive passed checks (the leader's count, never replicated).
    pub success_count: u32,
    pub last_seen: u64,
    pub last_error: Option<String>,
    /// True when this round committed a change of this node.
    pub committed: bool,
    pub label_error: Option<String>,
}

/// What one round found and committed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundReport {
    /// The version the round committed, or the current one when it committed nothing.
    pub version: u64,
    /// How many nodes the round's change set updated (0: no change set).
    pub updated: usize,
    pub results: Vec<NodeResult>,
}

/// Why a round asked for through [`HealthHandle::run_now`] did not run.
#[derive(Debug, thiserror::Error)]
pub enum HealthRoundError {
    #[error("this server is not the Raft leader; only the leader probes{}", leader_hint(*.leader))]
    NotLeader { leader: Option<u64> },
    #[error("no data node {0:?} is registered")]
    UnknownNode(String),
    #[error("health checking is disabled (topology.health_check.enabled: false)")]
    Disabled,
    #[error("the round's changes were not committed: {0}")]
    Commit(WriteError),
    #[error("the health monitor stopped (leadership changed); retry")]
    Stopped,
    #[error("the leader (node {leader}) did not run the round: {reason}")]
    Forward { leader: u64, reason: String },
}

/// The answer of the leader to a round a follower forwarded.
pub type RemoteRound = Result<RoundReport, RemoteHealthError>;

/// Why the leader did not run a forwarded round (crosses the peer port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteHealthError {
    #[error("the server asked is not the leader")]
    NotLeader,
    #[error("no data node {0:?} is registered")]
    UnknownNode(String),
    #[error("health checking is disabled (topology.health_check.enabled: false)")]
    Disabled,
    #[error("{0}")]
    Failed(String),
}

impl From<HealthRoundError> for RemoteHealthError {
    fn from(e: HealthRoundError) -> RemoteHealthError {
        match e {
            HealthRoundError::NotLeader { .. } => RemoteHealthError::NotLeader,
            HealthRoundError::UnknownNode(id) => RemoteHealthError::UnknownNode(id),
            HealthRoundError::Disabled => RemoteHealthError::Disabled,
            other => RemoteHealthError::Failed(other.to_string()),
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

/// A request for a round now, from the HTTP route.
pub struct ManualRequest {
    pub only: Option<String>,
    pub reply: async_channel::Sender<Result<RoundReport, HealthRoundError>>,
}

/// The control executor's handle on the monitor of the current leadership term.
#[derive(Clone)]
pub struct HealthHandle {
    shared: Arc<Shared>,
    raft: Rc<RaftNode>,
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
    pub fn new(shared: Arc<Shared>, raft: Rc<RaftNode>) -> HealthHandle {
        HealthHandle {
            shared,
            raft,
            current: Rc::default(),
        }
    }

    fn set(&self, sender: Option<async_channel::Sender<ManualRequest>>) {
        *self.current.borrow_mut() = sender;
    }

    /// Runs a round now (after the one in progress, if any) over every node or `only`:
    /// here when this server leads, else on the leader, asked over the peer port.
    pub async fn run_now(&self, only: Option<String>) -> Result<RoundReport, HealthRoundError> {
        if !self.shared.config.topology.health_check.enabled {
            return Err(HealthRoundError::Disabled);
        }
        if self.current.borrow().is_some() {
            return self.run_here(only).await;
        }
        // A round can wait for the periodic one in progress: allow the request's time.
        let timeout = self.shared.config.http.request_timeout;
        let asked = self
            .raft
            .call_leader::<_, RemoteRound>(crate::raft::wire::HEALTH_ROUND, &only, timeout)
            .await;
        match asked {
            None => Err(self.not_leader()),
            Some((_, Ok(Ok(report)))) => Ok(report),
            Some((_, Ok(Err(RemoteHealthError::UnknownNode(id))))) => {
                Err(HealthRoundError::UnknownNode(id))
            }
            Some((_, Ok(Err(RemoteHealthError::Disabled)))) => Err(HealthRoundError::Disabled),
            Some((leader, Ok(Err(e)))) => Err(HealthRoundError::Forward {
                leader,
                reason: e.to_string(),
            }),
            Some((leader, Err(e))) => Err(HealthRoundError::Forward {
                leader,
                reason: e.to_string(),
            }),
        }
    }

    /// A round a follower forwarded: run here if this server leads, never forwarded on.
    pub async fn run_for_follower(&self, only: Option<String>) -> RemoteRound {
        if !self.shared.config.topology.health_check.enabled {
            return Err(RemoteHealthError::Disabled);
        }
        self.run_here(only).await.map_err(RemoteHealthError::from)
    }

    async fn run_here(&self, only: Option<String>) -> Result<RoundReport, HealthRoundError> {
        let sender = self.current.borrow().clone();
        let Some(sender) = sender else {
            return Err(self.not_leader());
        };
        let (reply, answer) = async_channel::bounded(1);
        if sender.send(ManualRequest { only, reply }).await.is_err() {
            return Err(HealthRoundError::Stopped);
        }
        answer
            .recv()
            .await
            .unwrap_or(Err(HealthRoundError::Stopped))
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
        let answers: Vec<RemoteRound> = vec![Ok(report), Err(RemoteHealthError::Disabled)];
        for answer in answers {
            let bytes = crate::raft::wire::encode(&answer).unwrap();
            let back: RemoteRound = crate::raft::wire::decode(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{answer:?}"));
        }
    }
}
