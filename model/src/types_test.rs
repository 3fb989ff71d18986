use super::*;
use crate::event::{EntityValue, EventType, TopologyEvent};
use serde_json::json;

fn shard() -> ShardInfo {
    ShardInfo {
        shard_id: "s1".into(),
        key_range: KeyRange::new(0, Some(1 << 63)),
        primary_node: "n1".into(),
        replica_nodes: vec!["n2".into()],
        status: ShardStatus::Active,
        epoch: 3,
        last_update: 1_700_000_000_000,
        migration: None,
    }
}

fn node() -> NodeStatus {
    let mut n = NodeStatus::new("n1", "10.0.0.1:7000");
    n.shards = vec!["s1".into()];
    n.labels.insert("zone".into(), "a".into());
    n
}

#[test]
fn shard_wire_form() {
    let mut s = shard();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({
            "shardId": "s1",
            "keyRange": {"start": "0000000000000000", "end": "8000000000000000"},
            "primaryNode": "n1",
            "replicaNodes": ["n2"],
            "status": "active",
            "epoch": 3,
            "lastUpdate": 1_700_000_000_000u64,
        })
    );
    s.status = ShardStatus::Migrating;
    s.migration = Some(Migration {
        from: "n2".into(),
        to: "n3".into(),
        percent: 40,
        started_at: 7,
    });
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["status"], "migrating");
    assert_eq!(
        v["migration"],
        json!({"from": "n2", "to": "n3", "percent": 40, "startedAt": 7})
    );
    let back: ShardInfo = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}

#[test]
fn enum_strings() {
    for s in ShardStatus::ALL {
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        assert_eq!(s.to_string(), s.as_str());
    }
    for h in Health::ALL {
        assert_eq!(serde_json::to_value(h).unwrap(), json!(h.as_str()));
        let back: Health = serde_json::from_value(json!(h.as_str())).unwrap();
        assert_eq!(back, h);
    }
    assert!(serde_json::from_value::<ShardStatus>(json!("Active")).is_err());
    assert!(serde_json::from_value::<Health>(json!("sick")).is_err());
}

#[test]
fn node_wire_form() {
    let mut n = node();
    assert_eq!(
        serde_json::to_value(&n).unwrap(),
        json!({
            "nodeId": "n1",
            "address": "10.0.0.1:7000",
            "health": "unknown",
            "lastSeen": 0,
            "failureCount": 0,
            "shards": ["s1"],
            "labels": {"zone": "a"},
        })
    );
    n.last_error = Some("connection refused".into());
    let v = serde_json::to_value(&n).unwrap();
    assert_eq!(v["lastError"], "connection refused");
    assert_eq!(serde_json::from_value::<NodeStatus>(v).unwrap(), n);
    // Derived and optional fields may be left out.
    let minimal: NodeStatus = serde_json::from_value(json!({
        "nodeId": "n1", "address": "h:1", "health": "healthy", "lastSeen": 5, "failureCount": 0
    }))
    .unwrap();
    assert!(minimal.shards.is_empty() && minimal.labels.is_empty());
}

fn snapshot() -> TopologySnapshot {
    let mut shards = ShardMap::new();
    shards.insert("s1".into(), shard());
    let mut nodes = NodeMap::new();
    nodes.insert("n1".into(), node());
    TopologySnapshot {
        version: 9,
        timestamp: 10,
        shard_map: shards,
        node_status: nodes,
        config_hash: "0123456789abcdef".into(),
        hash_function: "sha256-be64".into(),
    }
}

#[test]
fn snapshot_round_trips_in_json_and_postcard() {
    let s = snapshot();
    let v = serde_json::to_value(&s).unwrap();
    for k in [
        "version",
        "timestamp",
        "shardMap",
        "nodeStatus",
        "configHash",
        "hashFunction",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    assert_eq!(v["shardMap"]["s1"]["shardId"], "s1");
    assert_eq!(serde_json::from_value::<TopologySnapshot>(v).unwrap(), s);
    let bytes = postcard::to_stdvec(&s).unwrap();
    assert_eq!(postcard::from_bytes::<TopologySnapshot>(&bytes).unwrap(), s);
}

#[test]
fn events_round_trip_with_typed_values() {
    let e = TopologyEvent {
        event_type: EventType::LeaderChange,
        version: 4,
        timestamp: 5,
        node_id: None,
        shard_id: Some("s1".into()),
        old_value: Some(shard().into()),
        new_value: Some(shard().into()),
    };
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["type"], "LeaderChange");
    assert!(v.get("nodeId").is_none(), "None fields are left out");
    assert_eq!(v["newValue"]["shardId"], "s1");
    assert_eq!(serde_json::from_value::<TopologyEvent>(v).unwrap(), e);
    let n = TopologyEvent {
        event_type: EventType::NodeLeave,
        version: 4,
        timestamp: 5,
        node_id: Some("n1".into()),
        shard_id: None,
        old_value: Some(node().into()),
        new_value: None,
    };
    let v = serde_json::to_value(&n).unwrap();
    assert!(v.get("newValue").is_none());
    let back: TopologyEvent = serde_json::from_value(v).unwrap();
    assert!(matches!(back.old_value, Some(EntityValue::Node(_))));
    assert_eq!(back, n);
    for e in [e, n] {
        let bytes = postcard::to_stdvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<TopologyEvent>(&bytes).unwrap(), e);
    }
}

#[test]
fn event_type_names() {
    for t in EventType::ALL {
        assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        assert_eq!(t.as_str().to_lowercase().parse::<EventType>().unwrap(), t);
        assert_eq!(t.to_string(), t.as_str());
    }
    let e = "Bogus".parse::<EventType>().unwrap_err();
    assert!(e.to_string().contains("\"Bogus\""));
    assert!("".parse::<EventType>().is_err());
}

#[test]
fn no_floats_in_any_wire_form() {
    fn walk(v: &serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => assert!(n.is_u64(), "{n}"),
            serde_json::Value::Array(a) => a.iter().for_each(walk),
            serde_json::Value::Object(o) => o.values().for_each(walk),
            _ => {}
        }
    }
    walk(&serde_json::to_value(snapshot()).unwrap());
}
