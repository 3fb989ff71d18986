//! Node-level operations: register, remove, health, bootstrap.

use std::collections::BTreeMap;

use crate::testutil::*;
use crate::*;

#[test]
fn register_then_update_keeps_health_and_labels() {
    let mut st = TopologyState::new(100);
    let ev = ok_op(&mut st, reg("n1"));
    assert_eq!(event_types(&ev), [EventType::NodeJoin]);
    assert_eq!(ev[0].node_id.as_deref(), Some("n1"));
    assert!(ev[0].old_value.is_none());
    let n = st.node("n1").unwrap();
    assert_eq!(
        (n.health, n.last_seen, n.failure_count),
        (Health::Unknown, 0, 0)
    );

    let mut labels = BTreeMap::new();
    labels.insert("zone".to_string(), "a".to_string());
    ok_op(
        &mut st,
        Operation::RegisterNode {
            node_id: "n1".into(),
            address: "n1.local:7000".into(),
            labels: Some(labels.clone()),
        },
    );
    ok_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![HealthUpdate {
                node_id: "n1".into(),
                health: Health::Healthy,
                failure_count: 0,
                last_seen: 77,
                last_error: None,
            }],
        },
    );
    let ev = ok_op(
        &mut st,
        Operation::RegisterNode {
            node_id: "n1".into(),
            address: "10.0.0.9:7001".into(),
            labels: None,
        },
    );
    assert_eq!(event_types(&ev), [EventType::ConfigChange]);
    let old = ev[0]
        .old_value
        .as_ref()
        .and_then(EntityValue::as_node)
        .unwrap();
    assert_eq!(old.address, "n1.local:7000");
    let n = st.node("n1").unwrap();
    assert_eq!(n.address, "10.0.0.9:7001");
    assert_eq!(n.health, Health::Healthy, "an update keeps health");
    assert_eq!(n.last_seen, 77);
    assert_eq!(n.labels, labels, "labels: None keeps them");
    ok_op(
        &mut st,
        Operation::RegisterNode {
            node_id: "n1".into(),
            address: "10.0.0.9:7001".into(),
            labels: Some(BTreeMap::new()),
        },
    );
    assert!(st.node("n1").unwrap().labels.is_empty(), "Some replaces");
}

#[test]
fn reregistering_unchanged_is_valid_and_still_makes_a_version() {
    let mut st = TopologyState::new(100);
    ok_op(&mut st, reg("n1"));
    let hash = st.config_hash().to_string();
    let ev = ok_op(&mut st, reg("n1"));
    assert_eq!(event_types(&ev), [EventType::ConfigChange]);
    assert_eq!(st.version(), 2);
    assert_eq!(st.config_hash(), hash, "same content, same hash");
}

#[test]
fn register_rejections() {
    let mut st = topo(2, 2);
    let bad = |id: &str, addr: &str| Operation::RegisterNode {
        node_id: id.into(),
        address: addr.into(),
        labels: None,
    };
    let e = rejected_op(&mut st, bad("", "h:1"));
    assert_eq!(e.kind(), ApplyErrorKind::BadRequest);
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "nodeId"),
        "{e:?}"
    );
    let e = rejected_op(&mut st, bad("n/1", "h:1"));
    assert!(message(&e).starts_with("nodeId: "), "{e}");
    let e = rejected_op(&mut st, bad("n9", "h"));
    assert!(message(&e).starts_with("address: "), "{e}");
    let e = rejected_op(&mut st, bad("n9", "h:99999"));
    assert!(message(&e).contains("port"), "{e}");
    let mut labels = BTreeMap::new();
    labels.insert("bad key".to_string(), "v".to_string());
    let e = rejected_op(
        &mut st,
        Operation::RegisterNode {
            node_id: "n9".into(),
            address: "h:1".into(),
            labels: Some(labels),
        },
    );
    assert!(message(&e).starts_with("labels: "), "{e}");
    // In a batch, the field path names the operation.
    let e = rejected(&mut st, cmd(5, vec![reg("n8"), bad("n9", "nope")]));
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "ops[1].address"),
        "{e:?}"
    );
    assert!(message(&e).starts_with("ops[1].address: "), "{e}");
}

