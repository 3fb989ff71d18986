//! Requests from the serving executors to the control executor, where Raft lives.
//!
//! Handlers never touch openraft: they send a [`ControlRequest`] over a channel and
//! await the reply. The control executor answers each request in its own task, so a
//! slow commit never stalls the channel.

use std::collections::BTreeSet;

use concord_model::{ApplyError, Command};
use serde::Serialize;

/// Why a write was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The state machine refused the change set; nothing was applied.
    #[error("{0}")]
    Rejected(ApplyError),
    /// No leader is known (an election is running); try again shortly.
    #[error("no Raft leader is available; retry shortly")]
    NoLeader,
    /// This server is not the leader; the request should go to `leader`.
    #[error("not the leader; the leader is node {leader_id} at {leader_addr}")]
    ForwardTo { leader_id: u64, leader_addr: String },
    /// Raft did not commit within the write timeout.
    #[error("the write was not committed within {0:?}; its outcome is unknown")]
    Timeout(std::time::Duration),
    /// Raft is shutting down or hit a storage fault.
    #[error("raft is unavailable: {0}")]
    Unavailable(String),
}

/// A committed write: the version it produced.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WriteOk {
    pub version: u64,
}

/// Why a linearizable read could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ReadIndexError {
    #[error("no Raft leader is available for a linearizable read; retry shortly")]
    NoLeader,
    #[error("this server could not confirm leadership: {0}")]
    Unavailable(String),
}

/// Membership of the Raft cluster as the status route reports it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub state: String,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Last entry in this server's log.
    pub last_log_index: Option<u64>,
    /// Last entry covered by this server's state-machine snapshot.
    pub snapshot_index: Option<u64>,
    /// Entries up to this index were compacted away (they live on in the snapshot).
    pub purged_index: Option<u64>,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub node_id: u64,
    pub address: String,
    /// "voter" or "learner".
    pub role: &'static str,
    /// On the leader: the last log index replicated to this member (its catch-up
    /// progress); `null` elsewhere and before the first reply.
    pub matched_index: Option<u64>,
}

/// Why a membership change (add learner, change voters) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The request is wrong (unknown member id, empty voter set, bad address).
    #[error("{0}")]
    Invalid(String),
    /// Valid, but not now (another change in progress, id taken at another address).
    #[error("{0}")]
    Conflict(String),
    /// Membership changes are decided by the leader; this server is not it.
    #[error(
        "this server is not the leader; send membership changes to the leader{}",
        leader_hint(.leader_id, .leader_addr)
    )]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// The change did not complete in time; it may still complete.
    #[error("the membership change did not complete within {0:?}; check /api/cluster/status")]
    Timeout(std::time::Duration),
    #[error("raft is unavailable: {0}")]
    Unavailable(String),
}

fn leader_hint(id: &Option<u64>, addr: &Option<String>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!(" (node {id}, peer address {addr})"),
        _ => " (none is known right now; retry shortly)".to_string(),
    }
}

/// One request from an executor to the control executor.
pub enum ControlRequest {
    Write {
        command: Command,
        reply: async_channel::Sender<Result<WriteOk, WriteError>>,
    },
    /// Confirm leadership (Raft read index) and return the log index to wait for.
    ReadIndex {
        reply: async_channel::Sender<Result<u64, ReadIndexError>>,
    },
    Status {
        reply: async_channel::Sender<ClusterStatus>,
    },
    /// Add (or re-add) a non-voting member; with `wait`, until it has caught up.
    AddLearner {
        node_id: u64,
        address: String,
        wait: bool,
        reply: async_channel::Sender<Result<ClusterStatus, MembershipError>>,
    },
    /// Make `voters` the voting members: learners among them are promoted, voters
    /// not among them are removed from the cluster.
    ChangeMembership {
        voters: BTreeSet<u64>,
        reply: async_channel::Sender<Result<ClusterStatus, MembershipError>>,
    },
    /// Run a health round now (every data node, or `only`) and report it.
    HealthRound {
        only: Option<String>,
        reply: async_channel::Sender<
            Result<crate::health::RoundReport, crate::health::HealthRoundError>,
        >,
    },
}

/// The executors' handle on the control executor.
#[derive(Clone)]
pub struct ControlClient {
    sender: async_channel::Sender<ControlRequest>,
}

impl ControlClient {
    pub fn new(sender: async_channel::Sender<ControlRequest>) -> ControlClient {
        ControlClient { sender }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(async_channel::Sender<T>) -> ControlRequest,
    ) -> Option<T> {
        let (reply, answer) = async_channel::bounded(1);
        self.sender.send(make(reply)).await.ok()?;
        answer.recv().await.ok()
    }

    pub async fn write(&self, command: Command) -> Result<WriteOk, WriteError> {
        self.call(|reply| ControlRequest::Write { command, reply })
            .await
            .unwrap_or_else(|| Err(WriteError::Unavailable("control executor stopped".into())))
    }

    pub async fn read_index(&self) -> Result<u64, ReadIndexError> {
        self.call(|reply| ControlRequest::ReadIndex { reply })
            .await
            .unwrap_or_else(|| {
                Err(ReadIndexError::Unavailable(
                    "control executor stopped".into(),
                ))
            })
    }

    pub async fn status(&self) -> Option<ClusterStatus> {
        self.call(|reply| ControlRequest::Status { reply }).await
    }

    pub async fn add_learner(
        &self,
        node_id: u64,
        address: String,
        wait: bool,
    ) -> Result<ClusterStatus, MembershipError> {
        self.call(|reply| ControlRequest::AddLearner {
            node_id,
            address,
            wait,
            reply,
        })
        .await
        .unwrap_or_else(|| {
            Err(MembershipError::Unavailable(
                "control executor stopped".into(),
            ))
        })
    }

    pub async fn change_membership(
        &self,
        voters: BTreeSet<u64>,
    ) -> Result<ClusterStatus, MembershipError> {
        self.call(|reply| ControlRequest::ChangeMembership { voters, reply })
            .await
            .unwrap_or_else(|| {
                Err(MembershipError::Unavailable(
                    "control executor stopped".into(),
                ))
            })
    }

    /// Runs a health round on this server (answered `NotLeader` on a follower).
    pub async fn health_round(
        &self,
        only: Option<String>,
    ) -> Result<crate::health::RoundReport, crate::health::HealthRoundError> {
        self.call(|reply| ControlRequest::HealthRound { only, reply })
            .await
            .unwrap_or(Err(crate::health::HealthRoundError::Stopped))
    }
}
