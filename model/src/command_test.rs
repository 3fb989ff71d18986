use super::*;
use serde_json::json;

fn all_ops() -> Vec<Operation> {
    let mut labels = BTreeMap::new();
    labels.insert("zone".to_string(), "a".to_string());
    vec![
        Operation::RegisterNode {
            node_id: "n1".into(),
            address: "h:1".into(),
            labels: Some(labels),
        },
        Operation::RemoveNode {
            node_id: "n1".into(),
        },
        Operation::CreateShard {
            shard_id: "s1".into(),
            key_range: KeyRange::new(0, None),
            primary_node: "n1".into(),
            replica_nodes: vec!["n2".into()],
        },
        Operation::UpdateShard {
            shard_id: "s1".into(),
            primary_node: Some("n2".into()),
            replica_nodes: None,
            status: Some(ShardStatus::Readonly),
        },
        Operation::RemoveShard {
            shard_id: "s1".into(),
        },
        Operation::SplitShard {
            shard_id: "s1".into(),
            at: Some(HashPoint(1 << 62)),
            new_shard_id: Some("s2".into()),
        },
        Operation::MergeShards {
            shard_id: "s1".into(),
            with: "s2".into(),
        },
        Operation::StartMigration {
            shard_id: "s1".into(),
            from: "n1".into(),
            to: "n3".into(),
        },
        Operation::MigrationProgress {
            shard_id: "s1".into(),
            percent: 50,
        },
        Operation::CompleteMigration {
            shard_id: "s1".into(),
        },
        Operation::CancelMigration {
            shard_id: "s1".into(),
        },
        Operation::Bootstrap {
            nodes: vec![NodeSpec {
                node_id: "n1".into(),
                address: "h:1".into(),
            }],
            shard_count: 4,
            replication_factor: 1,
        },
        Operation::SetHealth {
            updates: vec![HealthUpdate {
                node_id: "n1".into(),
                health: Health::Degraded,
                failure_count: 1,
                last_seen: 9,
                last_error: Some("timeout".into()),
            }],
        },
    ]
}

#[test]
fn every_operation_round_trips_and_is_tagged_by_name() {
    for op in all_ops() {
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(v["op"], op.name(), "{v}");
        assert_eq!(serde_json::from_value::<Operation>(v).unwrap(), op);
    }
    let c = Command::new(5, all_ops()).with_expected_version(7);
    let text = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), c);
    // The Raft log stores commands with postcard.
    let bytes = postcard::to_stdvec(&c).unwrap();
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), c);
}

#[test]
fn field_names_are_camel_case() {
    let v = serde_json::to_value(Command::new(5, all_ops()).with_expected_version(7)).unwrap();
    assert_eq!(v["timestampMs"], 5);
    assert_eq!(v["expectedVersion"], 7);
    assert_eq!(v["ops"][2]["keyRange"]["end"], "");
    assert_eq!(v["ops"][2]["primaryNode"], "n1");
    assert_eq!(v["ops"][5]["newShardId"], "s2");
    assert_eq!(v["ops"][5]["at"], "4000000000000000");
    assert_eq!(v["ops"][11]["shardCount"], 4);
    assert_eq!(v["ops"][11]["replicationFactor"], 1);
    assert_eq!(v["ops"][11]["nodes"][0]["nodeId"], "n1");
    assert_eq!(v["ops"][12]["updates"][0]["failureCount"], 1);
    assert_eq!(v["ops"][12]["updates"][0]["lastSeen"], 9);
}

#[test]
fn optional_fields_may_be_left_out() {
    let op: Operation =
        serde_json::from_value(json!({"op": "registerNode", "nodeId": "n1", "address": "h:1"}))
            .unwrap();
    assert!(matches!(op, Operation::RegisterNode { labels: None, .. }));
    let op: Operation = serde_json::from_value(json!({
        "op": "createShard", "shardId": "s", "primaryNode": "n1",
        "keyRange": {"start": "0000000000000000", "end": ""}
    }))
    .unwrap();
    assert!(
        matches!(op, Operation::CreateShard { ref replica_nodes, .. } if replica_nodes.is_empty())
    );
    let op: Operation =
        serde_json::from_value(json!({"op": "splitShard", "shardId": "s"})).unwrap();
    assert!(matches!(
        op,
        Operation::SplitShard {
            at: None,
            new_shard_id: None,
            ..
        }
    ));
    let op: Operation =
        serde_json::from_value(json!({"op": "updateShard", "shardId": "s", "status": "offline"}))
            .unwrap();
    assert!(matches!(
        op,
        Operation::UpdateShard {
            status: Some(ShardStatus::Offline),
            primary_node: None,
            ..
        }
    ));
    let c: Command = serde_json::from_value(json!({"timestampMs": 1, "ops": []})).unwrap();
    assert_eq!(c.expected_version, None);
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    let cases = [
        json!({"op": "removeNode", "nodeId": "n1", "force": true}),
        json!({"op": "registerNode", "nodeId": "n1", "address": "h:1", "lables": {}}),
        json!({"op": "createShard", "shardId": "s", "primaryNode": "n1", "replicaNodes": [],
               "keyRange": {"start": "0000000000000000", "end": "", "size": 1}}),
        json!({"op": "bootstrap", "shardCount": 1, "replicationFactor": 1,
               "nodes": [{"nodeId": "n1", "address": "h:1", "zone": "a"}]}),
        json!({"op": "setHealth", "updates": [{"nodeId": "n1", "health": "healthy",
               "failureCount": 0, "lastSeen": 0, "latency": 3}]}),
        // snake_case is not the contract.
        json!({"op": "removeNode", "node_id": "n1"}),
    ];
    for v in cases {
        let e = serde_json::from_value::<Operation>(v.clone()).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{v}: {e}");
    }
    let e = serde_json::from_value::<Command>(json!({"timestampMs": 1, "ops": [], "dryRun": true}))
        .unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}

#[test]
fn malformed_operations_are_refused_with_a_reason() {
    let cases = [
        (json!({"nodeId": "n1"}), "op"),
        (json!({"op": "dropAll"}), "unknown variant"),
        (json!({"op": "removeNode"}), "nodeId"),
        (
            json!({"op": "migrationProgress", "shardId": "s", "percent": 300}),
            "300",
        ),
        (
            json!({"op": "migrationProgress", "shardId": "s", "percent": 5.5}),
            "5.5",
        ),
        (
            json!({"op": "splitShard", "shardId": "s", "at": "8000"}),
            "16",
        ),
        (
            json!({"op": "createShard", "shardId": "s", "primaryNode": "n1",
                "keyRange": {"start": "000000000000000G", "end": ""}}),
            "invalid character 'G'",
        ),
        (
            json!({"op": "createShard", "shardId": "s", "primaryNode": "n1",
                "keyRange": {"start": "00000000000000AB", "end": ""}}),
            "upper-case",
        ),
        (
            json!({"op": "updateShard", "shardId": "s", "status": "broken"}),
            "broken",
        ),
    ];
    for (v, want) in cases {
        let e = serde_json::from_value::<Operation>(v.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{v}: {e}");
    }
}