#[test]
fn remove_node() {
    let mut st = topo(2, 1);
    ok_op(&mut st, reg("n3"));
    let ev = ok_op(
        &mut st,
        Operation::RemoveNode {
            node_id: "n3".into(),
        },
    );
    assert_eq!(event_types(&ev), [EventType::NodeLeave]);
    assert!(ev[0].new_value.is_none());
    assert_eq!(ev[0].node().unwrap().node_id, "n3");
    assert!(st.node("n3").is_none());

    let e = rejected_op(
        &mut st,
        Operation::RemoveNode {
            node_id: "n3".into(),
        },
    );
    assert_eq!(e, ApplyError::not_found(EntityKind::Node, "n3"));
    assert_eq!(e.http_status(), 404);

    let e = rejected_op(
        &mut st,
        Operation::RemoveNode {
            node_id: "n1".into(),
        },
    );
    assert_eq!(e.kind(), ApplyErrorKind::Conflict);
    assert!(message(&e).contains("still holds 1 shard (s0)"), "{e}");

    // Moving the shard away first, in the same change set, makes it possible.
    ok(
        &mut st,
        cmd(
            5,
            vec![
                Operation::UpdateShard {
                    shard_id: "s0".into(),
                    primary_node: Some("n2".into()),
                    replica_nodes: Some(vec![]),
                    status: None,
                },
                Operation::RemoveNode {
                    node_id: "n1".into(),
                },
            ],
        ),
    );
    assert!(st.node("n1").is_none());
    // ... but not the other way round.
    let e = rejected(
        &mut st,
        cmd(
            5,
            vec![
                Operation::RemoveNode {
                    node_id: "n2".into(),
                },
                Operation::RemoveShard {
                    shard_id: "s0".into(),
                },
            ],
        ),
    );
    assert!(message(&e).starts_with("ops[0] (removeNode): "), "{e}");
}

#[test]
fn a_migration_target_cannot_be_removed() {
    let mut st = topo(2, 1);
    ok_op(&mut st, reg("n3"));
    ok_op(
        &mut st,
        Operation::StartMigration {
            shard_id: "s0".into(),
            from: "n2".into(),
            to: "n3".into(),
        },
    );
    let e = rejected_op(
        &mut st,
        Operation::RemoveNode {
            node_id: "n3".into(),
        },
    );
    assert!(
        message(&e).contains("target of the migration of shard \"s0\""),
        "{e}"
    );
}

fn health(id: &str, h: Health, failures: u32, seen: u64, err: Option<&str>) -> HealthUpdate {
    HealthUpdate {
        node_id: id.into(),
        health: h,
        failure_count: failures,
        last_seen: seen,
        last_error: err.map(Into::into),
    }
}

#[test]
fn set_health_reports_the_nodes_that_changed() {
    let mut st = topo(3, 3);
    let ev = ok_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![
                health("n1", Health::Healthy, 0, 10, None),
                health("n2", Health::Unknown, 0, 0, None), // unchanged
                health("n3", Health::Degraded, 1, 0, Some("timeout")),
            ],
        },
    );
    assert_eq!(
        event_types(&ev),
        [EventType::NodeHealthChange, EventType::NodeHealthChange]
    );
    assert_eq!(ev[0].node_id.as_deref(), Some("n1"));
    assert_eq!(ev[1].node_id.as_deref(), Some("n3"));
    let n3 = st.node("n3").unwrap();
    assert_eq!(n3.last_error.as_deref(), Some("timeout"));
    assert_eq!(n3.shards, ["s1", "s2"], "derived list untouched by health");
    // Nothing changed: every named node is reported, so the version has events.
    let ev = ok_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![health("n1", Health::Healthy, 0, 10, None)],
        },
    );
    assert_eq!(event_types(&ev), [EventType::NodeHealthChange]);
    // Clearing the error is a change.
    let ev = ok_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![
                health("n1", Health::Healthy, 0, 10, None),
                health("n3", Health::Degraded, 1, 0, None),
            ],
        },
    );
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].node_id.as_deref(), Some("n3"));
}

#[test]
fn set_health_rejections() {
    let mut st = topo(2, 1);
    let e = rejected_op(&mut st, Operation::SetHealth { updates: vec![] });
    assert!(message(&e).starts_with("updates: "), "{e}");
    let e = rejected_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![
                health("n1", Health::Healthy, 0, 1, None),
                health("n9", Health::Healthy, 0, 1, None),
            ],
        },
    );
    assert_eq!(e, ApplyError::not_found(EntityKind::Node, "n9"));
    let e = rejected_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![
                health("n1", Health::Healthy, 0, 1, None),
                health("n1", Health::Degraded, 1, 1, None),
            ],
        },
    );
    assert!(message(&e).starts_with("updates[1].nodeId: "), "{e}");
    let long = "x".repeat(MAX_ERROR_LEN + 1);
    let e = rejected_op(
        &mut st,
        Operation::SetHealth {
            updates: vec![health("n1", Health::Degraded, 1, 1, Some(&long))],
        },
    );
    assert!(message(&e).starts_with("updates[0].lastError: "), "{e}");
}

