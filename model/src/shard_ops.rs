//! Shard operations on a [`Stage`]: create, update, remove, split, merge, and the
//! migration steps (start, progress, complete, cancel). Each validates against the
//! stage as the previous operations of the change set left it; the partition of the
//! hash space is checked once, when the change set ends.

use crate::error::{ApplyError, EntityKind};
use crate::event::EventType;
use crate::hash::HashPoint;
use crate::ops::At;
use crate::stage::Stage;
use crate::types::{KeyRange, Migration, ShardInfo, ShardStatus};
use crate::validate::{check_placement, quoted, PlacementField};

/// The shard an operation addresses; unknown is a 404.
fn existing(st: &Stage<'_>, at: &At<'_>, id: &str) -> Result<ShardInfo, ApplyError> {
    at.id("shardId", id)?;
    st.shards
        .get(id)
        .cloned()
        .ok_or_else(|| ApplyError::not_found(EntityKind::Shard, id))
}

fn placement(
    st: &Stage<'_>,
    at: &At<'_>,
    primary: &str,
    replicas: &[String],
) -> Result<(), ApplyError> {
    check_placement(primary, replicas, &st.nodes).map_err(|(field, detail)| match field {
        PlacementField::Primary => at.invalid("primaryNode", detail),
        PlacementField::Replica(i) => at.invalid(&format!("replicaNodes[{i}]"), detail),
    })
}

fn describe_migration(s: &ShardInfo) -> String {
    match &s.migration {
        Some(m) => format!(
            "shard {} is migrating from {} to {} ({}%)",
            quoted(&s.shard_id),
            quoted(&m.from),
            quoted(&m.to),
            m.percent
        ),
        None => format!("shard {} is {}", quoted(&s.shard_id), s.status),
    }
}

fn write(st: &mut Stage<'_>, at: &At<'_>, shard: ShardInfo) -> Result<ShardInfo, ApplyError> {
    st.write_shard(shard).map_err(|e| at.conflict(e))
}

pub(crate) fn create(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    range: &KeyRange,
    primary: &str,
    replicas: &[String],
) -> Result<(), ApplyError> {
    at.id("shardId", id)?;
    if range.is_empty() {
        return Err(at.invalid(
            "keyRange",
            format!("{range} is empty: end must be after start (\"\" is the end of the space)"),
        ));
    }
    placement(st, at, primary, replicas)?;
    if st.shards.contains_key(id) {
        return Err(at.conflict(format!("shard {} already exists", quoted(id))));
    }
    let shard = ShardInfo {
        shard_id: id.to_string(),
        key_range: *range,
        primary_node: primary.to_string(),
        replica_nodes: replicas.to_vec(),
        status: ShardStatus::Active,
        epoch: 0,
        last_update: 0,
        migration: None,
    };
    let shard = write(st, at, shard)?;
    st.created_by.insert(id.to_string(), at.index());
    st.shard_event(EventType::ShardAdd, None, Some(shard));
    Ok(())
}

pub(crate) fn update(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    primary: Option<&str>,
    replicas: Option<&[String]>,
    status: Option<ShardStatus>,
) -> Result<(), ApplyError> {
    if primary.is_none() && replicas.is_none() && status.is_none() {
        return Err(at.invalid_op("give at least one of primaryNode, replicaNodes, status"));
    }
    if status == Some(ShardStatus::Migrating) {
        return Err(at.invalid(
            "status",
            "\"migrating\" is set by startMigration, not by an update",
        ));
    }
    let old = existing(st, at, id)?;
    if old.status == ShardStatus::Migrating {
        return Err(at.conflict(format!(
            "{}; complete or cancel the migration before updating the shard",
            describe_migration(&old)
        )));
    }
    let mut new = old.clone();
    match (primary, replicas) {
        // A promotion: the old primary takes the new one's place among the replicas.
        (Some(p), None) if p != old.primary_node => {
            if let Some(pos) = old.replica_nodes.iter().position(|r| r == p) {
                new.replica_nodes[pos] = old.primary_node.clone();
            }
            new.primary_node = p.to_string();
        }
        (p, r) => {
            if let Some(p) = p {
                new.primary_node = p.to_string();
            }
            if let Some(r) = r {
                new.replica_nodes = r.to_vec();
            }
        }
    }
    if let Some(s) = status {
        new.status = s;
    }
    placement(st, at, &new.primary_node, &new.replica_nodes)?;
    let t = if new.primary_node != old.primary_node {
        EventType::LeaderChange
    } else {
        EventType::ConfigChange
    };
    let new = write(st, at, new)?;
    st.shard_event(t, Some(old), Some(new));
    Ok(())
}

