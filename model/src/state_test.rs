//! The state machine as a whole: change-set atomicity, versions, compare-and-set,
//! client replay, snapshots, serde, routing.

use super::*;
use crate::testutil::*;
use crate::*;

#[test]
fn a_new_state_is_empty_at_version_zero() {
    let st = TopologyState::new(10);
    assert_eq!(
        (
            st.version(),
            st.timestamp(),
            st.shard_count(),
            st.node_count()
        ),
        (0, 0, 0, 0)
    );
    assert!(st.is_empty());
    assert_eq!(st.config_hash().len(), 16);
    assert_eq!(st.config_hash(), TopologyState::new(99).config_hash());
    assert!(st.shard_for_hash(0).is_none());
    check_derived(&st);
}

#[test]
fn an_empty_change_set_is_a_bad_request() {
    let mut st = TopologyState::new(10);
    let e = rejected(&mut st, cmd(1, vec![]));
    assert!(matches!(&e, ApplyError::Invalid { field, .. } if field == "ops"));
    assert!(message(&e).contains("no operations"), "{e}");
    assert_eq!(e.http_status(), 400);
}

#[test]
fn expected_version_is_compare_and_set() {
    let mut st = topo(2, 1);
    let e = rejected(&mut st, cmd(5, vec![reg("n3")]).with_expected_version(0));
    assert_eq!(
        e,
        ApplyError::VersionMismatch {
            expected: 0,
            actual: 1
        }
    );
    assert_eq!(e.kind(), ApplyErrorKind::PreconditionFailed);
    assert_eq!(e.http_status(), 409);
    ok(&mut st, cmd(5, vec![reg("n3")]).with_expected_version(1));
    assert_eq!(st.version(), 2);
}

#[test]
fn a_failing_operation_discards_the_whole_change_set() {
    let mut st = topo(2, 2);
    let e = rejected(
        &mut st,
        cmd(
            5,
            vec![
                reg("n3"),
                Operation::SplitShard {
                    shard_id: "s0".into(),
                    at: None,
                    new_shard_id: None,
                },
                Operation::RemoveNode {
                    node_id: "ghost".into(),
                },
            ],
        ),
    );
    assert_eq!(e, ApplyError::not_found(EntityKind::Node, "ghost"));
    assert!(st.node("n3").is_none());
    assert_eq!(st.history().latest_version(), 1);
}

#[test]
fn error_kinds_map_to_http() {
    let cases = [
        (ApplyError::invalid("f", "x"), 400),
        (ApplyError::not_found(EntityKind::Shard, "s"), 404),
        (ApplyError::conflict("c"), 409),
        (
            ApplyError::VersionMismatch {
                expected: 1,
                actual: 2,
            },
            409,
        ),
    ];
    for (e, status) in cases {
        assert_eq!(e.http_status(), status, "{e:?}");
        // The Raft response travels between servers.
        let bytes = postcard::to_stdvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<ApplyError>(&bytes).unwrap(), e);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ApplyError>(&json).unwrap(), e);
    }
    assert_eq!(ApplyError::invalid("a.b", "bad").to_string(), "a.b: bad");
    assert_eq!(
        ApplyError::not_found(EntityKind::Shard, "s1").to_string(),
        "shard \"s1\" not found"
    );
}

#[test]
fn events_and_history_carry_the_new_version() {
    let mut st = topo(2, 2);
    let ev = ok(&mut st, cmd(5000, vec![reg("n3"), reg("n4")]));
    assert!(ev.iter().all(|e| e.version == 2 && e.timestamp == 5000));
    let held = st.history().since(1, 100).unwrap();
    assert_eq!(held, ev);
    assert_eq!(st.history().since(0, 100).unwrap().len(), 4 + 2);
}

#[test]
fn routing_finds_the_owner_at_every_boundary() {
    let st = topo(2, 4);
    let q = 1u64 << 62;
    for (h, owner) in [
        (0, "s0"),
        (q - 1, "s0"),
        (q, "s1"),
        (2 * q, "s2"),
        (3 * q - 1, "s2"),
        (3 * q, "s3"),
        (u64::MAX, "s3"),
    ] {
        assert_eq!(st.shard_for_hash(h).unwrap().shard_id, owner, "{h:x}");
    }
    let s = st.shard_for_key(b"user:42").unwrap();
    assert!(s.key_range.contains(key_hash(b"user:42")));
    let ids: Vec<&str> = st.shards_by_range().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(ids, ["s0", "s1", "s2", "s3"]);
}

