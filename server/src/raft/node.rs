//! The Raft node of a topology server, as the rest of the server sees it.
//!
//! Opens the durable log and the state machine under the data directory, starts
//! openraft on the control executor, and translates between openraft's API and the
//! server's vocabulary: `Command` in, `WriteOk`/`WriteError` out, `ClusterStatus`,
//! and a small `RaftSummary` of term/leader/applied index for the serving executors.
//!
//! Writes and read indexes work on any server: a follower forwards them to the
//! leader's peer port ([`super::wire::WRITE`], [`super::wire::READ_INDEX`]) and
//! returns the leader's answer. The leader never forwards again, so a request makes
//! at most one hop, and a leadership change in flight is answered "no leader" (503,
//! retry) rather than chased around the cluster. Membership changes live in
//! [`super::membership`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use concord_model::{Command, TopologyState};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{BasicNode, ReadPolicy, ServerState, SnapshotPolicy};

use super::log_store::{LogStoreConfig, LogStoreError};
use super::network::PeerNetwork;
use super::peer_client::{PeerError, PeerPool};
use super::state_machine::{PublishHook, StateMachineError, TopologyStateMachine};
use super::types::{TopoLogStore, TopoRaft, TopoRequest};
use super::wire::{self, ReadIndexAnswer, RemoteReadError, RemoteWriteError, WriteAnswer};
use crate::config::Config;
use crate::control::{ClusterStatus, Member, ReadIndexError, WriteError, WriteOk};

/// What the Raft node needs from the configuration.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub event_buffer_size: usize,
    pub raft: crate::config::RaftConfig,
    /// Bearer token sent on (and required by) the peer port, when configured.
    pub auth_token: Option<String>,
    /// Deadline of a write or read index forwarded to the leader.
    pub forward_timeout: Duration,
}

impl RaftOptions {
    pub fn from_config(config: &Config) -> RaftOptions {
        RaftOptions {
            node_id: config.node_id,
            data_dir: config.data_dir.clone(),
            event_buffer_size: config.topology.notifications.event_buffer_size,
            raft: config.raft.clone(),
            auth_token: config.auth_token.clone(),
            forward_timeout: config.http.write_timeout,
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
    pub(super) raft: TopoRaft,
    pub(super) node_id: u64,
    /// Connections to the other servers (shared with openraft's network).
    peers: Rc<PeerPool>,
    forward_timeout: Duration,
    /// When an append (or heartbeat) from a leader was last accepted here.
    last_leader_contact: std::cell::Cell<Option<std::time::Instant>>,
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
            // Compaction: a snapshot every `snapshot_every` applied entries, and the log
            // purged up to `keep_after_snapshot` entries behind it. A peer that needs a
            // purged entry is sent the snapshot instead.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(r.snapshot_every),
            max_in_snapshot_log_to_keep: r.keep_after_snapshot,
            install_snapshot_timeout: r.snapshot_timeout.as_millis() as u64,
            // A server cut off from the others must not come back with an inflated
            // term and depose a healthy leader: ask before starting an election.
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftStartError::Config(e.to_string()))?;
        let peers = Rc::new(PeerPool::new(
            options.node_id,
            options.auth_token.as_deref(),
            r.max_message_bytes,
        ));
        let network = PeerNetwork::new(peers.clone(), options.node_id, r.election_timeout_max);
        let raft = TopoRaft::new(
            options.node_id,
            Arc::new(config),
            network,
            log,
            state_machine,
        )
        .await
        .map_err(|e| RaftStartError::Start(e.to_string()))?;
        Ok(RaftNode {
            raft,
            node_id: options.node_id,
            peers,
            forward_timeout: options.forward_timeout,
            last_leader_contact: std::cell::Cell::new(None),
        })
    }

    /// Records that a leader's append or heartbeat was just accepted (peer listener).
    pub fn note_leader_contact(&self) {
        self.last_leader_contact
            .set(Some(std::time::Instant::now()));
    }

