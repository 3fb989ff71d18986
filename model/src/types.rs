//! Wire types of the topology: key ranges, shards, data nodes and the snapshot.
//! Field names (camelCase) and enum strings are the HTTP API's wire format (README, "HTTP API").
//! There are no floats anywhere, so every value has one exact encoding.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::{range_end, HashPoint};

/// Shards by id, ordered by id. Persistent: cloning is O(1).
pub type ShardMap = imbl::OrdMap<String, ShardInfo>;
/// Data nodes by id, ordered by id. Persistent: cloning is O(1).
pub type NodeMap = imbl::OrdMap<String, NodeStatus>;

/// A half-open range `[start, end)` of the hash space; `end: None` is the end of the
/// space (on the wire `""`), so that `u64::MAX` has an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRange {
    pub start: HashPoint,
    #[serde(with = "range_end")]
    pub end: Option<HashPoint>,
}

impl KeyRange {
    pub fn new(start: u64, end: Option<u64>) -> KeyRange {
        KeyRange {
            start: HashPoint(start),
            end: end.map(HashPoint),
        }
    }

    /// The whole hash space.
    pub fn full() -> KeyRange {
        KeyRange::new(0, None)
    }

    /// The exclusive end as a number; the end of the space is 2^64.
    pub fn end_u128(&self) -> u128 {
        self.end.map_or(1u128 << 64, |e| u128::from(e.0))
    }

    /// How many hash values the range holds.
    pub fn width(&self) -> u128 {
        self.end_u128().saturating_sub(u128::from(self.start.0))
    }

    /// True when the range holds no value (`end <= start`); never valid for a shard.
    pub fn is_empty(&self) -> bool {
        self.width() == 0
    }

    pub fn contains(&self, h: u64) -> bool {
        h >= self.start.0 && u128::from(h) < self.end_u128()
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, end of space)", self.start),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardStatus {
    Active,
    Migrating,
    Readonly,
    Offline,
}

impl ShardStatus {
    pub const ALL: [ShardStatus; 4] = [
        ShardStatus::Active,
        ShardStatus::Migrating,
        ShardStatus::Readonly,
        ShardStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Active => "active",
            ShardStatus::Migrating => "migrating",
            ShardStatus::Readonly => "readonly",
            ShardStatus::Offline => "offline",
        }
    }
}

impl fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replica move in progress: `to` takes over `from`'s place when it completes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub from: String,
    pub to: String,
    /// 0..=100, never decreasing.
    pub percent: u8,
    pub started_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct ShardInfo {
    pub shard_id: String,
    pub key_range: KeyRange,
    pub primary_node: String,
    pub replica_nodes: Vec<String>,
    pub status: ShardStatus,
    /// Grows on every change to this shard. A shard created at version V starts at
    /// epoch V, so an id that is removed and created again never reuses an epoch.
    pub epoch: u64,
    /// Timestamp (ms) of the change set that last changed this shard.
    pub last_update: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
}

crate::codec::json_in_binary!(ShardInfo);

impl ShardInfo {
    /// The primary, then the replicas.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary_node.as_str())
            .chain(self.replica_nodes.iter().map(String::as_str))
    }

    /// True when `node` is the primary or a replica (a migration target is neither).
    pub fn has_node(&self, node: &str) -> bool {
        self.nodes().any(|n| n == node)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
}

impl Health {
    pub const ALL: [Health; 4] = [
        Health::Healthy,
        Health::Degraded,
        Health::Unhealthy,
        Health::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct NodeStatus {
    pub node_id: String,
    /// `host:port` of the data node.
    pub address: String,
    pub health: Health,
    /// Timestamp (ms) of the last successful probe; 0 = never.
    pub last_seen: u64,
    /// Consecutive failed checks.
    pub failure_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Derived: sorted ids of the shards this node is primary or replica of. The state
    /// machine maintains it; values read from the wire are ignored and recomputed.
    #[serde(default)]
    pub shards: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

crate::codec::json_in_binary!(NodeStatus);

impl NodeStatus {
    /// A newly registered node: health unknown, never seen.
    pub fn new(node_id: impl Into<String>, address: impl Into<String>) -> NodeStatus {
        NodeStatus {
            node_id: node_id.into(),
            address: address.into(),
            health: Health::Unknown,
            last_seen: 0,
            failure_count: 0,
            last_error: None,
            shards: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// The whole topology at one version, as `GET /api/topology/snapshot` answers it.
/// The maps are persistent (`imbl`), so `TopologyState::to_snapshot` is O(1); they
/// serialize as JSON objects ordered by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct TopologySnapshot {
    pub version: u64,
    /// Timestamp (ms) of the change set that produced `version`.
    pub timestamp: u64,
    pub shard_map: ShardMap,
    pub node_status: NodeMap,
    pub config_hash: String,
    pub hash_function: String,
}

crate::codec::json_in_binary!(TopologySnapshot);

#[cfg(test)]
#[path = "types_test.rs"]
mod tests;
