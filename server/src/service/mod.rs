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

use concord_api::{ClusterStatus, RoundReport};
use concord_model::Command;
use serde::{Deserialize, Serialize};

pub use error::{ErrorKind, ServiceError};

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
pub struct Call {
    pub operation: Operation,
    pub reply: async_channel::Sender<Answer>,
}

/// The serving executors' handle on the control executor.
#[derive(Clone)]
pub struct ServiceClient {
    sender: async_channel::Sender<Call>,
}

impl ServiceClient {
    pub fn new(sender: async_channel::Sender<Call>) -> ServiceClient {
        ServiceClient { sender }
    }

    /// Runs `operation` on the control executor and waits for its outcome.
    pub async fn call(&self, operation: Operation) -> Answer {
        let (reply, answer) = async_channel::bounded(1);
        if self.sender.send(Call { operation, reply }).await.is_err() {
            return Err(ServiceError::stopped());
        }
        answer
            .recv()
            .await
            .unwrap_or_else(|_| Err(ServiceError::stopped()))
    }
}

/// The leader's side of forwarded operations: runs one here, never forwarding it on
/// (a request makes at most one hop). Implemented by the control executor's
/// dispatcher, called by the peer listener.
pub trait LeaderSide {
    fn run_here(&self, operation: Operation) -> Pin<Box<dyn Future<Output = Answer> + '_>>;
}
