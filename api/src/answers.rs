//! The payloads flattened into the [`Envelope`](crate::Envelope) of each route.

use std::borrow::Cow;
use std::collections::BTreeMap;

use concord_model::{Health, NodeStatus, ShardInfo, TopologyEvent, TopologySnapshot};
use serde::{Deserialize, Serialize};

/// `GET /api/topology/snapshot`: the whole map.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotPage<S = TopologySnapshot> {
    pub snapshot: S,
}

/// `GET /api/topology/shards`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardList<L = Vec<ShardInfo>> {
    pub shards: L,
}

/// `GET /api/topology/nodes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeList<L = Vec<NodeStatus>> {
    pub nodes: L,
}

/// `GET /api/topology/shards?shardId=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneShard<S = ShardInfo> {
    pub shard: S,
}

/// `GET /api/topology/nodes?nodeId=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneNode<N = NodeStatus> {
    pub node: N,
}

/// `GET /api/topology/version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo<'a> {
    pub config_hash: Cow<'a, str>,
    pub timestamp: u64,
}

/// `GET /api/topology/events` and the delta form of `GET /snapshot?since=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage<E = Vec<TopologyEvent>> {
    pub since_version: u64,
    pub events: E,
    pub has_more: bool,
}

/// `GET /api/topology/stats`; `H` is the health monitor's summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats<H> {
    pub shards: usize,
    pub nodes: usize,
    pub shards_by_status: BTreeMap<String, usize>,
    pub nodes_by_health: BTreeMap<String, usize>,
    pub history_oldest_version: Option<u64>,
    pub config_hash: String,
    pub raft_term: u64,
    pub raft_leader: u64,
    pub is_leader: bool,
    pub applied_index: u64,
    pub executors: usize,
    /// This server's health monitor: rounds, probes, last round (see `/metrics`).
    pub health_monitor: H,
}

/// A member's role in the Raft cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Voter,
    Learner,
}

/// Membership of the Raft cluster as `GET /api/cluster/status` reports it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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

/// One member of the Raft cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub node_id: u64,
    pub address: String,
    pub role: MemberRole,
    /// On the leader: the last log index replicated to this member (its catch-up
    /// progress); `null` elsewhere and before the first reply.
    pub matched_index: Option<u64>,
}

/// `GET /api/cluster/status` and the membership routes: the cluster after the call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterAnswer {
    pub cluster: ClusterStatus,
}

/// One node's result in a health round. (No `skip_serializing_if`: the report also
/// crosses the peer port in postcard, which is not self-describing; absent values
/// are JSON `null`.)
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

/// What one health round found and committed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundReport {
    /// The version the round committed, or the current one when it committed nothing.
    pub version: u64,
    /// How many nodes the round's change set updated (0: no change set).
    pub updated: usize,
    pub results: Vec<NodeResult>,
}

/// `POST /api/topology/health`: each node's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthRoundResults<R = Vec<NodeResult>> {
    pub results: R,
}
