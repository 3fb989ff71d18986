//! [`TopologyState`]: the topology at one version and the deterministic state machine
//! over it. The server applies [`Command`]s (the Raft state machine); clients replay
//! the resulting events. Both keep the same derived data (range index, node shard
//! lists, configHash), so equal inputs give equal states on every machine.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec;
use crate::command::{Command, Operation};
use crate::digest::{node_digest, shard_digest, DigestSum};
use crate::error::{ApplyError, ApplyEventsError, SnapshotError};
use crate::event::TopologyEvent;
use crate::hash::{key_hash, HASH_FUNCTION};
use crate::history::EventHistory;
use crate::ops::{self, At};
use crate::partition::{self, PartitionError, RangeIndex};
use crate::replay;
use crate::stage::{Finished, Stage};
use crate::types::{NodeMap, NodeStatus, ShardInfo, ShardMap, TopologySnapshot};
use crate::validate::{check_address, check_id, check_labels, check_placement, PlacementField};

/// The topology at one version. Cloning is O(1) (persistent maps), which is how the
/// server publishes each applied version to its serving threads.
///
/// Its serde form is `{version, timestamp, shardMap, nodeStatus, configHash, history}`
/// (the history survives Raft snapshots); deserializing validates it like
/// [`TopologyState::from_snapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyState {
    pub(crate) version: u64,
    pub(crate) timestamp: u64,
    pub(crate) shards: ShardMap,
    pub(crate) nodes: NodeMap,
    /// Derived: range start -> shard id, for routing and partition checks.
    pub(crate) index: RangeIndex,
    /// Derived: the digest sum behind `config_hash`.
    pub(crate) sum: DigestSum,
    pub(crate) config_hash: String,
    pub(crate) history: EventHistory,
}

impl TopologyState {
    /// The empty topology at version 0.
    pub fn new(event_buffer_size: usize) -> TopologyState {
        let sum = DigestSum::default();
        TopologyState {
            version: 0,
            timestamp: 0,
            shards: ShardMap::new(),
            nodes: NodeMap::new(),
            index: RangeIndex::new(),
            sum,
            config_hash: sum.config_hash(0, 0),
            history: EventHistory::new(event_buffer_size, 0),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Timestamp (ms) of the change set that produced this version (0 at version 0).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    /// No shard and no node.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty() && self.nodes.is_empty()
    }

    /// Shards in id order.
    pub fn shards(&self) -> impl Iterator<Item = &ShardInfo> {
        self.shards.values()
    }

    /// Shards in hash-space order (by range start).
    pub fn shards_by_range(&self) -> impl Iterator<Item = &ShardInfo> {
        self.index
            .values()
            .filter_map(move |id| self.shards.get(id))
    }

    pub fn shard(&self, id: &str) -> Option<&ShardInfo> {
        self.shards.get(id)
    }

    /// Nodes in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.values()
    }

