//! Shared by the property tests and the fuzz targets: generators of plausible
//! operations (resolved against the current state so that many are valid and many are
//! not; a proptest strategy, and a bolero `TypeGenerator` derive with the same bounds),
//! and independent checks of the state machine's invariants through the public API only.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bolero::{produce_with, TypeGenerator};
use concord_model::*;
use proptest::prelude::*;

pub const NODES: u8 = 6;

pub fn node(i: u8) -> String {
    format!("n{}", i % NODES)
}

/// An operation with indices instead of ids; `resolve` picks real ids from the state.
/// The `generator` bounds keep the fuzzer's values in the ranges [`aop`] draws from
/// where `resolve` indexes a table or a value would make a command slow.
#[derive(Clone, Debug, TypeGenerator)]
pub enum AOp {
    Register {
        node: u8,
        port: u16,
        label: Option<u8>,
    },
    RemoveNode {
        node: u8,
    },
    Create {
        id: u8,
        start: u64,
        end: Option<u64>,
        primary: u8,
        #[generator(produce_with::<Vec<u8>>().len(0usize..3))]
        replicas: Vec<u8>,
    },
    /// Replace a shard by two new ones at `at` (valid when `at` is inside).
    Reshape {
        pick: usize,
        at: u64,
        primary: u8,
    },
    Update {
        pick: usize,
        primary: Option<u8>,
        #[generator(produce_with::<Option<Vec<u8>>>().value(produce_with::<Vec<u8>>().len(0usize..3)))]
        replicas: Option<Vec<u8>>,
        #[generator(produce_with::<Option<u8>>().value(0u8..4))]
        status: Option<u8>,
    },
    RemoveShard {
        pick: usize,
    },
    Split {
        pick: usize,
        at: Option<u64>,
        new_id: Option<u8>,
    },
    Merge {
        pick: usize,
        with_next: bool,
    },
    Start {
        pick: usize,
        from: u8,
        to: u8,
    },
    Progress {
        pick: usize,
        percent: u8,
    },
    Complete {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Bootstrap {
        #[generator(0u8..5)]
        nodes: u8,
        #[generator(0u16..12)]
        shards: u16,
        #[generator(0u8..4)]
        rf: u8,
    },
    Health {
        #[generator(produce_with::<Vec<(u8, u8, u32, u64, bool)>>().len(0usize..3))]
        updates: Vec<(u8, u8, u32, u64, bool)>,
    },
}

fn any_point() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(1u64 << 63),
        any::<u64>(),
        (0u64..16).prop_map(|k| k << 60),
    ]
}

pub fn aop() -> impl Strategy<Value = AOp> {
    let n = 0..NODES + 1; // NODES itself names an unregistered node
    prop_oneof![
        4 => (n.clone(), prop_oneof![1 => Just(0u16), 9 => 1u16..3], proptest::option::of(0u8..3))
            .prop_map(|(node, port, label)| AOp::Register { node, port, label }),
        1 => n.clone().prop_map(|node| AOp::RemoveNode { node }),
        1 => (0u8..4, any_point(), proptest::option::of(any_point()), n.clone(),
              proptest::collection::vec(n.clone(), 0..3))
            .prop_map(|(id, start, end, primary, replicas)| AOp::Create { id, start, end, primary, replicas }),
        2 => (any::<usize>(), any_point(), n.clone())
            .prop_map(|(pick, at, primary)| AOp::Reshape { pick, at, primary }),
        2 => (any::<usize>(), proptest::option::of(n.clone()),
              proptest::option::of(proptest::collection::vec(n.clone(), 0..3)),
              proptest::option::of(0u8..4))
            .prop_map(|(pick, primary, replicas, status)| AOp::Update { pick, primary, replicas, status }),
        1 => any::<usize>().prop_map(|pick| AOp::RemoveShard { pick }),
        2 => (any::<usize>(), proptest::option::of(any_point()), proptest::option::of(0u8..3))
            .prop_map(|(pick, at, new_id)| AOp::Split { pick, at, new_id }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, with_next)| AOp::Merge { pick, with_next }),
        2 => (any::<usize>(), 0u8..3, n.clone()).prop_map(|(pick, from, to)| AOp::Start { pick, from, to }),
        2 => (any::<usize>(), prop_oneof![0u8..=100, Just(100u8), Just(101u8)])
            .prop_map(|(pick, percent)| AOp::Progress { pick, percent }),
        1 => any::<usize>().prop_map(|pick| AOp::Complete { pick }),
        1 => any::<usize>().prop_map(|pick| AOp::Cancel { pick }),
        1 => (0u8..5, 0u16..12, 0u8..4).prop_map(|(nodes, shards, rf)| AOp::Bootstrap { nodes, shards, rf }),
        2 => proptest::collection::vec((n, 0u8..4, 0u32..4, 0u64..3, any::<bool>()), 0..3)
            .prop_map(|updates| AOp::Health { updates }),
    ]
}

