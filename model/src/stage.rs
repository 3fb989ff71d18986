//! A change set in progress: copy-on-write working copies of the maps (O(1) to take),
//! the derived `NodeStatus::shards` lists kept current entity by entity, the events
//! made so far, and the bookkeeping that lets [`Stage::finish`] update the range index
//! and the configHash in O(changes) instead of O(topology).
//!
//! A stage is thrown away on any error, so its helpers may leave it half-updated.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::digest::{node_digest, shard_digest, DigestSum};
use crate::event::{EventType, TopologyEvent};
use crate::partition::{self, PartitionError, RangeIndex};
use crate::state::TopologyState;
use crate::types::{NodeMap, NodeStatus, ShardInfo, ShardMap};
use crate::validate::quoted;

pub(crate) struct Stage<'a> {
    base: &'a TopologyState,
    /// The version this change set will produce.
    pub version: u64,
    /// The timestamp of this change set.
    pub timestamp: u64,
    pub shards: ShardMap,
    pub nodes: NodeMap,
    /// Shards whose epoch this change set already raised (or set, when created):
    /// a shard changed by several operations of one change set grows by one.
    stamped: HashSet<String>,
    touched_shards: BTreeSet<String>,
    touched_nodes: BTreeSet<String>,
    /// Shard id -> index of the `CreateShard` that placed it, to name the culprit of a
    /// partition error.
    pub created_by: HashMap<String, usize>,
    pub events: Vec<TopologyEvent>,
}

/// The new parts of a state, ready to install.
pub(crate) struct Finished {
    pub shards: ShardMap,
    pub nodes: NodeMap,
    pub index: RangeIndex,
    pub sum: DigestSum,
    pub config_hash: String,
    pub events: Vec<TopologyEvent>,
}

/// True when two states of a shard differ in more than epoch and lastUpdate.
fn same_content(a: &ShardInfo, b: &ShardInfo) -> bool {
    a.shard_id == b.shard_id
        && a.key_range == b.key_range
        && a.primary_node == b.primary_node
        && a.replica_nodes == b.replica_nodes
        && a.status == b.status
        && a.migration == b.migration
}

