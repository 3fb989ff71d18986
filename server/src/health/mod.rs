//! The data-node health monitor (design §5): the leader probes every registered data
//! node and commits health transitions through Raft.
//!
//! Code map: `tracker` decides transitions (pure: outcomes + committed state → updates);
//! `schedule` plans a round (pure: targets, probe kind per node, jitter); `probe` does
//! the I/O (HTTP `GET /health` or a TCP connect on glommio); `monitor` runs rounds on
//! the control executor while this server leads, commits each round's transitions as
//! one change set, and serves `POST /api/topology/health` through [`HealthHandle`].
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

use serde::Serialize;
use topology_model::Health;

use crate::config::ProbeKind;
use crate::control::WriteError;
use crate::executor::Shared;

pub use monitor::supervise;

/// One node's result in a round, as `POST /api/topology/health` answers it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    pub node_id: String,
    pub address: String,
    /// `http` or `tcp`.
    pub probe: &'static str,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// True when this round committed a change of this node.
    pub committed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_error: Option<String>,
}

/// What one round found and committed.
#[derive(Clone, Debug)]
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
}

/// The wire name of a probe kind.
pub fn probe_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Http => "http",
        ProbeKind::Tcp => "tcp",
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
    /// Set while this server leads and its monitor runs.
    current: Rc<RefCell<Option<async_channel::Sender<ManualRequest>>>>,
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

    /// Runs a round now (after the one in progress, if any) over every node or `only`.
    pub async fn run_now(&self, only: Option<String>) -> Result<RoundReport, HealthRoundError> {
        if !self.shared.config.topology.health_check.enabled {
            return Err(HealthRoundError::Disabled);
        }
        let sender = self.current.borrow().clone();
        let Some(sender) = sender else {
            let leader = self.shared.raft.leader();
            return Err(HealthRoundError::NotLeader {
                leader: (leader != 0).then_some(leader),
            });
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
}
