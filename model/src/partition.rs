//! The range index (range start -> shard id) and the partition invariant: the shard
//! ranges are either empty or cover the 64-bit space exactly, with no gap and no
//! overlap. A full check serves snapshots; an incremental check (only around the
//! points a change set touched) serves each change set in O(k log n).

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::hash::HashPoint;
use crate::types::{KeyRange, ShardInfo, ShardMap};
use crate::validate::quoted;

/// Range start -> shard id. While the invariant holds, starts are unique.
pub(crate) type RangeIndex = imbl::OrdMap<u64, String>;

/// A violation of the partition invariant, with the shards involved.
#[derive(Debug)]
pub(crate) struct PartitionError {
    pub shards: Vec<String>,
    pub message: String,
}

impl PartitionError {
    fn new(shards: &[&ShardInfo], message: String) -> PartitionError {
        PartitionError {
            shards: shards.iter().map(|s| s.shard_id.clone()).collect(),
            message: format!("shard ranges must cover the hash space exactly: {message}"),
        }
    }
}

fn lookup<'a>(shards: &'a ShardMap, id: &str) -> &'a ShardInfo {
    shards
        .get(id)
        .expect("the range index only names existing shards")
}

/// `a` and `b` are consecutive in start order: `a` must end exactly where `b` starts.
fn check_pair(a: &ShardInfo, b: &ShardInfo) -> Result<(), PartitionError> {
    let (ra, rb) = (&a.key_range, &b.key_range);
    if ra.end == Some(rb.start) {
        return Ok(());
    }
    let gap_end = u128::from(rb.start.0);
    if ra.end_u128() < gap_end {
        let gap = KeyRange::new(ra.end_u128() as u64, Some(rb.start.0));
        return Err(PartitionError::new(
            &[a, b],
            format!(
                "gap {gap} between shard {} {ra} and shard {} {rb}",
                quoted(&a.shard_id),
                quoted(&b.shard_id)
            ),
        ));
    }
    let overlap_end = ra.end_u128().min(rb.end_u128());
    let overlap = KeyRange {
        start: rb.start,
        end: (overlap_end < 1 << 64).then_some(HashPoint(overlap_end as u64)),
    };
    Err(PartitionError::new(
        &[a, b],
        format!(
            "shard {} {ra} and shard {} {rb} overlap on {overlap}",
            quoted(&a.shard_id),
            quoted(&b.shard_id)
        ),
    ))
}

/// The first shard starts at 0 and the last one ends at the end of the space.
fn check_ends(index: &RangeIndex, shards: &ShardMap) -> Result<(), PartitionError> {
    let (Some((_, first)), Some((_, last))) = (index.get_min(), index.get_max()) else {
        return Ok(());
    };
    let first = lookup(shards, first);
    if first.key_range.start.0 != 0 {
        let gap = KeyRange::new(0, Some(first.key_range.start.0));
        return Err(PartitionError::new(
            &[first],
            format!(
                "gap {gap} before the first shard {} {}",
                quoted(&first.shard_id),
                first.key_range
            ),
        ));
    }
    let last = lookup(shards, last);
    if let Some(end) = last.key_range.end {
        let gap = KeyRange {
            start: end,
            end: None,
        };
        return Err(PartitionError::new(
            &[last],
            format!(
                "gap {gap} after the last shard {} {}",
                quoted(&last.shard_id),
                last.key_range
            ),
        ));
    }
    Ok(())
}

fn successor(index: &RangeIndex, start: u64) -> Option<&String> {
    index
        .range((Bound::Excluded(start), Bound::Unbounded))
        .next()
        .map(|(_, id)| id)
}

/// Checks every consecutive pair: O(n). For snapshots.
pub(crate) fn check_full(index: &RangeIndex, shards: &ShardMap) -> Result<(), PartitionError> {
    check_ends(index, shards)?;
    let mut prev: Option<&ShardInfo> = None;
    for id in index.values() {
        let s = lookup(shards, id);
        if let Some(p) = prev {
            check_pair(p, s)?;
        }
        prev = Some(s);
    }
    Ok(())
}

/// Checks the pairs around `points` (starts of every range a change set added or
/// removed). Sufficient when the index was a partition before the change set: a pair
/// of unchanged neighbours can only break if a range between them went away, and that
/// range's start is one of the points.
pub(crate) fn check_around(
    index: &RangeIndex,
    shards: &ShardMap,
    points: &BTreeSet<u64>,
) -> Result<(), PartitionError> {
    check_ends(index, shards)?;
    for &p in points {
        // The entries at or around p, left to right, each with both neighbours: an
        // overlap with the left neighbour is reported before a gap on the right.
        let near = [index.get_prev(&p), index.get_next(&p)];
        let mut last = None;
        for (&start, id) in near.into_iter().flatten() {
            if last == Some(start) {
                continue;
            }
            last = Some(start);
            let s = lookup(shards, id);
            if let Some((_, prev)) = index.range(..start).next_back() {
                check_pair(lookup(shards, prev), s)?;
            }
            if let Some(next) = successor(index, start) {
                check_pair(s, lookup(shards, next))?;
            }
        }
    }
    Ok(())
}

/// Builds the index of `shards` from scratch; two shards starting at the same point
/// are an overlap.
pub(crate) fn build_index(shards: &ShardMap) -> Result<RangeIndex, PartitionError> {
    let mut index = RangeIndex::new();
    for s in shards.values() {
        if let Some(other) = index.insert(s.key_range.start.0, s.shard_id.clone()) {
            return Err(same_start(lookup(shards, &other), s));
        }
    }
    Ok(index)
}

pub(crate) fn same_start(a: &ShardInfo, b: &ShardInfo) -> PartitionError {
    PartitionError::new(
        &[a, b],
        format!(
            "shard {} {} and shard {} {} overlap: both start at {}",
            quoted(&a.shard_id),
            a.key_range,
            quoted(&b.shard_id),
            b.key_range,
            a.key_range.start
        ),
    )
}

pub(crate) fn empty_range(s: &ShardInfo) -> PartitionError {
    PartitionError::new(
        &[s],
        format!(
            "shard {} has the empty range {}",
            quoted(&s.shard_id),
            s.key_range
        ),
    )
}