    pub fn node(&self, id: &str) -> Option<&NodeStatus> {
        self.nodes.get(id)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The shard map itself (O(1) to clone).
    pub fn shard_map(&self) -> &ShardMap {
        &self.shards
    }

    /// The node map itself (O(1) to clone).
    pub fn node_map(&self) -> &NodeMap {
        &self.nodes
    }

    /// The shard owning hash `h`: O(log n). `None` only when there are no shards.
    pub fn shard_for_hash(&self, h: u64) -> Option<&ShardInfo> {
        let (_, id) = self.index.get_prev(&h)?;
        self.shards.get(id).filter(|s| s.key_range.contains(h))
    }

    /// The shard owning `key` under [`key_hash`].
    pub fn shard_for_key(&self, key: &[u8]) -> Option<&ShardInfo> {
        self.shard_for_hash(key_hash(key))
    }

    pub fn history(&self) -> &EventHistory {
        &self.history
    }

    /// Changes how many events the history keeps (e.g. after a config change);
    /// evicts whole change sets if it shrinks.
    pub fn set_event_buffer_size(&mut self, event_buffer_size: usize) {
        self.history.set_capacity(event_buffer_size);
    }

    /// Validates and applies one change set, atomically. On success the version grows
    /// by one, each changed shard's epoch by one and its lastUpdate becomes the change
    /// set's timestamp (see [`next_timestamp`]); the events, all
    /// carrying the new version, are appended to the history and returned (at least
    /// one). On error `self` is unchanged.
    ///
    /// An empty change set is refused (400 "no operations"): it would make a version
    /// without events, which subscribers could not tell from a lost one.
    pub fn apply(&mut self, cmd: &Command) -> Result<Vec<TopologyEvent>, ApplyError> {
        if let Some(expected) = cmd.expected_version {
            if expected != self.version {
                return Err(ApplyError::VersionMismatch {
                    expected,
                    actual: self.version,
                });
            }
        }
        if cmd.ops.is_empty() {
            return Err(ApplyError::invalid(
                "ops",
                "no operations: a change set needs at least one",
            ));
        }
        let version = self.version + 1;
        let timestamp = next_timestamp(self.timestamp, cmd.timestamp_ms);
        let single = cmd.ops.len() == 1;
        let mut stage = Stage::new(self, version, timestamp);
        for (i, op) in cmd.ops.iter().enumerate() {
            ops::apply_op(&mut stage, &At::new(i, single, op), op)?;
        }
        let created_by = std::mem::take(&mut stage.created_by);
        let done = stage
            .finish()
            .map_err(|e| partition_error(e, &created_by, &cmd.ops))?;
        let events = done.events.clone();
        self.install(version, timestamp, done);
        Ok(events)
    }

    /// Client side: applies the events of `version` as received from a server. They
    /// are upserted (`newValue`) or deleted (ShardRemove, NodeLeave) in order; derived
    /// fields and the configHash are recomputed. A version already applied is
    /// ignored (resent events are harmless); a later one than `version() + 1` is a
    /// [`ApplyEventsError::Gap`]. On error `self` is unchanged: resynchronise.
    pub fn apply_events(
        &mut self,
        version: u64,
        events: &[TopologyEvent],
    ) -> Result<(), ApplyEventsError> {
        if version <= self.version {
            return Ok(());
        }
        if version != self.version + 1 {
            return Err(ApplyEventsError::Gap {
                expected: self.version + 1,
                received: version,
            });
        }
        let bad = |message: String| ApplyEventsError::Inconsistent { version, message };
        // The server's timestamp of the version (see `next_timestamp`), which all its
        // events carry.
        let timestamp = events
            .iter()
            .map(|e| e.timestamp)
            .max()
            .unwrap_or(self.timestamp);
        let mut stage = Stage::new(self, version, self.timestamp);
        for (i, e) in events.iter().enumerate() {
            if e.version != version {
                return Err(bad(format!("events[{i}] has version {}", e.version)));
            }
            replay::apply_event(&mut stage, e)
                .map_err(|m| bad(format!("events[{i}] ({}): {m}", e.event_type)))?;
        }
        let mut done = stage.finish().map_err(|e| bad(e.message))?;
        // The history holds what the server sent, exactly.
        done.events = events.to_vec();
        self.install(version, timestamp, done);
        Ok(())
    }

    fn install(&mut self, version: u64, timestamp: u64, done: Finished) {
        self.history.push(version, &done.events);
        self.version = version;
        self.timestamp = timestamp;
        self.shards = done.shards;
        self.nodes = done.nodes;
        self.index = done.index;
        self.sum = done.sum;
        self.config_hash = done.config_hash;
    }

    /// The snapshot at this version. O(1): the maps are shared, not copied.
    pub fn to_snapshot(&self) -> TopologySnapshot {
        TopologySnapshot {
            version: self.version,
            timestamp: self.timestamp,
            shard_map: self.shards.clone(),
            node_status: self.nodes.clone(),
            config_hash: self.config_hash.clone(),
            hash_function: HASH_FUNCTION.to_string(),
        }
    }

    /// Builds a state from a snapshot, validating everything the state machine
    /// guarantees (ids, addresses, placements, migrations, the partition) and that
    /// `configHash` matches the content. Node `shards` lists are recomputed, not
    /// trusted. The history starts empty, after the snapshot's version.
    pub fn from_snapshot(
        s: TopologySnapshot,
        event_buffer_size: usize,
    ) -> Result<TopologyState, SnapshotError> {
        if s.hash_function != HASH_FUNCTION {
            return Err(SnapshotError::UnsupportedHashFunction {
                found: s.hash_function,
            });
        }
        let state = build(
            s.version,
            s.timestamp,
            s.shard_map,
            s.node_status,
            EventHistory::new(event_buffer_size, s.version),
        )?;
        check_hash(&state, s.config_hash)?;
        Ok(state)
    }
}

/// Names the operation to blame for a partition error: the `CreateShard` that placed
/// one of the shards involved, if any.
fn partition_error(
    e: PartitionError,
    created_by: &HashMap<String, usize>,
    ops: &[Operation],
) -> ApplyError {
    let single = ops.len() == 1;
    let culprit = e.shards.iter().filter_map(|id| created_by.get(id)).max();
    let field = match culprit {
        Some(&i) => At::new(i, single, &ops[i]).field("keyRange"),
        None if single => ops[0].name().to_string(),
        None => "ops".to_string(),
    };
    ApplyError::invalid(field, e.message)
}

fn check_hash(state: &TopologyState, claimed: String) -> Result<(), SnapshotError> {
    if state.config_hash != claimed {
        return Err(SnapshotError::HashMismatch {
            expected: claimed,
            actual: state.config_hash.clone(),
        });
    }
    Ok(())
}

/// Validates the maps and derives everything else: O(n log n).
fn build(
    version: u64,
    timestamp: u64,
    shards: ShardMap,
    mut nodes: NodeMap,
    history: EventHistory,
) -> Result<TopologyState, SnapshotError> {
    for (key, n) in &nodes {
        let field = |name: &str| format!("nodeStatus.{key}.{name}");
        check_id(key).map_err(|d| SnapshotError::invalid(format!("nodeStatus.{key}"), d))?;
        if n.node_id != *key {
            return Err(SnapshotError::invalid(
                field("nodeId"),
                "does not match its key",
            ));
        }
        check_address(&n.address).map_err(|d| SnapshotError::invalid(field("address"), d))?;
        check_labels(&n.labels).map_err(|(_, d)| SnapshotError::invalid(field("labels"), d))?;
    }
    let mut lists: HashMap<&str, Vec<String>> = HashMap::new();
    for (key, s) in &shards {
        let field = |name: &str| format!("shardMap.{key}.{name}");
        check_id(key).map_err(|d| SnapshotError::invalid(format!("shardMap.{key}"), d))?;
        if s.shard_id != *key {
            return Err(SnapshotError::invalid(
                field("shardId"),
                "does not match its key",
            ));
        }
        check_shard(s, &nodes).map_err(|(name, d)| SnapshotError::invalid(field(&name), d))?;
        // Shards come in id order, so each list comes out sorted.
        for n in s.nodes() {
            lists.entry(n).or_default().push(s.shard_id.clone());
        }
    }
    let partition = |e: PartitionError| SnapshotError::invalid("shardMap", e.message);
    let index = partition::build_index(&shards).map_err(partition)?;
    partition::check_full(&index, &shards).map_err(partition)?;
    let stale: Vec<(String, Vec<String>)> = nodes
        .iter()
        .filter_map(|(id, n)| {
            let derived = lists.remove(id.as_str()).unwrap_or_default();
            (n.shards != derived).then(|| (id.clone(), derived))
        })
        .collect();
    for (id, derived) in stale {
        if let Some(n) = nodes.get_mut(&id) {
            n.shards = derived;
        }
    }
    let mut sum = DigestSum::default();
    shards.values().for_each(|s| sum.add(&shard_digest(s)));
    nodes.values().for_each(|n| sum.add(&node_digest(n)));
    Ok(TopologyState {
        version,
        timestamp,
        config_hash: sum.config_hash(shards.len(), nodes.len()),
        shards,
        nodes,
        index,
        sum,
        history,
    })
}

/// What the state machine guarantees of every stored shard. On error: the field name
/// under the shard, and the detail.
pub(crate) fn check_shard(s: &ShardInfo, nodes: &NodeMap) -> Result<(), (String, String)> {
    if s.key_range.is_empty() {
        return Err(("keyRange".into(), format!("{} is empty", s.key_range)));
    }
    check_placement(&s.primary_node, &s.replica_nodes, nodes).map_err(|(f, d)| match f {
        PlacementField::Primary => ("primaryNode".into(), d),
        PlacementField::Replica(i) => (format!("replicaNodes[{i}]"), d),
    })?;
    let migrating = s.status == crate::types::ShardStatus::Migrating;
    match (&s.migration, migrating) {
        (None, false) => Ok(()),
        (Some(_), false) => Err((
            "migration".into(),
            format!("is set but the status is {}", s.status),
        )),
        (None, true) => Err((
            "migration".into(),
            "is missing but the status is migrating".into(),
        )),
        (Some(m), true) => {
            if !s.has_node(&m.from) {
                Err((
                    "migration.from".into(),
                    format!("node {:?} does not hold the shard", m.from),
                ))
            } else if !nodes.contains_key(&m.to) {
                Err((
                    "migration.to".into(),
                    format!("node {:?} is not registered", m.to),
                ))
            } else if s.has_node(&m.to) {
                Err((
                    "migration.to".into(),
                    format!("node {:?} already holds the shard", m.to),
                ))
            } else if m.percent > 100 {
                Err((
                    "migration.percent".into(),
                    format!("{} is not in 0-100", m.percent),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// The serde form of a state, borrowed for writing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateOut<'a> {
    version: u64,
    timestamp: u64,
    shard_map: &'a ShardMap,
    node_status: &'a NodeMap,
    config_hash: &'a str,
    history: &'a EventHistory,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateIn {
    version: u64,
    timestamp: u64,
    shard_map: ShardMap,
    node_status: NodeMap,
    config_hash: String,
    history: EventHistory,
}

impl TryFrom<StateIn> for TopologyState {
    type Error = SnapshotError;

    fn try_from(s: StateIn) -> Result<Self, Self::Error> {
        s.history
            .check(s.version)
            .map_err(|d| SnapshotError::invalid("history", d))?;
        let state = build(
            s.version,
            s.timestamp,
            s.shard_map,
            s.node_status,
            s.history,
        )?;
        check_hash(&state, s.config_hash)?;
        Ok(state)
    }
}

impl Serialize for TopologyState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return codec::serialize_as_json(self, s);
        }
        StateOut {
            version: self.version,
            timestamp: self.timestamp,
            shard_map: &self.shards,
            node_status: &self.nodes,
            config_hash: &self.config_hash,
            history: &self.history,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopologyState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return codec::deserialize_from_json(d);
        }
        let s = StateIn::deserialize(d)?;
        TopologyState::try_from(s).map_err(serde::de::Error::custom)
    }
}

/// How far the topology timestamp may stay ahead of the clock of the leader that
/// stamped a change set.
pub const MAX_TIMESTAMP_LEAD_MS: u64 = 60_000;

/// The timestamp of a change set stamped `stamped` (the leader's clock) applied at
/// `current`: time never goes back for a leader whose clock is a little slow
/// (`max(stamped, current)`), but a timestamp more than [`MAX_TIMESTAMP_LEAD_MS`] ahead
/// of the leader's clock (a clock that once jumped, or an entry written before leaders
/// stamped every change set) is pulled back to that bound, so it cannot stick.
pub fn next_timestamp(current: u64, stamped: u64) -> u64 {
    stamped.max(current.min(stamped.saturating_add(MAX_TIMESTAMP_LEAD_MS)))
}

#[cfg(test)]
#[path = "state_test.rs"]
mod tests;