pub(crate) fn remove(st: &mut Stage<'_>, at: &At<'_>, id: &str) -> Result<(), ApplyError> {
    let old = existing(st, at, id)?;
    st.remove_shard(id);
    st.shard_event(EventType::ShardRemove, Some(old), None);
    Ok(())
}

/// `shard-<16 hex digits of at>`, made unique with `-1`, `-2`, .. if taken.
fn split_id(st: &Stage<'_>, at: HashPoint) -> String {
    let base = format!("shard-{at}");
    if !st.shards.contains_key(&base) {
        return base;
    }
    (1u64..)
        .map(|k| format!("{base}-{k}"))
        .find(|id| !st.shards.contains_key(id))
        .expect("a free id exists")
}

pub(crate) fn split(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    point: Option<HashPoint>,
    new_id: Option<&str>,
) -> Result<(), ApplyError> {
    let old = existing(st, at, id)?;
    if let Some(n) = new_id {
        at.id("newShardId", n)?;
    }
    if old.status == ShardStatus::Migrating {
        return Err(at.conflict(format!(
            "{}; complete or cancel the migration before splitting the shard",
            describe_migration(&old)
        )));
    }
    let range = old.key_range;
    let (lo, hi) = (u128::from(range.start.0), range.end_u128());
    let point = match point {
        Some(p) if lo < u128::from(p.0) && u128::from(p.0) < hi => p,
        Some(p) => {
            return Err(at.invalid(
                "at",
                format!(
                    "{p} is not strictly inside the range {range} of shard {}",
                    quoted(id)
                ),
            ))
        }
        None if hi - lo < 2 => {
            return Err(at.conflict(format!(
                "shard {} {range} holds a single hash value and cannot be split",
                quoted(id)
            )))
        }
        None => HashPoint((lo + (hi - lo) / 2) as u64),
    };
    let new_id = match new_id {
        Some(n) if st.shards.contains_key(n) => {
            return Err(at.conflict(format!("shard {} already exists", quoted(n))))
        }
        Some(n) => n.to_string(),
        None => split_id(st, point),
    };
    let mut left = old.clone();
    left.key_range.end = Some(point);
    let right = ShardInfo {
        shard_id: new_id,
        key_range: KeyRange {
            start: point,
            end: range.end,
        },
        migration: None,
        ..old.clone()
    };
    let left = write(st, at, left)?;
    let right = write(st, at, right)?;
    st.shard_event(EventType::ShardSplit, Some(old), Some(left));
    st.shard_event(EventType::ShardSplit, None, Some(right));
    Ok(())
}

pub(crate) fn merge(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    with: &str,
) -> Result<(), ApplyError> {
    let survivor = existing(st, at, id)?;
    at.id("with", with)?;
    if with == id {
        return Err(at.invalid("with", "a shard cannot be merged with itself"));
    }
    let Some(absorbed) = st.shards.get(with).cloned() else {
        return Err(at.invalid("with", format!("shard {} does not exist", quoted(with))));
    };
    for s in [&survivor, &absorbed] {
        if s.status != ShardStatus::Active || s.migration.is_some() {
            return Err(at.conflict(format!(
                "{}; only active shards with no migration can be merged",
                describe_migration(s)
            )));
        }
    }
    let (a, b) = (survivor.key_range, absorbed.key_range);
    let union = if a.end == Some(b.start) {
        KeyRange {
            start: a.start,
            end: b.end,
        }
    } else if b.end == Some(a.start) {
        KeyRange {
            start: b.start,
            end: a.end,
        }
    } else {
        return Err(at.invalid(
            "with",
            format!(
                "shard {} {b} is not adjacent to shard {} {a}",
                quoted(with),
                quoted(id)
            ),
        ));
    };
    st.remove_shard(with);
    let mut merged = survivor.clone();
    merged.key_range = union;
    let merged = write(st, at, merged)?;
    st.shard_event(EventType::ShardMerge, Some(survivor), Some(merged));
    st.shard_event(EventType::ShardRemove, Some(absorbed), None);
    Ok(())
}