/// A command: mostly one operation, sometimes a batch, rarely none; each op resolved
/// "smartly" (toward validity) or not; maybe a compare-and-set version (`Some(true)`:
/// the right one, `Some(false)`: a wrong one).
pub fn acommand() -> impl Strategy<Value = (Vec<(AOp, bool)>, Option<bool>, u64)> {
    let op = || (aop(), proptest::bool::weighted(0.8));
    let ops = prop_oneof![
        1 => Just(vec![]),
        12 => proptest::collection::vec(op(), 1..2),
        5 => proptest::collection::vec(op(), 2..3),
        2 => proptest::collection::vec(op(), 3..5),
    ];
    (
        ops,
        proptest::option::weighted(0.1, any::<bool>()),
        0u64..5000,
    )
}

fn pick_shard(st: &TopologyState, pick: usize) -> Option<ShardInfo> {
    let n = st.shard_count();
    // One pick in eight names a shard that does not exist.
    if n == 0 || pick % 8 == 7 {
        return None;
    }
    st.shards_by_range().nth(pick % n).cloned()
}

/// A migrating shard when there is one (smart), else any.
fn pick_migrating(st: &TopologyState, pick: usize, smart: bool) -> Option<ShardInfo> {
    let migrating: Vec<&ShardInfo> = st.shards().filter(|s| s.migration.is_some()).collect();
    if smart && !migrating.is_empty() {
        return Some(migrating[pick % migrating.len()].clone());
    }
    pick_shard(st, pick)
}

fn sid(s: &Option<ShardInfo>) -> String {
    s.as_ref()
        .map_or("ghost".to_string(), |s| s.shard_id.clone())
}

const STATUSES: [ShardStatus; 4] = [
    ShardStatus::Active,
    ShardStatus::Readonly,
    ShardStatus::Offline,
    ShardStatus::Migrating,
];

