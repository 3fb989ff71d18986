//! Property tests of the wire forms: every type round-trips through JSON (the HTTP
//! and SSE contract) and postcard (the server's Raft log and snapshots), and hash
//! points parse exactly their canonical spelling.

use std::collections::BTreeMap;

use concord_model::*;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,12}"
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, quotes and controls included.
    any::<String>()
}

fn range() -> impl Strategy<Value = KeyRange> {
    (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(s, e)| KeyRange::new(s, e))
}

fn status() -> impl Strategy<Value = ShardStatus> {
    proptest::sample::select(ShardStatus::ALL.to_vec())
}

fn health() -> impl Strategy<Value = Health> {
    proptest::sample::select(Health::ALL.to_vec())
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(id(), text(), 0..3)
}

fn shard() -> impl Strategy<Value = ShardInfo> {
    (
        (id(), range(), id(), proptest::collection::vec(id(), 0..3)),
        (status(), any::<u64>(), any::<u64>()),
        proptest::option::of((id(), id(), any::<u8>(), any::<u64>())),
    )
        .prop_map(
            |(
                (shard_id, key_range, primary_node, replica_nodes),
                (status, epoch, last_update),
                m,
            )| {
                ShardInfo {
                    shard_id,
                    key_range,
                    primary_node,
                    replica_nodes,
                    status,
                    epoch,
                    last_update,
                    migration: m.map(|(from, to, percent, started_at)| Migration {
                        from,
                        to,
                        percent,
                        started_at,
                    }),
                }
            },
        )
}

fn node() -> impl Strategy<Value = NodeStatus> {
    (
        (id(), text(), health(), any::<u64>(), any::<u32>()),
        (
            proptest::option::of(text()),
            proptest::collection::vec(id(), 0..3),
            labels(),
        ),
    )
        .prop_map(
            |(
                (node_id, address, health, last_seen, failure_count),
                (last_error, shards, labels),
            )| {
                NodeStatus {
                    node_id,
                    address,
                    health,
                    last_seen,
                    failure_count,
                    last_error,
                    shards,
                    labels,
                }
            },
        )
}

fn value() -> impl Strategy<Value = EntityValue> {
    prop_oneof![
        shard().prop_map(EntityValue::from),
        node().prop_map(EntityValue::from)
    ]
}

fn event() -> impl Strategy<Value = TopologyEvent> {
    (
        proptest::sample::select(EventType::ALL.to_vec()),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(id()),
        proptest::option::of(id()),
        proptest::option::of(value()),
        proptest::option::of(value()),
    )
        .prop_map(
            |(event_type, version, timestamp, node_id, shard_id, old_value, new_value)| {
                TopologyEvent {
                    event_type,
                    version,
                    timestamp,
                    node_id,
                    shard_id,
                    old_value,
                    new_value,
                }
            },
        )
}