    /// How long ago this server last heard its leader, or, leading, a quorum:
    /// `None` while that is not known to be stale (a single voter always hears itself).
    /// openraft keeps reporting the old leader on a cut-off follower (pre-vote stops it
    /// from campaigning), so this, not `current_leader`, tells that the leader is gone.
    pub fn leader_silence(&self) -> Option<Duration> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader.is_none() {
            return Some(Duration::MAX);
        }
        if m.state == ServerState::Leader {
            let voters = m.membership_config.membership().voter_ids().count();
            if voters <= 1 {
                return None;
            }
            return m.last_quorum_acked.as_ref().map(|t| t.elapsed());
        }
        self.last_leader_contact.get().map(|t| t.elapsed())
    }

    /// Initialises a brand-new cluster with `members`; a no-op when this node's
    /// storage already holds a log or a vote (a restart, or a node that joined), and
    /// when `members` is empty (`--join`: wait to be added).
    pub async fn initialize(
        &self,
        members: BTreeMap<u64, SocketAddr>,
    ) -> Result<(), RaftStartError> {
        if members.is_empty() {
            return Ok(());
        }
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

    /// Commits one change set, here when this server leads, else through the leader;
    /// returns once it is committed and applied (on the leader).
    pub async fn write(&self, command: Command) -> Result<WriteOk, WriteError> {
        let local = self.raft.client_write(TopoRequest(command.clone())).await;
        match Self::write_outcome(local) {
            Err(WriteError::ForwardTo {
                leader_id,
                leader_addr,
            }) => self.forward_write(leader_id, &leader_addr, &command).await,
            outcome => outcome,
        }
    }

    /// A write forwarded by a follower: committed here or refused, never forwarded on.
    pub(super) async fn write_as_leader(&self, command: Command) -> WriteAnswer {
        let local = self.raft.client_write(TopoRequest(command)).await;
        match Self::write_outcome(local) {
            Ok(ok) => Ok(ok.version),
            Err(WriteError::Rejected(e)) => Err(RemoteWriteError::Rejected(e)),
            Err(WriteError::NoLeader | WriteError::ForwardTo { .. }) => {
                Err(RemoteWriteError::NotLeader)
            }
            Err(e @ (WriteError::Timeout(_) | WriteError::Unavailable(_))) => {
                Err(RemoteWriteError::Unavailable(e.to_string()))
            }
        }
    }

    async fn forward_write(
        &self,
        leader_id: u64,
        leader_addr: &str,
        command: &Command,
    ) -> Result<WriteOk, WriteError> {
        let answer: Result<WriteAnswer, PeerError> = self
            .peers
            .call(leader_addr, wire::WRITE, command, self.forward_timeout)
            .await;
        match answer {
            Ok(Ok(version)) => Ok(WriteOk { version }),
            Ok(Err(RemoteWriteError::Rejected(e))) => Err(WriteError::Rejected(e)),
            Ok(Err(RemoteWriteError::NotLeader)) => Err(WriteError::NoLeader),
            Ok(Err(RemoteWriteError::Unavailable(m))) => Err(WriteError::Unavailable(format!(
                "the leader (node {leader_id}) could not commit: {m}"
            ))),
            Err(PeerError::Timeout { timeout, .. }) => Err(WriteError::Timeout(timeout)),
            // Refused by the leader's peer port (a token or size mismatch): not applied.
            Err(e @ PeerError::Status { .. }) => Err(WriteError::Unavailable(format!(
                "the leader (node {leader_id}) refused the forwarded write: {e}"
            ))),
            // Never reached the leader (down, restarting): nothing was written; to the
            // client this is the same as an election in progress, so it retries.
            Err(e) if e.not_delivered() => {
                tracing::debug!(error = %e, "write not forwarded");
                Err(WriteError::NoLeader)
            }
            Err(e) => Err(WriteError::Unavailable(format!(
                "forwarding to the leader (node {leader_id}) failed, the outcome is unknown: {e}"
            ))),
        }
    }

    fn write_outcome(
        result: Result<
            openraft::raft::ClientWriteResponse<super::types::TopoConfig>,
            RaftError<super::types::TopoConfig, ClientWriteError<super::types::TopoConfig>>,
        >,
    ) -> Result<WriteOk, WriteError> {
        match result {
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

    /// The log index a linearizable read must see applied: the leader's read index,
    /// confirmed with a quorum, asked of the leader when this server is a follower.
    /// Bounded by the forward timeout: a leader cut off from its quorum cannot confirm.
    pub async fn read_index(&self) -> Result<u64, ReadIndexError> {
        let timeout = self.forward_timeout;
        futures_lite::future::or(self.read_index_anywhere(), async {
            glommio::timer::sleep(timeout).await;
            Err(ReadIndexError::Unavailable(format!(
                "leadership was not confirmed by a quorum within {timeout:?}"
            )))
        })
        .await
    }

    async fn read_index_anywhere(&self) -> Result<u64, ReadIndexError> {
        match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
            Ok((read, _applied)) => Ok(read.log_id().index),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                let Some(leader) = f.leader_node else {
                    return Err(ReadIndexError::NoLeader);
                };
                let answer: Result<ReadIndexAnswer, PeerError> = self
                    .peers
                    .call(&leader.addr, wire::READ_INDEX, &(), self.forward_timeout)
                    .await;
                match answer {
                    Ok(Ok(index)) => Ok(index),
                    Ok(Err(RemoteReadError::NotLeader)) => Err(ReadIndexError::NoLeader),
                    Ok(Err(RemoteReadError::Unavailable(m))) => Err(ReadIndexError::Unavailable(m)),
                    Err(e) => Err(ReadIndexError::Unavailable(format!(
                        "the leader did not give a read index: {e}"
                    ))),
                }
            }
            Err(e) => Err(ReadIndexError::Unavailable(e.to_string())),
        }
    }

    /// A read index asked by a follower: given only by the leader, never forwarded.
    pub(super) async fn read_index_as_leader(&self) -> ReadIndexAnswer {
        match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
            Ok((read, _applied)) => Ok(read.log_id().index),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(RemoteReadError::NotLeader)
            }
            Err(e) => Err(RemoteReadError::Unavailable(e.to_string())),
        }
    }

    /// Calls `path` on the current leader's peer port, for requests only the leader
    /// can answer (a health round). `None` when no leader is known, or this server is
    /// it (the caller serves the request itself, never forwards to itself).
    pub async fn call_leader<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        path: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Option<(u64, Result<Resp, PeerError>)> {
        let (leader, addr) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            let leader = m.current_leader.filter(|id| *id != self.node_id)?;
            let addr = m
                .membership_config
                .membership()
                .nodes()
                .find(|(id, _)| **id == leader)
                .map(|(_, node)| node.addr.clone())?;
            (leader, addr)
        };
        Some((leader, self.peers.call(&addr, path, request, timeout).await))
    }

    /// The openraft handle, for the peer server.
    pub(super) fn raft(&self) -> &TopoRaft {
        &self.raft
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
        let matched = |id: &u64| -> Option<u64> {
            if *id == self.node_id {
                return m.last_log_index;
            }
            m.replication.as_ref()?.get(id)?.as_ref().map(|l| l.index)
        };
        let is_leader = m.state == ServerState::Leader;
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
                matched_index: if is_leader { matched(id) } else { None },
            })
            .collect();
        ClusterStatus {
            node_id: self.node_id,
            leader: m.current_leader,
            term: m.current_term,
            state: format!("{:?}", m.state),
            committed_index: m.cluster_committed.as_ref().map(|l| l.index),
            applied_index: m.last_applied.as_ref().map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.as_ref().map(|l| l.index),
            purged_index: m.purged.as_ref().map(|l| l.index),
            members,
        }
    }
}
