//! Operations on a [`Stage`]: validation and effect of each [`Operation`], and the
//! events it makes. This module owns dispatch, error field paths ([`At`]) and the
//! node-level operations (register, remove, health, bootstrap); shard operations are
//! in `shard_ops`.
//!
//! Every operation emits at least one event, so every version has events and a
//! client that tracks versions through events never sees a hole.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::command::{HealthUpdate, NodeSpec, Operation};
use crate::error::{ApplyError, EntityKind};
use crate::event::EventType;
use crate::hash::HashPoint;
use crate::shard_ops;
use crate::stage::Stage;
use crate::types::{KeyRange, NodeStatus, ShardInfo, ShardStatus};
use crate::validate::{check_address, check_id, check_labels, quoted, MAX_ERROR_LEN};

/// Largest `shardCount` of a bootstrap.
pub const MAX_BOOTSTRAP_SHARDS: u32 = 65536;

/// Where an operation sits in its command, to name fields in errors. A command of one
/// operation (what most HTTP routes send) names fields bare (`address`); a batch
/// prefixes them (`ops[2].address`).
pub(crate) struct At<'a> {
    index: usize,
    single: bool,
    op: &'a Operation,
}

impl<'a> At<'a> {
    pub fn new(index: usize, single: bool, op: &'a Operation) -> At<'a> {
        At { index, single, op }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn field(&self, name: &str) -> String {
        if self.single {
            name.to_string()
        } else {
            format!("ops[{}].{name}", self.index)
        }
    }

    /// The operation as a whole.
    pub fn op_field(&self) -> String {
        if self.single {
            self.op.name().to_string()
        } else {
            format!("ops[{}]", self.index)
        }
    }

    pub fn invalid(&self, name: &str, detail: impl fmt::Display) -> ApplyError {
        ApplyError::invalid(self.field(name), detail)
    }

    pub fn invalid_op(&self, detail: impl fmt::Display) -> ApplyError {
        ApplyError::invalid(self.op_field(), detail)
    }

    pub fn conflict(&self, detail: impl fmt::Display) -> ApplyError {
        if self.single {
            ApplyError::conflict(detail.to_string())
        } else {
            ApplyError::conflict(format!(
                "ops[{}] ({}): {detail}",
                self.index,
                self.op.name()
            ))
        }
    }

    pub fn id(&self, name: &str, id: &str) -> Result<(), ApplyError> {
        check_id(id).map_err(|d| self.invalid(name, d))
    }
}

pub(crate) fn apply_op(st: &mut Stage<'_>, at: &At<'_>, op: &Operation) -> Result<(), ApplyError> {
    match op {
        Operation::RegisterNode {
            node_id,
            address,
            labels,
        } => register_node(st, at, node_id, address, labels.as_ref()),
        Operation::RemoveNode { node_id } => remove_node(st, at, node_id),
        Operation::SetHealth { updates } => set_health(st, at, updates),
        Operation::Bootstrap {
            nodes,
            shard_count,
            replication_factor,
        } => bootstrap(st, at, nodes, *shard_count, *replication_factor),
        Operation::CreateShard {
            shard_id,
            key_range,
            primary_node,
            replica_nodes,
        } => shard_ops::create(st, at, shard_id, key_range, primary_node, replica_nodes),
        Operation::UpdateShard {
            shard_id,
            primary_node,
            replica_nodes,
            status,
        } => shard_ops::update(
            st,
            at,
            shard_id,
            primary_node.as_deref(),
            replica_nodes.as_deref(),
            *status,
        ),
        Operation::RemoveShard { shard_id } => shard_ops::remove(st, at, shard_id),
        Operation::SplitShard {
            shard_id,
            at: point,
            new_shard_id,
        } => shard_ops::split(st, at, shard_id, *point, new_shard_id.as_deref()),
        Operation::MergeShards { shard_id, with } => shard_ops::merge(st, at, shard_id, with),
        Operation::StartMigration { shard_id, from, to } => {
            shard_ops::start_migration(st, at, shard_id, from, to)
        }
        Operation::MigrationProgress { shard_id, percent } => {
            shard_ops::migration_progress(st, at, shard_id, *percent)
        }
        Operation::CompleteMigration { shard_id } => {
            shard_ops::complete_migration(st, at, shard_id)
        }
        Operation::CancelMigration { shard_id } => shard_ops::cancel_migration(st, at, shard_id),
    }
}

/// "3 shards (a, b, c)", listing at most five ids.
pub(crate) fn some_ids(ids: &[String], what: &str) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
    let more = if ids.len() > 5 { ", …" } else { "" };
    let s = if ids.len() == 1 { "" } else { "s" };
    format!("{} {what}{s} ({}{more})", ids.len(), shown.join(", "))
}

fn check_node_fields(
    at: &At<'_>,
    prefix: &str,
    node_id: &str,
    address: &str,
) -> Result<(), ApplyError> {
    at.id(&format!("{prefix}nodeId"), node_id)?;
    check_address(address).map_err(|d| at.invalid(&format!("{prefix}address"), d))
}

fn register_node(
    st: &mut Stage<'_>,
    at: &At<'_>,
    node_id: &str,
    address: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<(), ApplyError> {
    check_node_fields(at, "", node_id, address)?;
    if let Some(labels) = labels {
        check_labels(labels).map_err(|(_, d)| at.invalid("labels", d))?;
    }
    let old = st.nodes.get(node_id).cloned();
    let mut new = old
        .clone()
        .unwrap_or_else(|| NodeStatus::new(node_id, address));
    new.address = address.to_string();
    if let Some(labels) = labels {
        new.labels = labels.clone();
    }
    let new = st.put_node(new);
    let t = if old.is_some() {
        EventType::ConfigChange
    } else {
        EventType::NodeJoin
    };
    st.node_event(t, old, Some(new));
    Ok(())
}

fn remove_node(st: &mut Stage<'_>, at: &At<'_>, node_id: &str) -> Result<(), ApplyError> {
    at.id("nodeId", node_id)?;
    let Some(old) = st.nodes.get(node_id).cloned() else {
        return Err(ApplyError::not_found(EntityKind::Node, node_id));
    };
    if !old.shards.is_empty() {
        return Err(at.conflict(format!(
            "node {} still holds {}; move them to other nodes before removing it",
            quoted(node_id),
            some_ids(&old.shards, "shard")
        )));
    }
    let target = st
        .shards
        .values()
        .find(|s| s.migration.as_ref().is_some_and(|m| m.to == node_id));
    if let Some(s) = target {
        return Err(at.conflict(format!(
            "node {} is the target of the migration of shard {}; complete or cancel it first",
            quoted(node_id),
            quoted(&s.shard_id)
        )));
    }
    st.remove_node(node_id).map_err(|e| at.conflict(e))?;
    st.node_event(EventType::NodeLeave, Some(old), None);
    Ok(())
}

fn set_health(st: &mut Stage<'_>, at: &At<'_>, updates: &[HealthUpdate]) -> Result<(), ApplyError> {
    if updates.is_empty() {
        return Err(at.invalid("updates", "must name at least one node"));
    }
    let mut seen = HashSet::with_capacity(updates.len());
    for (j, u) in updates.iter().enumerate() {
        let field = |name: &str| format!("updates[{j}].{name}");
        at.id(&field("nodeId"), &u.node_id)?;
        if !seen.insert(u.node_id.as_str()) {
            return Err(at.invalid(
                &field("nodeId"),
                format!("node {} is listed twice", quoted(&u.node_id)),
            ));
        }
        if let Some(e) = &u.last_error {
            if e.chars().count() > MAX_ERROR_LEN {
                return Err(at.invalid(
                    &field("lastError"),
                    format!("is longer than {MAX_ERROR_LEN} characters"),
                ));
            }
        }
        if !st.nodes.contains_key(&u.node_id) {
            return Err(ApplyError::not_found(EntityKind::Node, &u.node_id));
        }
    }
    let mut results = Vec::with_capacity(updates.len());
    for u in updates {
        let old = st.nodes.get(&u.node_id).cloned().expect("checked above");
        let mut new = old.clone();
        new.health = u.health;
        new.failure_count = u.failure_count;
        new.last_seen = u.last_seen;
        new.last_error = u.last_error.clone();
        let new = st.put_node(new);
        results.push((old != new, old, new));
    }
    // Unchanged nodes are reported only when nothing changed, so that the version
    // this operation makes still has an event.
    let any_changed = results.iter().any(|(changed, _, _)| *changed);
    for (changed, old, new) in results {
        if changed || !any_changed {
            st.node_event(EventType::NodeHealthChange, Some(old), Some(new));
        }
    }
    Ok(())
}

fn bootstrap(
    st: &mut Stage<'_>,
    at: &At<'_>,
    nodes: &[NodeSpec],
    shard_count: u32,
    replication_factor: u32,
) -> Result<(), ApplyError> {
    if nodes.is_empty() {
        return Err(at.invalid("nodes", "must list at least one node"));
    }
    let mut seen = HashSet::with_capacity(nodes.len());
    for (j, n) in nodes.iter().enumerate() {
        check_node_fields(at, &format!("nodes[{j}]."), &n.node_id, &n.address)?;
        if !seen.insert(n.node_id.as_str()) {
            return Err(at.invalid(
                &format!("nodes[{j}].nodeId"),
                format!("node {} is listed twice", quoted(&n.node_id)),
            ));
        }
    }
    if !(1..=MAX_BOOTSTRAP_SHARDS).contains(&shard_count) {
        return Err(at.invalid(
            "shardCount",
            format!("{shard_count} is out of range 1-{MAX_BOOTSTRAP_SHARDS}"),
        ));
    }
    let n = nodes.len();
    if replication_factor == 0 || replication_factor as usize > n {
        return Err(at.invalid(
            "replicationFactor",
            format!("{replication_factor} is out of range 1-{n} (the number of nodes)"),
        ));
    }
    if !st.shards.is_empty() || !st.nodes.is_empty() {
        return Err(at.conflict(format!(
            "bootstrap needs an empty topology; this one has {} shard(s) and {} node(s)",
            st.shards.len(),
            st.nodes.len()
        )));
    }
    for spec in nodes {
        let node = st.put_node(NodeStatus::new(&spec.node_id, &spec.address));
        st.node_event(EventType::NodeJoin, None, Some(node));
    }
    let count = u128::from(shard_count);
    let width = shard_count.saturating_sub(1).to_string().len().max(4);
    let bound = |k: u128| (k << 64) / count;
    for k in 0..shard_count as usize {
        let k128 = k as u128;
        let end = (k128 + 1 < count).then(|| HashPoint(bound(k128 + 1) as u64));
        let shard = ShardInfo {
            shard_id: format!("shard-{k:0width$}"),
            key_range: KeyRange {
                start: HashPoint(bound(k128) as u64),
                end,
            },
            primary_node: nodes[k % n].node_id.clone(),
            replica_nodes: (1..replication_factor as usize)
                .map(|r| nodes[(k + r) % n].node_id.clone())
                .collect(),
            status: ShardStatus::Active,
            epoch: 0,
            last_update: 0,
            migration: None,
        };
        let shard = st.write_shard(shard).map_err(|e| at.conflict(e))?;
        st.shard_event(EventType::ShardAdd, None, Some(shard));
    }
    Ok(())
}

#[cfg(test)]
#[path = "ops_node_test.rs"]
mod tests;
