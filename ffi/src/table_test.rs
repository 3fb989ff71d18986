//! The flat routing table agrees with the model's own lookup everywhere, borders
//! included, and carries each shard's placement and each node's health.

use concord_model::{key_hash, Health, TopologyState};

use std::sync::Arc;

use super::*;
use crate::testkit::{bootstrap_state, toggle_shard};

fn assert_same_owner(state: &TopologyState, table: &RoutingTable, h: u64) {
    let want = state.shard_for_hash(h).expect("the shards cover the space");
    let got = table.route_hash(h).unwrap();
    assert_eq!(got.shard_id(), want.shard_id, "hash {h:016x}");
    assert_eq!(got.epoch(), want.epoch);
    assert_eq!(got.status(), want.status);
    assert_eq!(got.key_range(), want.key_range);
    assert_eq!(got.primary().node_id, want.primary_node);
    let replicas: Vec<&str> = got.replicas().map(|n| n.node_id).collect();
    assert_eq!(replicas, want.replica_nodes);
    assert_eq!(got.replica_count(), want.replica_nodes.len());
    let primary = state.node(&want.primary_node).unwrap();
    assert_eq!(got.primary().address, primary.address);
    assert_eq!(got.primary().health, primary.health);
}

#[test]
fn every_border_and_a_sweep_route_like_the_model() {
    // 64 shards: many directory buckets per shard; 5000: several shards per bucket.
    for shards in [1, 64, 5000] {
        check_borders_and_sweep(shards);
    }
}

fn check_borders_and_sweep(shard_count: u32) {
    let state = bootstrap_state(6, shard_count);
    let table = RoutingTable::build(&state);
    assert_eq!(table.shard_count(), shard_count as usize);
    assert_eq!(table.version(), state.version());
    let mut probes = vec![0, 1, u64::MAX, u64::MAX - 1];
    for s in state.shards() {
        let start = s.key_range.start.0;
        probes.extend([start, start.wrapping_sub(1), start.saturating_add(1)]);
    }
    // A deterministic sweep of the space (an LCG).
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..10_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        probes.push(x);
    }
    for h in probes {
        assert_same_owner(&state, &table, h);
    }
}

#[test]
fn keys_hash_with_sha256_be64_and_empty_keys_are_refused() {
    let state = bootstrap_state(6, 64);
    let table = RoutingTable::build(&state);
    for key in [&b"user:42"[..], b"a", b"\x00\xff binary"] {
        let r = table.route(key).unwrap();
        assert_eq!(r.key_hash(), key_hash(key));
        assert_eq!(r.shard_id(), state.shard_for_key(key).unwrap().shard_id);
    }
    assert_eq!(table.route(b"").unwrap_err(), RouteError::EmptyKey);
}

#[test]
fn an_empty_topology_has_no_owner() {
    let table = RoutingTable::build(&TopologyState::new(0));
    assert_eq!(table.route_hash(7).unwrap_err(), RouteError::NoShards);
    assert_eq!(table.shard_count(), 0);
}

#[test]
fn a_new_version_shows_the_new_epoch_and_health() {
    let mut state = bootstrap_state(4, 8);
    let before = RoutingTable::build(&state);
    let id = state.shards().next().unwrap().shard_id.clone();
    toggle_shard(&mut state, &id);
    let after = RoutingTable::build(&state);
    assert_eq!(after.version(), before.version() + 1);
    assert!(after.epoch_of(&id).unwrap() > before.epoch_of(&id).unwrap());
    assert_eq!(after.epoch_of("no-such-shard"), None);
    let h = state.shard(&id).unwrap().key_range.start.0;
    assert_eq!(
        after.route_hash(h).unwrap().epoch(),
        after.epoch_of(&id).unwrap()
    );
    assert!(Health::ALL.contains(&after.route_hash(h).unwrap().primary().health));
}

#[test]
fn health_only_changes_patch_the_nodes_and_share_the_layout() {
    use crate::testkit::set_health;
    let mut state = bootstrap_state(6, 64);
    let before = RoutingTable::build(&state);
    let node = state.nodes().nth(2).unwrap().node_id.clone();
    let events = set_health(&mut state, &node, Health::Unhealthy);
    let after = before.next(&state, &events);
    assert!(Arc::ptr_eq(&before.layout, &after.layout), "layout shared");
    assert_eq!(after.version(), state.version());
    let rebuilt = RoutingTable::build(&state);
    for s in state.shards() {
        let h = s.key_range.start.0;
        let (a, b) = (after.route_hash(h).unwrap(), rebuilt.route_hash(h).unwrap());
        assert_eq!(a.primary(), b.primary());
        assert_eq!(
            a.replicas().collect::<Vec<_>>(),
            b.replicas().collect::<Vec<_>>()
        );
    }
    assert!((0..64)
        .map(|i| after.route_hash(i << 58).unwrap())
        .flat_map(|r| std::iter::once(r.primary())
            .chain(r.replicas())
            .collect::<Vec<_>>())
        .any(|n| n.node_id == node && n.health == Health::Unhealthy));
    // A shard change is not health-only: a full build, a new layout.
    let id = state.shards().next().unwrap().shard_id.clone();
    let events = toggle_shard(&mut state, &id);
    let next = after.next(&state, &events);
    assert!(!Arc::ptr_eq(&after.layout, &next.layout));
    assert!(next.epoch_of(&id).unwrap() > after.epoch_of(&id).unwrap());
}