fn operation() -> impl Strategy<Value = Operation> {
    let o_id = || proptest::option::of(id());
    prop_oneof![
        (id(), text(), proptest::option::of(labels())).prop_map(|(node_id, address, labels)| {
            Operation::RegisterNode {
                node_id,
                address,
                labels,
            }
        }),
        id().prop_map(|node_id| Operation::RemoveNode { node_id }),
        (id(), range(), id(), proptest::collection::vec(id(), 0..3)).prop_map(
            |(shard_id, key_range, primary_node, replica_nodes)| Operation::CreateShard {
                shard_id,
                key_range,
                primary_node,
                replica_nodes
            }
        ),
        (
            id(),
            o_id(),
            proptest::option::of(proptest::collection::vec(id(), 0..3)),
            proptest::option::of(status())
        )
            .prop_map(|(shard_id, primary_node, replica_nodes, status)| {
                Operation::UpdateShard {
                    shard_id,
                    primary_node,
                    replica_nodes,
                    status,
                }
            }),
        id().prop_map(|shard_id| Operation::RemoveShard { shard_id }),
        (
            id(),
            proptest::option::of(any::<u64>().prop_map(HashPoint)),
            o_id()
        )
            .prop_map(|(shard_id, at, new_shard_id)| Operation::SplitShard {
                shard_id,
                at,
                new_shard_id
            }),
        (id(), id()).prop_map(|(shard_id, with)| Operation::MergeShards { shard_id, with }),
        (id(), id(), id()).prop_map(|(shard_id, from, to)| Operation::StartMigration {
            shard_id,
            from,
            to
        }),
        (id(), any::<u8>())
            .prop_map(|(shard_id, percent)| Operation::MigrationProgress { shard_id, percent }),
        id().prop_map(|shard_id| Operation::CompleteMigration { shard_id }),
        id().prop_map(|shard_id| Operation::CancelMigration { shard_id }),
        (
            proptest::collection::vec((id(), text()), 0..3),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(nodes, shard_count, replication_factor)| Operation::Bootstrap {
                    nodes: nodes
                        .into_iter()
                        .map(|(node_id, address)| NodeSpec { node_id, address })
                        .collect(),
                    shard_count,
                    replication_factor,
                }
            ),
        proptest::collection::vec(
            (
                id(),
                health(),
                any::<u32>(),
                any::<u64>(),
                proptest::option::of(text())
            ),
            0..3
        )
        .prop_map(|u| Operation::SetHealth {
            updates: u
                .into_iter()
                .map(
                    |(node_id, health, failure_count, last_seen, last_error)| HealthUpdate {
                        node_id,
                        health,
                        failure_count,
                        last_seen,
                        last_error,
                    }
                )
                .collect(),
        }),
    ]
}

fn round_trip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(&back, v);
    let bytes = postcard::to_stdvec(v).unwrap();
    let back: T = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(&back, v);
}

proptest! {
    #[test]
    fn shards_nodes_and_ranges_round_trip(s in shard(), n in node(), r in range()) {
        round_trip(&s);
        round_trip(&n);
        round_trip(&r);
    }

    #[test]
    fn events_round_trip(e in event()) {
        round_trip(&e);
        round_trip(&vec![e]);
    }

    #[test]
    fn commands_round_trip(ops in proptest::collection::vec(operation(), 0..4), ts in any::<u64>(), cas in proptest::option::of(any::<u64>())) {
        for op in &ops {
            let v = serde_json::to_value(op).unwrap();
            prop_assert_eq!(v["op"].as_str(), Some(op.name()));
            round_trip(op);
        }
        round_trip(&Command { timestamp_ms: ts, expected_version: cas, ops });
    }

    #[test]
    fn snapshots_round_trip(shards in proptest::collection::vec(shard(), 0..4), nodes in proptest::collection::vec(node(), 0..4), v in any::<u64>()) {
        let snapshot = TopologySnapshot {
            version: v,
            timestamp: v / 2,
            shard_map: shards.into_iter().map(|s| (s.shard_id.clone(), s)).collect(),
            node_status: nodes.into_iter().map(|n| (n.node_id.clone(), n)).collect(),
            config_hash: "0123456789abcdef".into(),
            hash_function: HASH_FUNCTION.into(),
        };
        round_trip(&snapshot);
    }

    #[test]
    fn hash_points_have_one_spelling(v in any::<u64>()) {
        let hex = HashPoint(v).to_string();
        prop_assert_eq!(hex.len(), 16);
        prop_assert_eq!(HashPoint::parse_hex(&hex).unwrap(), HashPoint(v));
        prop_assert!(HashPoint::parse_hex(&hex.to_uppercase()).is_err() || !hex.bytes().any(|b| b.is_ascii_alphabetic()));
        let longer = format!("0{hex}");
        prop_assert!(HashPoint::parse_hex(&longer).is_err());
        prop_assert!(HashPoint::parse_hex(&hex[1..]).is_err());
    }

    #[test]
    fn only_16_lower_hex_digits_parse(s in "[0-9a-fA-Fg-z ]{0,18}") {
        let valid = s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        prop_assert_eq!(HashPoint::parse_hex(&s).is_ok(), valid);
    }

    #[test]
    fn key_hash_routes_like_the_first_8_bytes(key in proptest::collection::vec(any::<u8>(), 0..64)) {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&key);
        prop_assert_eq!(key_hash(&key), u64::from_be_bytes(digest[..8].try_into().unwrap()));
    }
}