pub fn resolve(st: &TopologyState, op: &AOp, smart: bool, seq: &mut u32) -> Vec<Operation> {
    *seq += 1;
    let fresh = |prefix: &str, seq: u32| format!("{prefix}{seq}");
    let registered: Vec<String> = st.nodes().map(|n| n.node_id.clone()).collect();
    // Smart: a registered node; else any id of the universe (maybe unregistered).
    let nd = |i: u8| -> String {
        if smart && !registered.is_empty() {
            registered[i as usize % registered.len()].clone()
        } else {
            node(i)
        }
    };
    match op {
        AOp::Register {
            node: n,
            port,
            label,
        } => vec![Operation::RegisterNode {
            node_id: node(*n),
            address: format!("{}.db:{port}", node(*n)),
            labels: label.map(|l| BTreeMap::from([("zone".to_string(), format!("z{l}"))])),
        }],
        AOp::RemoveNode { node: n } => vec![Operation::RemoveNode { node_id: node(*n) }],
        AOp::Create {
            id,
            start,
            end,
            primary,
            replicas,
        } => vec![Operation::CreateShard {
            shard_id: format!("c{id}"),
            key_range: KeyRange::new(*start, *end),
            primary_node: nd(*primary),
            replica_nodes: replicas.iter().map(|r| nd(*r)).collect(),
        }],
        AOp::Reshape { pick, at, primary } => {
            let Some(s) = pick_shard(st, *pick) else {
                return vec![];
            };
            vec![
                Operation::RemoveShard {
                    shard_id: s.shard_id.clone(),
                },
                Operation::CreateShard {
                    shard_id: fresh("r", *seq),
                    key_range: KeyRange {
                        start: s.key_range.start,
                        end: Some(HashPoint(*at)),
                    },
                    primary_node: nd(*primary),
                    replica_nodes: vec![],
                },
                Operation::CreateShard {
                    shard_id: fresh("q", *seq),
                    key_range: KeyRange {
                        start: HashPoint(*at),
                        end: s.key_range.end,
                    },
                    primary_node: s.primary_node.clone(),
                    replica_nodes: vec![],
                },
            ]
        }
        AOp::Update {
            pick,
            primary,
            replicas,
            status,
        } => vec![Operation::UpdateShard {
            shard_id: sid(&pick_shard(st, *pick)),
            primary_node: primary.map(nd),
            replica_nodes: replicas
                .as_ref()
                .map(|r| r.iter().map(|n| nd(*n)).collect()),
            status: status.map(|s| STATUSES[s as usize]),
        }],
        AOp::RemoveShard { pick } => vec![Operation::RemoveShard {
            shard_id: sid(&pick_shard(st, *pick)),
        }],
        AOp::Split { pick, at, new_id } => vec![Operation::SplitShard {
            shard_id: sid(&pick_shard(st, *pick)),
            at: at.map(HashPoint),
            new_shard_id: new_id.map(|k| {
                if k == 0 {
                    "c0".to_string()
                } else {
                    fresh("p", *seq)
                }
            }),
        }],
        AOp::Merge { pick, with_next } => {
            let s = pick_shard(st, *pick);
            let n = st.shard_count().max(1);
            let other = pick_shard(st, if *with_next { pick + 1 } else { pick + n - 1 });
            vec![Operation::MergeShards {
                shard_id: sid(&s),
                with: sid(&other),
            }]
        }
        AOp::Start { pick, from, to } => {
            let s = pick_shard(st, *pick);
            let holds = |n: &str| s.as_ref().is_some_and(|s| s.has_node(n));
            let from = s
                .as_ref()
                .and_then(|s| s.nodes().nth(*from as usize).map(str::to_string))
                .unwrap_or_else(|| node(*from));
            let outside: Vec<&String> = registered.iter().filter(|n| !holds(n)).collect();
            let to = if smart && !outside.is_empty() {
                outside[*to as usize % outside.len()].clone()
            } else {
                node(*to)
            };
            vec![Operation::StartMigration {
                shard_id: sid(&s),
                from,
                to,
            }]
        }
        AOp::Progress { pick, percent } => {
            let s = pick_migrating(st, *pick, smart);
            let percent = match (&s, smart) {
                (
                    Some(ShardInfo {
                        migration: Some(m), ..
                    }),
                    true,
                ) => m.percent.saturating_add(*percent % 60).min(100),
                _ => *percent,
            };
            vec![Operation::MigrationProgress {
                shard_id: sid(&s),
                percent,
            }]
        }
        AOp::Complete { pick } => {
            let s = pick_migrating(st, *pick, smart);
            let mut ops = vec![];
            if smart && s.is_some() {
                ops.push(Operation::MigrationProgress {
                    shard_id: sid(&s),
                    percent: 100,
                });
            }
            ops.push(Operation::CompleteMigration { shard_id: sid(&s) });
            ops
        }
        AOp::Cancel { pick } => vec![Operation::CancelMigration {
            shard_id: sid(&pick_migrating(st, *pick, smart)),
        }],
        AOp::Bootstrap { nodes, shards, rf } => vec![Operation::Bootstrap {
            nodes: (0..*nodes)
                .map(|i| NodeSpec {
                    node_id: node(i),
                    address: format!("{}.db:1", node(i)),
                })
                .collect(),
            shard_count: u32::from(*shards),
            replication_factor: u32::from(*rf),
        }],
        AOp::Health { updates } => vec![Operation::SetHealth {
            updates: updates
                .iter()
                .map(|(n, h, failures, seen, err)| HealthUpdate {
                    node_id: nd(*n),
                    health: Health::ALL[*h as usize % 4],
                    failure_count: *failures,
                    last_seen: *seen,
                    last_error: err.then(|| "probe failed".to_string()),
                })
                .collect(),
        }],
    }
}

/// One command from generated operations: each resolved against `st` (`smart`: toward
/// validity), with a right (`Some(true)`) or wrong (`Some(false)`) expected version.
pub fn build(
    st: &TopologyState,
    ops: &[(AOp, bool)],
    cas: Option<bool>,
    ts: u64,
    seq: &mut u32,
) -> Command {
    let ops = ops
        .iter()
        .flat_map(|(op, smart)| resolve(st, op, *smart, seq))
        .collect();
    let mut c = Command::new(ts, ops);
    c.expected_version = cas.map(|right| {
        if right {
            st.version()
        } else {
            st.version() + 3
        }
    });
    c
}

