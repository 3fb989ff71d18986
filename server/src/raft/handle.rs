//! [`RaftHandle`]: this server's Raft member, as the rest of the server sees it.
//!
//! Opens the durable log and the state machine under the data directory, starts
//! openraft on the control executor, and translates between openraft's API and the
//! service's vocabulary: `Command` in, versions and [`ServiceError`]s out,
//! `ClusterStatus`, and a small `RaftSummary` of term/leader/applied index for the
//! serving executors. [`RaftHandle::run_here`] runs the Raft operations of the service
//! on this server; forwarding to the leader is [`super::leader`]'s, membership
//! changes [`super::membership`]'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use concord_model::{Command, TopologyState};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};

use crate::service::Answer;
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, ReadPolicy, ServerState, SnapshotPolicy};

use super::log_store::{LogStoreConfig, LogStoreError};
use super::network::PeerNetwork;
use super::peer_client::PeerPool;
use super::peer_guard::LocalView;
use super::recovery::DurableFloor;
use super::state_machine::TopoRaft;
use super::state_machine::{PublishHook, StateMachineError, TopologyStateMachine};
use super::types::{TopoLogStore, TopoRequest};
use crate::config::{Config, LiveCredentials};
use crate::service::{Operation, Outcome, ServiceError};
use concord_api::{ClusterStatus, Member, MemberRole};

/// Subdirectory of a data directory holding the state-machine snapshot.
pub const SNAPSHOT_SUBDIR: &str = "snapshots";

/// What the Raft node needs from the configuration.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub event_buffer_size: usize,
    pub raft: crate::config::RaftConfig,
    /// The peer secret sent to the other servers and mutual TLS towards them
    /// (`peer_tls:`), as in force (a reload replaces them).
    pub credentials: Arc<LiveCredentials>,
    /// Deadline of a write or read index forwarded to the leader.
    pub forward_timeout: Duration,
    /// Counts the followers found to have lost log entries they had acknowledged.
    pub lost_logs: Arc<AtomicU64>,
}

impl RaftOptions {
    pub fn from_config(
        config: &Config,
        credentials: Arc<LiveCredentials>,
        lost_logs: Arc<AtomicU64>,
    ) -> RaftOptions {
        RaftOptions {
            node_id: config.node_id,
            data_dir: config.data_dir.clone(),
            event_buffer_size: config.topology.notifications.event_buffer_size,
            raft: config.raft.clone(),
            credentials,
            forward_timeout: config.http.write_timeout,
            lost_logs,
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
    #[error("cannot read the raft log to recover: {0}")]
    ReadLog(std::io::Error),
}

/// Term, leader and applied index at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftSummary {
    pub term: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub applied_index: u64,
    /// The leader's commit index as heard here; `None` until a leader (this server
    /// or another) has granted or reported one since this process started.
    pub cluster_committed: Option<u64>,
}

/// Called with the applied state and its Raft applied index after every applied batch.
pub type Publish = Box<dyn Fn(&TopologyState, u64)>;

/// The topology server's Raft node (lives on the control executor).
pub struct RaftHandle {
    pub(super) raft: TopoRaft,
    pub(super) node_id: u64,
    /// Connections to the other servers (shared with openraft's network).
    pub(super) peers: Rc<PeerPool>,
    pub(super) forward_timeout: Duration,
    /// When an append (or heartbeat) from a leader was last accepted here.
    last_leader_contact: std::cell::Cell<Option<std::time::Instant>>,
    /// What this server held durably at start (what it must apply before answering).
    durable_floor: DurableFloor,
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
            cluster_committed: m.cluster_committed.as_ref().map(|l| l.index),
        }
    }

    /// Why Raft has stopped (a fatal storage error, a panic, a shutdown), if it has.
    pub fn stopped(&self) -> Option<String> {
        let m = self.metrics.borrow_watched();
        m.running_state.as_ref().err().map(ToString::to_string)
    }

    /// Waits for the next change; false once Raft has shut down.
    pub async fn changed(&mut self) -> bool {
        self.metrics.changed().await.is_ok()
    }
}