pub(crate) fn start_migration(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    from: &str,
    to: &str,
) -> Result<(), ApplyError> {
    let old = existing(st, at, id)?;
    at.id("from", from)?;
    at.id("to", to)?;
    if old.status != ShardStatus::Active || old.migration.is_some() {
        return Err(at.conflict(format!(
            "{}; only an active shard can start a migration",
            describe_migration(&old)
        )));
    }
    if !old.has_node(from) {
        return Err(at.invalid(
            "from",
            format!("node {} does not hold shard {}", quoted(from), quoted(id)),
        ));
    }
    if !st.nodes.contains_key(to) {
        return Err(at.invalid("to", format!("node {} is not registered", quoted(to))));
    }
    if old.has_node(to) {
        return Err(at.invalid(
            "to",
            format!("node {} already holds shard {}", quoted(to), quoted(id)),
        ));
    }
    let mut new = old.clone();
    new.status = ShardStatus::Migrating;
    new.migration = Some(Migration {
        from: from.to_string(),
        to: to.to_string(),
        percent: 0,
        started_at: st.timestamp,
    });
    let new = write(st, at, new)?;
    st.shard_event(EventType::ShardMove, Some(old), Some(new));
    Ok(())
}

/// The shard and its migration, or a conflict when none is in progress.
fn migrating(st: &Stage<'_>, at: &At<'_>, id: &str) -> Result<(ShardInfo, Migration), ApplyError> {
    let shard = existing(st, at, id)?;
    match (&shard.status, &shard.migration) {
        (ShardStatus::Migrating, Some(m)) => {
            let m = m.clone();
            Ok((shard, m))
        }
        _ => Err(at.conflict(format!(
            "shard {} has no migration in progress (it is {})",
            quoted(id),
            shard.status
        ))),
    }
}

pub(crate) fn migration_progress(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
    percent: u8,
) -> Result<(), ApplyError> {
    if percent > 100 {
        return Err(at.invalid("percent", format!("{percent} is not in 0-100")));
    }
    let (old, m) = migrating(st, at, id)?;
    if percent < m.percent {
        return Err(at.conflict(format!(
            "the migration of shard {} cannot go back from {}% to {percent}%",
            quoted(id),
            m.percent
        )));
    }
    let mut new = old.clone();
    new.migration = Some(Migration { percent, ..m });
    let new = write(st, at, new)?;
    st.shard_event(EventType::ShardMove, Some(old), Some(new));
    Ok(())
}

pub(crate) fn complete_migration(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
) -> Result<(), ApplyError> {
    let (old, m) = migrating(st, at, id)?;
    if m.percent < 100 {
        return Err(at.conflict(format!(
            "the migration of shard {} is at {}%; report 100% progress before completing it",
            quoted(id),
            m.percent
        )));
    }
    let mut new = old.clone();
    if new.primary_node == m.from {
        new.primary_node = m.to.clone();
    } else if let Some(pos) = new.replica_nodes.iter().position(|r| *r == m.from) {
        new.replica_nodes[pos] = m.to.clone();
    }
    new.status = ShardStatus::Active;
    new.migration = None;
    // Start checked the placement and updates are refused while migrating, but the
    // outcome is checked again rather than trusted.
    placement(st, at, &new.primary_node, &new.replica_nodes)
        .map_err(|e| at.conflict(format!("cannot complete the migration: {e}")))?;
    let new = write(st, at, new)?;
    st.shard_event(EventType::ShardMove, Some(old), Some(new));
    Ok(())
}

pub(crate) fn cancel_migration(
    st: &mut Stage<'_>,
    at: &At<'_>,
    id: &str,
) -> Result<(), ApplyError> {
    let (old, _) = migrating(st, at, id)?;
    let mut new = old.clone();
    new.status = ShardStatus::Active;
    new.migration = None;
    let new = write(st, at, new)?;
    st.shard_event(EventType::ShardMove, Some(old), Some(new));
    Ok(())
}

#[cfg(test)]
#[path = "shard_ops_test.rs"]
mod tests;

#[cfg(test)]
#[path = "migration_test.rs"]
mod migration_tests;