impl<'a> Stage<'a> {
    pub fn new(base: &'a TopologyState, version: u64, timestamp: u64) -> Stage<'a> {
        Stage {
            base,
            version,
            timestamp,
            shards: base.shards.clone(),
            nodes: base.nodes.clone(),
            stamped: HashSet::new(),
            touched_shards: BTreeSet::new(),
            touched_nodes: BTreeSet::new(),
            created_by: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// Stores `shard` as given (epoch included) and moves its id between the derived
    /// lists of the nodes it left and joined. Fails if it names an unknown node.
    pub fn put_shard(&mut self, shard: ShardInfo) -> Result<(), String> {
        let id = shard.shard_id.clone();
        let old = self.shards.get(&id).cloned();
        for n in shard.nodes() {
            if !old.as_ref().is_some_and(|o| o.has_node(n)) {
                let node = self
                    .nodes
                    .get_mut(n)
                    .ok_or_else(|| format!("node {} is not registered", quoted(n)))?;
                if let Err(pos) = node.shards.binary_search(&id) {
                    node.shards.insert(pos, id.clone());
                }
            }
        }
        if let Some(old) = &old {
            for n in old.nodes() {
                if !shard.has_node(n) {
                    self.unlist(n, &id);
                }
            }
        }
        self.touched_shards.insert(id.clone());
        self.shards.insert(id, shard);
        Ok(())
    }

    fn unlist(&mut self, node: &str, shard: &str) {
        if let Some(node) = self.nodes.get_mut(node) {
            if let Ok(pos) = node.shards.binary_search_by(|s| s.as_str().cmp(shard)) {
                node.shards.remove(pos);
            }
        }
    }

    pub fn remove_shard(&mut self, id: &str) -> Option<ShardInfo> {
        let old = self.shards.remove(id)?;
        for n in old.nodes() {
            self.unlist(n, id);
        }
        self.touched_shards.insert(id.to_string());
        self.stamped.remove(id);
        Some(old)
    }

    /// Stores a shard an operation changed: unchanged content is left alone (no epoch
    /// bump); otherwise the epoch grows by one per change set (a new shard starts at
    /// the version) and lastUpdate becomes the change set's timestamp. Returns the
    /// stored state.
    pub fn write_shard(&mut self, mut shard: ShardInfo) -> Result<ShardInfo, String> {
        match self.shards.get(&shard.shard_id) {
            Some(cur) if same_content(cur, &shard) => return Ok(cur.clone()),
            Some(cur) if self.stamped.contains(&shard.shard_id) => shard.epoch = cur.epoch,
            Some(cur) => shard.epoch = cur.epoch + 1,
            None => shard.epoch = self.version,
        }
        shard.last_update = self.timestamp;
        self.stamped.insert(shard.shard_id.clone());
        self.put_shard(shard.clone())?;
        Ok(shard)
    }

    /// Stores `node`, keeping the derived shard list this stage holds for it (empty for
    /// a new node): derived fields are never taken from input. Returns the stored state.
    pub fn put_node(&mut self, mut node: NodeStatus) -> NodeStatus {
        node.shards = self
            .nodes
            .get(&node.node_id)
            .map(|n| n.shards.clone())
            .unwrap_or_default();
        self.touched_nodes.insert(node.node_id.clone());
        self.nodes.insert(node.node_id.clone(), node.clone());
        node
    }

    /// Removes a node that holds no shard.
    pub fn remove_node(&mut self, id: &str) -> Result<Option<NodeStatus>, String> {
        if let Some(n) = self.nodes.get(id) {
            if !n.shards.is_empty() {
                return Err(format!(
                    "node {} still holds {} shard(s)",
                    quoted(id),
                    n.shards.len()
                ));
            }
        }
        self.touched_nodes.insert(id.to_string());
        Ok(self.nodes.remove(id))
    }

    pub fn shard_event(&mut self, t: EventType, old: Option<ShardInfo>, new: Option<ShardInfo>) {
        let id = new.as_ref().or(old.as_ref()).map(|s| s.shard_id.clone());
        self.events.push(TopologyEvent {
            event_type: t,
            version: self.version,
            timestamp: self.timestamp,
            node_id: None,
            shard_id: id,
            old_value: old.map(Into::into),
            new_value: new.map(Into::into),
        });
    }

    pub fn node_event(&mut self, t: EventType, old: Option<NodeStatus>, new: Option<NodeStatus>) {
        let id = new.as_ref().or(old.as_ref()).map(|n| n.node_id.clone());
        self.events.push(TopologyEvent {
            event_type: t,
            version: self.version,
            timestamp: self.timestamp,
            node_id: id,
            shard_id: None,
            old_value: old.map(Into::into),
            new_value: new.map(Into::into),
        });
    }

    /// Ends the change set: updates the range index and checks the partition around
    /// what changed, and updates the digest sum with the entities that changed.
    pub fn finish(self) -> Result<Finished, PartitionError> {
        let base = self.base;
        let mut index = base.index.clone();
        let mut sum = base.sum;
        let mut points = BTreeSet::new();
        let mut placed = Vec::new();
        for id in &self.touched_shards {
            let (old, new) = (base.shards.get(id), self.shards.get(id));
            if old == new {
                continue;
            }
            if let Some(o) = old {
                sum.sub(&shard_digest(o));
            }
            if let Some(n) = new {
                sum.add(&shard_digest(n));
            }
            let (old_range, new_range) = (old.map(|s| s.key_range), new.map(|s| s.key_range));
            if old_range == new_range {
                continue;
            }
            if let Some(r) = old_range {
                index.remove(&r.start.0);
                points.insert(r.start.0);
            }
            if let Some(s) = new {
                if s.key_range.is_empty() {
                    return Err(partition::empty_range(s));
                }
                placed.push(s);
                points.insert(s.key_range.start.0);
            }
        }
        // Every moved range left the index before any is placed again, so a collision
        // here is a real overlap, not an artefact of the order.
        for s in placed {
            if let Some(other) = index.insert(s.key_range.start.0, s.shard_id.clone()) {
                let other = self.shards.get(&other).expect("indexed shards exist");
                return Err(partition::same_start(other, s));
            }
        }
        partition::check_around(&index, &self.shards, &points)?;
        for id in &self.touched_nodes {
            let (old, new) = (base.nodes.get(id), self.nodes.get(id));
            if old == new {
                continue;
            }
            if let Some(o) = old {
                sum.sub(&node_digest(o));
            }
            if let Some(n) = new {
                sum.add(&node_digest(n));
            }
        }
        let config_hash = sum.config_hash(self.shards.len(), self.nodes.len());
        Ok(Finished {
            shards: self.shards,
            nodes: self.nodes,
            index,
            sum,
            config_hash,
            events: self.events,
        })
    }
}