fn spec(ids: &[&str]) -> Vec<NodeSpec> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| NodeSpec {
            node_id: id.to_string(),
            address: format!("10.0.0.{i}:7000"),
        })
        .collect()
}

fn bootstrap(nodes: &[&str], shards: u32, rf: u32) -> Operation {
    Operation::Bootstrap {
        nodes: spec(nodes),
        shard_count: shards,
        replication_factor: rf,
    }
}

#[test]
fn bootstrap_places_equal_ranges_round_robin() {
    let mut st = TopologyState::new(1000);
    let ev = ok_op(&mut st, bootstrap(&["a", "b", "c"], 4, 2));
    let types = event_types(&ev);
    assert_eq!(types[..3], [EventType::NodeJoin; 3]);
    assert_eq!(types[3..], [EventType::ShardAdd; 4]);
    let shards: Vec<&ShardInfo> = st.shards_by_range().collect();
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(
        ids,
        ["shard-0000", "shard-0001", "shard-0002", "shard-0003"]
    );
    let starts: Vec<u64> = shards.iter().map(|s| s.key_range.start.0).collect();
    assert_eq!(starts, [0, 1 << 62, 1 << 63, 3 << 62]);
    assert_eq!(shards[3].key_range.end, None);
    assert_eq!(shards[0].key_range.end, Some(HashPoint(1 << 62)));
    let placement: Vec<(&str, Vec<String>)> = shards
        .iter()
        .map(|s| (s.primary_node.as_str(), s.replica_nodes.clone()))
        .collect();
    assert_eq!(
        placement,
        [
            ("a", strings(&["b"])),
            ("b", strings(&["c"])),
            ("c", strings(&["a"])),
            ("a", strings(&["b"])),
        ]
    );
    assert_eq!(
        st.node("a").unwrap().shards,
        ["shard-0000", "shard-0002", "shard-0003"]
    );
    assert!(shards.iter().all(|s| s.epoch == 1 && s.last_update == 2000));
}

#[test]
fn bootstrap_of_many_shards_uses_wider_ids() {
    let mut st = TopologyState::new(10);
    ok_op(&mut st, bootstrap(&["a"], 10_001, 1));
    assert!(st.shard("shard-00000").is_some());
    assert!(st.shard("shard-10000").unwrap().key_range.end.is_none());
    assert!(
        st.history().is_empty(),
        "a change set larger than the ring is not kept"
    );
    let mut st = TopologyState::new(10);
    ok_op(&mut st, bootstrap(&["a"], 1, 1));
    assert_eq!(st.shard("shard-0000").unwrap().key_range, KeyRange::full());
}

#[test]
fn bootstrap_rejections() {
    let mut empty = TopologyState::new(10);
    let cases = [
        (bootstrap(&[], 1, 1), "nodes: "),
        (bootstrap(&["a", "a"], 1, 1), "nodes[1].nodeId: "),
        (bootstrap(&["a", "b c"], 1, 1), "nodes[1].nodeId: "),
        (bootstrap(&["a"], 0, 1), "shardCount: "),
        (
            bootstrap(&["a"], MAX_BOOTSTRAP_SHARDS + 1, 1),
            "shardCount: ",
        ),
        (bootstrap(&["a"], 1, 0), "replicationFactor: "),
        (bootstrap(&["a", "b"], 1, 3), "replicationFactor: "),
    ];
    for (op, want) in cases {
        let e = rejected_op(&mut empty, op);
        assert!(message(&e).starts_with(want), "{want}: {e}");
        assert_eq!(e.http_status(), 400);
    }
    let e = rejected_op(
        &mut empty,
        Operation::Bootstrap {
            nodes: vec![NodeSpec {
                node_id: "a".into(),
                address: "nope".into(),
            }],
            shard_count: 1,
            replication_factor: 1,
        },
    );
    assert!(message(&e).starts_with("nodes[0].address: "), "{e}");
    let mut st = TopologyState::new(10);
    ok_op(&mut st, reg("x"));
    let e = rejected_op(&mut st, bootstrap(&["a"], 1, 1));
    assert_eq!(e.kind(), ApplyErrorKind::Conflict);
    assert!(message(&e).contains("empty topology"), "{e}");
}