#[test]
fn clients_replay_events_and_detect_gaps() {
    let mut server = TopologyState::new(100);
    let mut client = server.clone();
    let ev1 = ok(&mut server, cmd(1, vec![reg("n1")]));
    let ev2 = ok(&mut server, cmd(2, vec![create("s0", 0, None, "n1", &[])]));
    assert_eq!(
        client.apply_events(2, &ev2),
        Err(ApplyEventsError::Gap {
            expected: 1,
            received: 2
        })
    );
    client.apply_events(1, &ev1).unwrap();
    client.apply_events(1, &ev1).unwrap(); // resent: ignored
    client.apply_events(2, &ev2).unwrap();
    assert_eq!(client, server);
    assert_eq!(client.config_hash(), server.config_hash());
    // Replaying an event twice within a version is harmless too.
    let ev3 = ok(&mut server, cmd(3, vec![reg("n2")]));
    let doubled: Vec<TopologyEvent> = ev3.iter().chain(ev3.iter()).cloned().collect();
    client.apply_events(3, &doubled).unwrap();
    assert_eq!(client.to_snapshot(), server.to_snapshot());
}

#[test]
fn clients_refuse_inconsistent_events_and_stay_unchanged() {
    let mut server = topo(2, 1);
    let mut client = server.clone();
    let ev = ok(&mut server, cmd(5, vec![reg("n3")]));
    let mut wrong_version = ev.clone();
    wrong_version[0].version = 7;
    let mut no_value = ev.clone();
    no_value[0].new_value = None;
    let mut ghost_shard = shard_of(&client, "s0");
    ghost_shard.primary_node = "ghost".into();
    let mut gap_shard = shard_of(&client, "s0");
    gap_shard.key_range = KeyRange::new(0, Some(5));
    let mut bad_id = NodeStatus::new("bad id", "h:1");
    bad_id.node_id = "bad id".into();
    let bad_sets = [
        wrong_version,
        no_value,
        vec![shard_event(2, ghost_shard)],
        vec![shard_event(2, gap_shard)],
        vec![node_event(EventType::NodeJoin, 2, bad_id)],
        vec![node_event(
            EventType::NodeLeave,
            2,
            NodeStatus::new("n1", "h:1"),
        )],
    ];
    for events in bad_sets {
        let before = client.clone();
        let e = client.apply_events(2, &events).unwrap_err();
        assert!(
            matches!(e, ApplyEventsError::Inconsistent { version: 2, .. }),
            "{e:?}"
        );
        assert_eq!(client, before);
    }
    client.apply_events(2, &ev).unwrap();
    assert_eq!(client, server);
}

fn shard_of(st: &TopologyState, id: &str) -> ShardInfo {
    st.shard(id).unwrap().clone()
}

fn shard_event(version: u64, s: ShardInfo) -> TopologyEvent {
    TopologyEvent {
        event_type: EventType::ConfigChange,
        version,
        timestamp: 1,
        node_id: None,
        shard_id: Some(s.shard_id.clone()),
        old_value: None,
        new_value: Some(s.into()),
    }
}

fn node_event(t: EventType, version: u64, n: NodeStatus) -> TopologyEvent {
    TopologyEvent {
        event_type: t,
        version,
        timestamp: 1,
        node_id: Some(n.node_id.clone()),
        shard_id: None,
        old_value: Some(n.clone().into()),
        new_value: (t != EventType::NodeLeave).then(|| n.into()),
    }
}

#[test]
fn snapshots_round_trip_and_start_an_empty_history() {
    let st = topo(3, 4);
    let snap = st.to_snapshot();
    assert_eq!(snap.hash_function, HASH_FUNCTION);
    assert_eq!(snap.config_hash, st.config_hash());
    let json = serde_json::to_string(&snap).unwrap();
    let back = TopologyState::from_snapshot(serde_json::from_str(&json).unwrap(), 7).unwrap();
    assert_eq!(back.to_snapshot(), snap);
    assert_eq!(back.history().base_version(), st.version());
    assert_eq!(back.history().capacity(), 7);
    assert!(back.history().is_empty());
}