/// Three nodes, four shards, two replicas each: a state worth changing.
pub fn bootstrap_command() -> Command {
    Command::new(
        1,
        vec![Operation::Bootstrap {
            nodes: (0..3)
                .map(|i| NodeSpec {
                    node_id: node(i),
                    address: format!("{}.db:1", node(i)),
                })
                .collect(),
            shard_count: 4,
            replication_factor: 2,
        }],
    )
}

/// Ranges are empty or an exact partition, checked without the state's own index;
/// routing agrees at every boundary.
pub fn assert_partition(st: &TopologyState) {
    let mut shards: Vec<&ShardInfo> = st.shards().collect();
    shards.sort_by_key(|s| s.key_range.start);
    let Some(first) = shards.first() else { return };
    assert_eq!(first.key_range.start, HashPoint(0));
    assert_eq!(shards.last().unwrap().key_range.end, None);
    for w in shards.windows(2) {
        assert_eq!(
            w[0].key_range.end,
            Some(w[1].key_range.start),
            "{} / {}",
            w[0].shard_id,
            w[1].shard_id
        );
    }
    for s in &shards {
        let last = (s.key_range.end_u128() - 1) as u64;
        for h in [s.key_range.start.0, last] {
            assert_eq!(st.shard_for_hash(h).map(|x| &x.shard_id), Some(&s.shard_id));
        }
    }
}

/// Derived node lists, placements and migrations are consistent.
pub fn assert_consistent(st: &TopologyState) {
    for n in st.nodes() {
        let mut expected: Vec<String> = st
            .shards()
            .filter(|s| s.has_node(&n.node_id))
            .map(|s| s.shard_id.clone())
            .collect();
        expected.sort();
        assert_eq!(n.shards, expected, "node {}", n.node_id);
    }
    for s in st.shards() {
        assert!(s.nodes().all(|n| st.node(n).is_some()), "{s:?}");
        assert!(!s.replica_nodes.contains(&s.primary_node));
        assert!(s.epoch >= 1 && s.epoch <= st.version());
        assert_eq!(s.status == ShardStatus::Migrating, s.migration.is_some());
        if let Some(m) = &s.migration {
            assert!(s.has_node(&m.from) && !s.has_node(&m.to) && st.node(&m.to).is_some());
            assert!(m.percent <= 100);
        }
    }
    // The incrementally maintained hash equals a from-scratch one.
    let rebuilt = TopologyState::from_snapshot(st.to_snapshot(), 0).expect("a valid snapshot");
    assert_eq!(rebuilt.config_hash(), st.config_hash());
}

/// Applies `c` to `server` and checks everything one step must keep: an accepted
/// command makes exactly one new version whose events, sent as JSON, bring `client`
/// to the same state; a refused one leaves the state equal to its clone from before;
/// either way the ranges partition the space and the derived data and `configHash`
/// agree with a from-scratch rebuild. True when the command was accepted.
pub fn apply_and_check(
    server: &mut TopologyState,
    client: &mut TopologyState,
    c: &Command,
) -> bool {
    let before = server.clone();
    let accepted = match server.apply(c) {
        Ok(events) => {
            assert_eq!(server.version(), before.version() + 1);
            assert!(!events.is_empty());
            assert!(events.iter().all(|e| e.version == server.version()));
            // Time never goes back, except that a timestamp more than
            // MAX_TIMESTAMP_LEAD_MS ahead of the stamping leader's clock is pulled back to
            // that bound (a future value must not stick).
            assert_eq!(
                server.timestamp(),
                next_timestamp(before.timestamp(), c.timestamp_ms)
            );
            assert!(
                server.timestamp() >= before.timestamp()
                    || before.timestamp() > c.timestamp_ms.saturating_add(MAX_TIMESTAMP_LEAD_MS)
            );
            for s in server.shards() {
                if let Some(old) = before.shard(&s.shard_id) {
                    assert!(s.epoch >= old.epoch);
                    if s != old {
                        assert!(s.epoch > old.epoch, "a change raises the epoch");
                    }
                }
            }
            // The events travel as JSON to the client.
            let wire = serde_json::to_string(&events).unwrap();
            let received: Vec<TopologyEvent> = serde_json::from_str(&wire).unwrap();
            client.apply_events(server.version(), &received).unwrap();
            assert_eq!(client, server);
            true
        }
        Err(e) => {
            assert_eq!(server, &before, "refused by {e:?}");
            if c.ops.is_empty() && c.expected_version.is_none_or(|v| v == before.version()) {
                assert_eq!(e.kind(), ApplyErrorKind::BadRequest);
            }
            false
        }
    };
    assert_partition(server);
    assert_consistent(server);
    accepted
}
