//! The Raft node of a topology server, as the rest of the server sees it.
//!
//! Opens the durable log and the state machine under the data directory, starts
//! openraft on the control executor, and translates between openraft's API and the
//! server's vocabulary: `Command` in, `WriteOk`/`WriteError` out, `ClusterStatus`,
//! and a small `RaftSummary` of term/leader/applied index for the serving executors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{BasicNode, ReadPolicy, ServerState, SnapshotPolicy};
use topology_model::{Command, TopologyState};

use super::log_store::{LogStoreConfig, LogStoreError};
use super::network::PeerNetwork;
use super::state_machine::{PublishHook, StateMachineError, TopologyStateMachine};
use super::types::{TopoLogStore, TopoRaft, TopoRequest};
use crate::config::Config;
use crate::control::{ClusterStatus, Member, ReadIndexError, WriteError, WriteOk};

/// What the Raft node needs from the configuration.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub event_buffer_size: usize,
    pub raft: crate::config::RaftConfig,
}

impl RaftOptions {
    pub fn from_config(config: &Config) -> RaftOptions {
        RaftOptions {
            node_id: config.node_id,
            data_dir: config.data_dir.clone(),
            event_buffer_size: config.topology.notifications.event_buffer_size,
            raft: config.raft.clone(),
        }
    }
}

/// Why Raft could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    #[error(transparent)]
    Log(#[from] LogStoreError),
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
    #[error("invalid raft timing: {0}")]
    Config(String),
    #[error("openraft did not start: {0}")]
    Start(String),
    #[error("cannot initialise the cluster: {0}")]
    Initialize(String),
}

/// Term, leader and applied index at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftSummary {
    pub term: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub applied_index: u64,
}

/// Called with the applied state and its Raft applied index after every applied batch.
pub type Publish = Box<dyn Fn(&TopologyState, u64)>;

/// The topology server's Raft node (lives on the control executor).
pub struct RaftNode {
    raft: TopoRaft,
    node_id: u64,
}

/// A subscription to changes of the node's [`RaftSummary`].
pub struct RaftWatch {
    metrics: openraft::type_config::alias::WatchReceiverOf<
        super::types::TopoConfig,
        openraft::RaftMetrics<super::types::TopoConfig>,
    >,
}

impl RaftWatch {
    pub fn summary(&self) -> RaftSummary {
        let m = self.metrics.borrow_watched();
        RaftSummary {
            term: m.current_term,
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
        }
    }

    /// Waits for the next change; false once Raft has shut down.
    pub async fn changed(&mut self) -> bool {
        self.metrics.changed().await.is_ok()
    }
}

impl RaftNode {
    /// Opens storage under `options.data_dir` and starts Raft. Recovers the log and
    /// the latest snapshot; `publish` is called once with the recovered state.
    pub async fn start(options: RaftOptions, publish: Publish) -> Result<RaftNode, RaftStartError> {
        let log = TopoLogStore::open(
            options.data_dir.join("raft-log"),
            &LogStoreConfig::default(),
        )?;
        let hook: PublishHook =
            Box::new(move |state, _events, meta| publish(state, meta.last_applied_log_index));
        let state_machine = TopologyStateMachine::open(
            options.data_dir.join("snapshots"),
            TopologyState::new(options.event_buffer_size),
            hook,
        )?;
        let r = &options.raft;
        let config = openraft::Config {
            cluster_name: "concord-topo".into(),
            heartbeat_interval: r.heartbeat_interval.as_millis() as u64,
            election_timeout_min: r.election_timeout_min.as_millis() as u64,
            election_timeout_max: r.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(r.snapshot_every),
            max_in_snapshot_log_to_keep: r.keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftStartError::Config(e.to_string()))?;
        let raft = TopoRaft::new(
            options.node_id,
            Arc::new(config),
            PeerNetwork,
            log,
            state_machine,
        )
        .await
        .map_err(|e| RaftStartError::Start(e.to_string()))?;
        Ok(RaftNode {
            raft,
            node_id: options.node_id,
        })
    }

    /// Initialises a brand-new cluster with `members`; a no-op when this node's
    /// storage already holds a membership (a restart, or a node that joined).
    pub async fn initialize(
        &self,
        members: BTreeMap<u64, SocketAddr>,
    ) -> Result<(), RaftStartError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| RaftStartError::Initialize(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr.to_string())))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            // Another member initialised first and already replicated to us.
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(RaftStartError::Initialize(e.to_string())),
        }
    }

    /// Proposes one change set and waits until it is committed and applied.
    pub async fn write(&self, command: Command) -> Result<WriteOk, WriteError> {
        match self.raft.client_write(TopoRequest(command)).await {
            Ok(response) => match response.data.result {
                Ok(version) => Ok(WriteOk { version }),
                Err(e) => Err(WriteError::Rejected(e)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                match (f.leader_id, f.leader_node) {
                    (Some(leader_id), Some(node)) => Err(WriteError::ForwardTo {
                        leader_id,
                        leader_addr: node.addr,
                    }),
                    _ => Err(WriteError::NoLeader),
                }
            }
            Err(RaftError::APIError(e)) => Err(WriteError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(WriteError::Unavailable(e.to_string())),
        }
    }

    /// Confirms leadership with a quorum (Raft read index) and returns the log index
    /// a linearizable read must see applied.
    pub async fn read_index(&self) -> Result<u64, ReadIndexError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.log_id().index),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(ReadIndexError::NoLeader)
            }
            Err(e) => Err(ReadIndexError::Unavailable(e.to_string())),
        }
    }

    /// A subscription to term / leader / applied-index changes.
    pub fn watch(&self) -> RaftWatch {
        RaftWatch {
            metrics: self.raft.metrics(),
        }
    }

    /// Leader, term, members and indexes as the status route shows them.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                node_id: *id,
                address: node.addr.clone(),
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                },
            })
            .collect();
        ClusterStatus {
            node_id: self.node_id,
            leader: m.current_leader,
            term: m.current_term,
            state: format!("{:?}", m.state),
            committed_index: m.cluster_committed.as_ref().map(|l| l.index),
            applied_index: m.last_applied.as_ref().map(|l| l.index),
            members,
        }
    }
}