impl RaftHandle {
    /// Opens storage under `options.data_dir` and starts Raft. Recovers the log and
    /// the latest snapshot; `publish` is called once with the recovered state.
    pub async fn start(
        options: RaftOptions,
        publish: Publish,
    ) -> Result<RaftHandle, RaftStartError> {
        let mut log = TopoLogStore::open(
            options.data_dir.join("raft-log"),
            &LogStoreConfig::default(),
        )?;
        let last_log_index = log
            .get_log_state()
            .await
            .map_err(RaftStartError::ReadLog)?
            .last_log_id
            .map(|id| id.index);
        let committed = log
            .read_committed()
            .await
            .map_err(RaftStartError::ReadLog)?
            .map(|id| id.index);
        let hook: PublishHook =
            Box::new(move |state, _events, meta| publish(state, meta.last_applied_log_index));
        let state_machine = TopologyStateMachine::open(
            options.data_dir.join(SNAPSHOT_SUBDIR),
            TopologyState::new(options.event_buffer_size),
            hook,
        )?;
        let snapshot_index = state_machine.applied_meta().last_applied.map(|id| id.index);
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
            options.credentials.clone(),
            r.max_message_bytes,
        ));
        let network = PeerNetwork::new(
            peers.clone(),
            options.node_id,
            r.election_timeout_max,
            options.lost_logs.clone(),
        );
        let raft = TopoRaft::new(
            options.node_id,
            Arc::new(config),
            network,
            log,
            state_machine,
        )
        .await
        .map_err(|e| RaftStartError::Start(e.to_string()))?;
        let voters: Vec<u64> = raft
            .with_raft_state(|st| st.membership_state.effective().voter_ids().collect())
            .await
            .map_err(|e| RaftStartError::Start(e.to_string()))?;
        let durable_floor = DurableFloor::at_start(
            options.node_id,
            last_log_index,
            committed,
            snapshot_index,
            &voters,
        );
        tracing::info!(?durable_floor, "raft started");
        Ok(RaftHandle {
            raft,
            node_id: options.node_id,
            peers,
            forward_timeout: options.forward_timeout,
            last_leader_contact: std::cell::Cell::new(None),
            durable_floor,
        })
    }

    /// What this server held durably at start: the applied index to reach before
    /// answering reads.
    pub fn durable_floor(&self) -> DurableFloor {
        self.durable_floor
    }

    /// Why Raft has stopped, if it has.
    pub fn stopped(&self) -> Option<String> {
        self.watch().stopped()
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

    /// Runs a Raft operation of the service on this server. Write and read index
    /// answer `NotLeaderHere` on a follower (the caller forwards); membership changes
    /// answer `NotLeader` naming the leader.
    pub async fn run_here(&self, operation: Operation, membership_timeout: Duration) -> Answer {
        match operation {
            Operation::Write(command) => self
                .write_here(command)
                .await
                .map(|version| Outcome::Written { version }),
            Operation::ReadIndex => self
                .read_index_here()
                .await
                .map(|index| Outcome::ReadIndex { index }),
            Operation::Status => Ok(Outcome::Cluster(self.status())),
            Operation::AddLearner {
                node_id,
                address,
                wait,
            } => self
                .add_learner(node_id, &address, wait, membership_timeout)
                .await
                .map(Outcome::Cluster),
            Operation::ChangeMembership { voters } => self
                .change_membership(voters, membership_timeout)
                .await
                .map(Outcome::Cluster),
            Operation::HealthRound { .. } => Err(ServiceError::unavailable(
                "health rounds are run by the health monitor, not by Raft",
            )),
        }
    }

    /// Commits one change set, here when this server leads, else through the leader;
    /// returns once it is committed and applied (on the leader).
    pub async fn write(&self, command: Command) -> Result<u64, ServiceError> {
        let timeout = self.forward_timeout;
        self.on_leader(Operation::Write(command), timeout, |operation| {
            self.run_here(operation, timeout)
        })
        .await
        .and_then(Outcome::written)
    }

    /// Commits one change set if this server leads; `NotLeaderHere` otherwise.
    ///
    /// The leader stamps the change set with its own clock: a timestamp that came with
    /// the command (from a follower, over the peer port) is never trusted, so no write
    /// can pin the topology's timestamp in the future.
    async fn write_here(&self, mut command: Command) -> Result<u64, ServiceError> {
        command.timestamp_ms = crate::net::now_ms();
        match self.raft.client_write(TopoRequest(command)).await {
            Ok(response) => response.data.result.map_err(|e| ServiceError::rejected(&e)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(
                ServiceError::not_leader_here("no Raft leader is available; retry shortly"),
            ),
            Err(RaftError::APIError(e)) => Err(ServiceError::unavailable(format!(
                "raft is unavailable: {e}"
            ))),
            Err(RaftError::Fatal(e)) => Err(ServiceError::unavailable(format!(
                "raft is unavailable: {e}"
            ))),
        }
    }

    /// The leader's read index, confirmed with a quorum; `NotLeaderHere` on a follower.
    /// Bounded by the forward timeout: a leader cut off from its quorum cannot confirm.
    async fn read_index_here(&self) -> Result<u64, ServiceError> {
        let timeout = self.forward_timeout;
        let confirmed = async {
            match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
                Ok((read, _applied)) => Ok(read.log_id().index),
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                    Err(ServiceError::not_leader_here(
                        "no Raft leader is available for a linearizable read; retry shortly",
                    ))
                }
                Err(e) => Err(ServiceError::unavailable(format!(
                    "this server could not confirm leadership: {e}"
                ))
                .retry(true)),
            }
        };
        futures_lite::future::or(confirmed, async {
            glommio::timer::sleep(timeout).await;
            Err(ServiceError::unavailable(format!(
                "this server could not confirm leadership: leadership was not confirmed by a quorum within {timeout:?}"
            ))
            .retry(true))
        })
        .await
    }

    /// The read index, here or asked of the leader (the health monitor's catch-up).
    pub async fn read_index(&self) -> Result<u64, ServiceError> {
        let timeout = self.forward_timeout;
        self.on_leader(Operation::ReadIndex, timeout, |operation| {
            self.run_here(operation, timeout)
        })
        .await
        .and_then(Outcome::read_index)
    }

    /// What the peer port judges a caller by: every member's id (voters and learners,
    /// both halves of a joint configuration; empty while this server has no membership),
    /// this server's vote, last log index and leader.
    pub(super) fn local_view(&self) -> LocalView {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        LocalView {
            members: m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect(),
            vote: m.vote,
            last_log_index: m.last_log_index,
            leader: m.current_leader,
        }
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
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
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
