//! The service boundary between the serving executors and the control executor,
//! where Raft lives: ONE [`Operation`] enum, ONE [`Outcome`], ONE [`ServiceError`].
//!
//! Handlers never touch openraft: they send an operation over a channel
//! ([`ServiceClient`]) and await its outcome. The control executor runs it (the
//! `dispatch` module), here when this server leads, else on the leader through the
//! one generic forwarding path of `raft` (operations with a [`Operation::forward_route`]);
//! the leader's side of a forwarded operation is reached through [`LeaderSide`].
//!
//! Adding an operation: an arm here (and its route when the leader runs it), its
//! handler on the control side (`dispatch`), its HTTP handler.

pub mod error;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use concord_api::{ClusterStatus, RoundReport};
use concord_model::Command;
use serde::{Deserialize, Serialize};

pub use error::{ErrorKind, ServiceError};

use crate::net::capacity::{Capacity, Place};

/// Peer route of a write forwarded by a follower to the leader.
pub const WRITE_ROUTE: &str = "/raft/write";
/// Peer route of a read index asked of the leader (linearizable reads on a follower).
pub const READ_INDEX_ROUTE: &str = "/raft/read-index";
/// Peer route of a health round asked of the leader.
pub const HEALTH_ROUND_ROUTE: &str = "/raft/health-round";

/// Every peer route of a forwarded operation (the peer listener serves them all
/// through [`LeaderSide`]).
pub const FORWARD_ROUTES: &[&str] = &[WRITE_ROUTE, READ_INDEX_ROUTE, HEALTH_ROUND_ROUTE];

/// What a serving executor can ask of the control executor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Operation {
    /// Commit one change set; answers [`Outcome::Written`].
    Write(Command),
    /// Confirm leadership and give the log index a linearizable read must see applied.
    ReadIndex,
    /// Run a data-node health round now (every node, or `only`) and report it.
    HealthRound { only: Option<String> },
    /// Add (or re-add) a non-voting member; with `wait`, until it has caught up.
    AddLearner {
        node_id: u64,
        address: String,
        wait: bool,
    },
    /// Make `voters` the voting members (learners promoted, others removed).
    ChangeMembership { voters: BTreeSet<u64> },
    /// Raft's view of the cluster.
    Status,
}

impl Operation {
    /// The peer route on which a follower forwards this operation to the leader, or
    /// `None` when it is answered where it is asked (membership changes answer "not
    /// the leader" instead, so the operator knows which server decided).
    pub fn forward_route(&self) -> Option<&'static str> {
        match self {
            Operation::Write(_) => Some(WRITE_ROUTE),
            Operation::ReadIndex => Some(READ_INDEX_ROUTE),
            Operation::HealthRound { .. } => Some(HEALTH_ROUND_ROUTE),
            Operation::AddLearner { .. }
            | Operation::ChangeMembership { .. }
            | Operation::Status => None,
        }
    }

    /// True when running it twice is harmless, so a failure of unknown outcome may be
    /// retried at once (a write may have committed; a read index or a round may not).
    pub fn idempotent(&self) -> bool {
        !matches!(self, Operation::Write(_))
    }
}

/// What an operation produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Outcome {
    /// A committed write: the version it produced.
    Written {
        version: u64,
    },
    /// The log index a linearizable read waits for.
    ReadIndex {
        index: u64,
    },
    HealthRound(RoundReport),
    /// The cluster after a membership change, or its status.
    Cluster(ClusterStatus),
}

fn mismatch(outcome: &Outcome) -> ServiceError {
    ServiceError::unavailable(format!(
        "unexpected answer from the control executor: {outcome:?}"
    ))
}

impl Outcome {
    pub fn written(self) -> Result<u64, ServiceError> {
        match self {
            Outcome::Written { version } => Ok(version),
            other => Err(mismatch(&other)),
        }
    }

    pub fn read_index(self) -> Result<u64, ServiceError> {
        match self {
            Outcome::ReadIndex { index } => Ok(index),
            other => Err(mismatch(&other)),
        }
    }

    pub fn health_round(self) -> Result<RoundReport, ServiceError> {
        match self {
            Outcome::HealthRound(report) => Ok(report),
            other => Err(mismatch(&other)),
        }
    }

    pub fn cluster(self) -> Result<ClusterStatus, ServiceError> {
        match self {
            Outcome::Cluster(status) => Ok(status),
            other => Err(mismatch(&other)),
        }
    }
}

/// An operation's result.
pub type Answer = Result<Outcome, ServiceError>;

/// One operation on its way to the control executor, with where to answer.
///
/// The caller drops the receiving end when it gives up (its client left or its
/// request timed out); the control side watches `reply.closed()` and drops the work.
pub struct Call {
    pub operation: Operation,
    pub reply: tokio::sync::oneshot::Sender<Answer>,
    /// Its place among `raft.max_pending_operations`, held until the work is done.
    pub place: Place,
}

/// The serving executors' handle on the control executor.
#[derive(Clone)]
pub struct ServiceClient {
    sender: async_channel::Sender<Call>,
    /// Operations queued for or running on the control executor, all executors together.
    pending: Arc<Capacity>,
}

impl ServiceClient {
    /// A client of `sender`, refusing operations once `max_pending` are queued or running.
    pub fn new(sender: async_channel::Sender<Call>, max_pending: usize) -> ServiceClient {
        ServiceClient {
            sender,
            pending: Capacity::new(max_pending),
        }
    }

    /// Runs `operation` on the control executor and waits for its outcome; answers a
    /// retryable 503 at once when `raft.max_pending_operations` are already pending.
    pub async fn call(&self, operation: Operation) -> Answer {
        let Some(place) = self.pending.take() else {
            return Err(ServiceError::busy(format!(
                "{} operations are already waiting for Raft on this server (raft.max_pending_operations); retry shortly",
                self.pending.max()
            )));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let call = Call {
            operation,
            reply,
            place,
        };
        if self.sender.send(call).await.is_err() {
            return Err(ServiceError::stopped());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ServiceError::stopped()))
    }

    /// Operations refused since start because too many were pending.
    pub fn refused(&self) -> u64 {
        self.pending.refused()
    }
}

/// The leader's side of forwarded operations: runs one here, never forwarding it on
/// (a request makes at most one hop). Implemented by the control executor's
/// dispatcher, called by the peer listener.
pub trait LeaderSide {
    fn run_here(&self, operation: Operation) -> Pin<Box<dyn Future<Output = Answer> + '_>>;
}