#[test]
fn snapshots_are_validated() {
    let st = topo(2, 2);
    let check = |f: &dyn Fn(&mut TopologySnapshot), want: &str| {
        let mut s = st.to_snapshot();
        f(&mut s);
        let e = TopologyState::from_snapshot(s, 10).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    };
    check(
        &|s| s.hash_function = "murmur3".into(),
        "unsupported hashFunction",
    );
    check(
        &|s| s.config_hash = "0000000000000000".into(),
        "configHash mismatch",
    );
    check(
        &|s| {
            s.shard_map.get_mut("s0").unwrap().key_range.end = Some(HashPoint(5));
        },
        "shardMap: shard ranges must cover the hash space exactly: gap",
    );
    check(
        &|s| {
            s.shard_map.get_mut("s1").unwrap().shard_id = "s9".into();
        },
        "shardMap.s1.shardId: does not match its key",
    );
    check(
        &|s| {
            s.shard_map.get_mut("s1").unwrap().primary_node = "n9".into();
        },
        "shardMap.s1.primaryNode: node \"n9\" is not registered",
    );
    check(
        &|s| {
            s.shard_map.get_mut("s1").unwrap().status = ShardStatus::Migrating;
        },
        "shardMap.s1.migration: is missing",
    );
    check(
        &|s| {
            s.node_status.get_mut("n1").unwrap().address = "nowhere".into();
        },
        "nodeStatus.n1.address",
    );
    check(
        &|s| {
            let n = s.node_status.remove("n1").unwrap();
            s.node_status.insert("bad key".into(), n);
        },
        "nodeStatus.bad key",
    );
    check(
        &|s| {
            let a = s.shard_map.get("s0").unwrap().clone();
            s.shard_map.insert(
                "s2".into(),
                ShardInfo {
                    shard_id: "s2".into(),
                    ..a
                },
            );
        },
        "overlap",
    );
}

#[test]
fn derived_node_lists_are_recomputed_not_trusted() {
    let st = topo(2, 2);
    let mut s = st.to_snapshot();
    s.node_status.get_mut("n1").unwrap().shards = vec!["made-up".into()];
    let back = TopologyState::from_snapshot(s, 10).unwrap();
    assert_eq!(back.node("n1").unwrap().shards, ["s0", "s1"]);
    assert_eq!(back.to_snapshot(), st.to_snapshot());
}

#[test]
fn the_state_serializes_with_its_history() {
    let mut st = topo(2, 2);
    ok(&mut st, cmd(5, vec![reg("n3")]));
    let json = serde_json::to_string(&st).unwrap();
    for k in [
        "\"version\"",
        "\"shardMap\"",
        "\"nodeStatus\"",
        "\"configHash\"",
        "\"history\"",
    ] {
        assert!(json.contains(k), "{k}");
    }
    let back: TopologyState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    // Raft snapshots are written with a binary format.
    let bytes = postcard::to_stdvec(&st).unwrap();
    assert_eq!(postcard::from_bytes::<TopologyState>(&bytes).unwrap(), st);
    // A tampered form is refused.
    let tampered = json.replacen("\"version\":2", "\"version\":1", 1);
    let e = serde_json::from_str::<TopologyState>(&tampered).unwrap_err();
    assert!(e.to_string().contains("history"), "{e}");
}

#[test]
fn the_event_buffer_size_can_change() {
    let mut st = topo(2, 2);
    for i in 0..5 {
        ok(&mut st, cmd(5, vec![reg(&format!("x{i}"))]));
    }
    st.set_event_buffer_size(2);
    assert_eq!(st.history().len(), 2);
    assert_eq!(st.history().oldest_version(), Some(5));
    let e = st.history().since(3, 10).unwrap_err();
    assert_eq!(
        e,
        HistoryError::Compacted {
            oldest_available: 5
        }
    );
}

#[test]
fn partition_errors_in_batches_name_the_culprit_or_the_batch() {
    let mut st = topo(2, 2);
    let e = rejected(
        &mut st,
        cmd(
            5,
            vec![
                reg("n3"),
                Operation::RemoveShard {
                    shard_id: "s1".into(),
                },
            ],
        ),
    );
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "ops"),
        "{e:?}"
    );
    assert!(
        message(&e).starts_with("ops: shard ranges must cover"),
        "{e}"
    );
}

#[test]
fn a_timestamp_from_the_future_is_pulled_back_to_the_leaders_clock() {
    // A slow leader clock does not move time back...
    assert_eq!(next_timestamp(9_000, 2_000), 9_000);
    assert_eq!(next_timestamp(2_000, 9_000), 9_000);
    // ...but a timestamp far ahead of the stamping leader's clock does not stick.
    let now = 1_800_000_000_000;
    assert_eq!(next_timestamp(u64::MAX, now), now + MAX_TIMESTAMP_LEAD_MS);
    assert_eq!(next_timestamp(u64::MAX, u64::MAX - 1), u64::MAX);
    let mut st = topo(3, 2);
    ok(
        &mut st,
        cmd(
            4_000_000_000_000,
            vec![update("s0", None, None, Some(ShardStatus::Readonly))],
        ),
    );
    assert_eq!(st.timestamp(), 4_000_000_000_000);
    ok(
        &mut st,
        cmd(
            now,
            vec![update("s0", None, None, Some(ShardStatus::Active))],
        ),
    );
    assert_eq!(st.timestamp(), now + MAX_TIMESTAMP_LEAD_MS);
    assert_eq!(shard(&st, "s0").last_update, now + MAX_TIMESTAMP_LEAD_MS);
}
