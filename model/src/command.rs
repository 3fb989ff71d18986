//! Commands: what goes through the Raft log. One [`Command`] is one change set and
//! produces exactly one version; its [`Operation`]s are what the HTTP write bodies map
//! to (`POST /api/topology/batch` takes several). Unknown fields are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::HashPoint;
use crate::types::{Health, KeyRange, ShardStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct Command {
    /// Wall-clock time (ms) the leader assigned to the change set. The state machine
    /// never goes back in time: it uses `max(timestamp_ms, current timestamp)`.
    pub timestamp_ms: u64,
    /// Compare-and-set: refuse unless the topology is at exactly this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
    pub ops: Vec<Operation>,
}

crate::codec::json_in_binary!(Command);

impl Command {
    pub fn new(timestamp_ms: u64, ops: Vec<Operation>) -> Command {
        Command {
            timestamp_ms,
            expected_version: None,
            ops,
        }
    }

    pub fn single(timestamp_ms: u64, op: Operation) -> Command {
        Command::new(timestamp_ms, vec![op])
    }

    pub fn with_expected_version(mut self, version: u64) -> Command {
        self.expected_version = Some(version);
        self
    }
}

/// One step of a change set. JSON: `{"op": "registerNode", "nodeId": ..., ...}`.
///
/// Ids that the operation addresses (`nodeId`/`shardId`) answer 404 when unknown;
/// ids it merely references (`primaryNode`, `with`, `to`, ...) answer 400.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    remote = "Self"
)]
pub enum Operation {
    /// Registers a node, or updates its address (and its labels when given; `None`
    /// keeps them). Health, failure count and last-seen survive an update.
    RegisterNode {
        node_id: String,
        address: String,
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
    },
    /// Refused while the node is primary or replica of a shard, or a migration target.
    RemoveNode {
        node_id: String,
    },
    /// Creates an active shard. After the whole change set the ranges must partition
    /// the space, so a lone create is only valid as the first shard (the full range).
    CreateShard {
        shard_id: String,
        key_range: KeyRange,
        primary_node: String,
        #[serde(default)]
        replica_nodes: Vec<String>,
    },
    /// At least one field. Giving only a `primary_node` that is currently a replica
    /// promotes it: the old primary takes its place among the replicas. `status` may
    /// be active, readonly or offline; a migrating shard cannot be updated.
    UpdateShard {
        shard_id: String,
        #[serde(default)]
        primary_node: Option<String>,
        #[serde(default)]
        replica_nodes: Option<Vec<String>>,
        #[serde(default)]
        status: Option<ShardStatus>,
    },
    RemoveShard {
        shard_id: String,
    },
    /// The shard keeps `[start, at)`; a new shard gets `[at, end)` with the same nodes
    /// and status. `at` defaults to the midpoint and must lie strictly inside; the new
    /// id defaults to `shard-<at as 16 hex digits>` (with `-1`, `-2`.. if taken).
    SplitShard {
        shard_id: String,
        #[serde(default)]
        at: Option<HashPoint>,
        #[serde(default)]
        new_shard_id: Option<String>,
    },
    /// `shard_id` survives with the union range and keeps its nodes; `with` (an
    /// adjacent shard) is removed. Both must be active with no migration.
    MergeShards {
        shard_id: String,
        with: String,
    },
    /// active -> migrating. `from` holds the shard; `to` is registered and does not.
    StartMigration {
        shard_id: String,
        from: String,
        to: String,
    },
    /// Only while migrating; 0..=100 and never decreasing.
    MigrationProgress {
        shard_id: String,
        percent: u8,
    },
    /// migrating -> active once progress is 100: `to` replaces `from` (as primary
    /// when `from` was the primary, else at its place among the replicas).
    CompleteMigration {
        shard_id: String,
    },
    /// migrating -> active, nodes unchanged: abandons the migration.
    CancelMigration {
        shard_id: String,
    },
    /// Only on an empty topology (no node, no shard). Registers `nodes` and creates
    /// `shard_count` shards of equal ranges, ids `shard-0000`.. (5 digits above 10000
    /// shards). Shard i has primary `nodes[i % n]` and replicas `nodes[(i+1) % n]`,
    /// .., `nodes[(i+rf-1) % n]`.
    Bootstrap {
        nodes: Vec<NodeSpec>,
        shard_count: u32,
        replication_factor: u32,
    },
    /// Health monitor results. Every named node must exist.
    SetHealth {
        updates: Vec<HealthUpdate>,
    },
}

crate::codec::json_in_binary!(Operation);

impl Operation {
    /// The `op` tag.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::RegisterNode { .. } => "registerNode",
            Operation::RemoveNode { .. } => "removeNode",
            Operation::CreateShard { .. } => "createShard",
            Operation::UpdateShard { .. } => "updateShard",
            Operation::RemoveShard { .. } => "removeShard",
            Operation::SplitShard { .. } => "splitShard",
            Operation::MergeShards { .. } => "mergeShards",
            Operation::StartMigration { .. } => "startMigration",
            Operation::MigrationProgress { .. } => "migrationProgress",
            Operation::CompleteMigration { .. } => "completeMigration",
            Operation::CancelMigration { .. } => "cancelMigration",
            Operation::Bootstrap { .. } => "bootstrap",
            Operation::SetHealth { .. } => "setHealth",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub node_id: String,
    pub address: String,
}

/// The outcome of one health check of one node, stored as given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthUpdate {
    pub node_id: String,
    pub health: Health,
    pub failure_count: u32,
    pub last_seen: u64,
    /// At most 1024 characters.
    #[serde(default)]
    pub last_error: Option<String>,
}

#[cfg(test)]
#[path = "command_test.rs"]
mod tests;
