//! Shard operations: create, update, remove, split, merge, migrations, epochs.

use crate::testutil::*;
use crate::*;

const HALF: u64 = 1 << 63;

#[test]
fn the_first_shard_must_cover_everything() {
    let mut st = TopologyState::new(100);
    ok(&mut st, cmd(1, vec![reg("n1"), reg("n2")]));
    let e = rejected_op(&mut st, create("s0", 0, Some(HALF), "n1", &[]));
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "keyRange"),
        "{e:?}"
    );
    assert!(
        message(&e).contains("gap [8000000000000000, end of space) after the last shard \"s0\""),
        "{e}"
    );
    let e = rejected_op(&mut st, create("s0", 1, None, "n1", &[]));
    assert!(
        message(&e).contains("gap [0000000000000000, 0000000000000001) before"),
        "{e}"
    );
    let ev = ok_op(&mut st, create("s0", 0, None, "n1", &["n2"]));
    assert_eq!(event_types(&ev), [EventType::ShardAdd]);
    let s = shard(&st, "s0");
    assert_eq!(
        (s.status, s.epoch, s.last_update),
        (ShardStatus::Active, 2, 2000)
    );
    assert_eq!(st.node("n2").unwrap().shards, ["s0"]);
}

#[test]
fn a_lone_create_on_a_full_space_overlaps() {
    let mut st = topo(2, 2);
    let e = rejected_op(&mut st, create("x", 5, Some(10), "n1", &[]));
    assert!(message(&e).contains("overlap"), "{e}");
    assert!(message(&e).contains("\"x\""), "{e}");
    let e = rejected_op(&mut st, create("x", 0, Some(10), "n1", &[]));
    assert!(
        message(&e).contains("both start at 0000000000000000"),
        "{e}"
    );
}

#[test]
fn batches_can_reshape_the_space() {
    let mut st = topo(2, 1);
    // Replace s0 by two halves in one change set.
    let ev = ok(
        &mut st,
        cmd(
            5,
            vec![
                Operation::RemoveShard {
                    shard_id: "s0".into(),
                },
                create("a", 0, Some(HALF), "n1", &[]),
                create("b", HALF, None, "n2", &["n1"]),
            ],
        ),
    );
    assert_eq!(
        event_types(&ev),
        [
            EventType::ShardRemove,
            EventType::ShardAdd,
            EventType::ShardAdd
        ]
    );
    assert_eq!(st.shard_for_hash(HALF - 1).unwrap().shard_id, "a");
    assert_eq!(st.shard_for_hash(HALF).unwrap().shard_id, "b");
    assert_eq!(st.shard_for_hash(u64::MAX).unwrap().shard_id, "b");
    // A batch that leaves a hole names it and the op that created the shard.
    let e = rejected(
        &mut st,
        cmd(
            5,
            vec![
                Operation::RemoveShard {
                    shard_id: "b".into(),
                },
                create("c", HALF + 10, None, "n2", &[]),
            ],
        ),
    );
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "ops[1].keyRange"),
        "{e:?}"
    );
    assert!(
        message(&e).contains("gap [8000000000000000, 800000000000000a) between shard \"a\""),
        "{e}"
    );
    // Removing every shard is allowed: the empty topology.
    ok(
        &mut st,
        cmd(
            5,
            vec![
                Operation::RemoveShard {
                    shard_id: "a".into(),
                },
                Operation::RemoveShard {
                    shard_id: "b".into(),
                },
            ],
        ),
    );
    assert_eq!(st.shard_count(), 0);
    assert!(st.shard_for_hash(0).is_none());
}

#[test]
fn create_rejections() {
    let mut st = topo(2, 1);
    let cases = [
        (create("", 0, None, "n1", &[]), "shardId: "),
        (create("x", 5, Some(5), "n1", &[]), "keyRange: "),
        (create("x", 6, Some(5), "n1", &[]), "keyRange: "),
        (
            create("x", 0, None, "n9", &[]),
            "primaryNode: node \"n9\" is not registered",
        ),
        (
            create("x", 0, None, "n1", &["n1"]),
            "replicaNodes[0]: node \"n1\" is the primary",
        ),
        (
            create("x", 0, None, "n1", &["n2", "n2"]),
            "replicaNodes[1]: node \"n2\" is listed twice",
        ),
        (
            create("x", 0, None, "n1", &["zz"]),
            "replicaNodes[0]: node \"zz\" is not",
        ),
    ];
    for (op, want) in cases {
        let e = rejected_op(&mut st, op);
        assert!(message(&e).starts_with(want), "{want}: {e}");
    }
    let e = rejected_op(&mut st, create("s0", 0, None, "n1", &[]));
    assert_eq!(e.kind(), ApplyErrorKind::Conflict);
    assert!(message(&e).contains("already exists"), "{e}");
}

#[test]
fn update_promotes_replaces_and_sets_status() {
    let mut st = topo(3, 1);
    ok_op(&mut st, update("s0", None, Some(&["n2", "n3"]), None));
    let before = shard(&st, "s0");
    // Promotion: the old primary takes the replica's place.
    let ev = ok_op(&mut st, update("s0", Some("n3"), None, None));
    assert_eq!(event_types(&ev), [EventType::LeaderChange]);
    let s = shard(&st, "s0");
    assert_eq!(
        (s.primary_node.as_str(), s.replica_nodes.clone()),
        ("n3", strings(&["n2", "n1"]))
    );
    assert_eq!(s.epoch, before.epoch + 1);
    assert_eq!(
        ev[0].old_value.as_ref().and_then(EntityValue::as_shard),
        Some(&before)
    );
    // Replacing the primary by a node outside the shard keeps the replicas.
    ok_op(&mut st, reg("n4"));
    ok_op(&mut st, update("s0", Some("n4"), None, None));
    let s = shard(&st, "s0");
    assert_eq!(
        (s.primary_node.as_str(), s.replica_nodes.clone()),
        ("n4", strings(&["n2", "n1"]))
    );
    assert!(st.node("n3").unwrap().shards.is_empty());
    let ev = ok_op(
        &mut st,
        update("s0", None, None, Some(ShardStatus::Readonly)),
    );
    assert_eq!(event_types(&ev), [EventType::ConfigChange]);
    assert_eq!(shard(&st, "s0").status, ShardStatus::Readonly);
    // No change: valid, an event, no epoch bump.
    let epoch = shard(&st, "s0").epoch;
    let ev = ok_op(
        &mut st,
        update("s0", Some("n4"), None, Some(ShardStatus::Readonly)),
    );
    assert_eq!(event_types(&ev), [EventType::ConfigChange]);
    assert_eq!(shard(&st, "s0").epoch, epoch);
}

#[test]
fn update_rejections() {
    let mut st = topo(2, 1);
    let e = rejected_op(&mut st, update("s0", None, None, None));
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "updateShard"),
        "{e:?}"
    );
    let e = rejected_op(
        &mut st,
        update("s0", None, None, Some(ShardStatus::Migrating)),
    );
    assert!(message(&e).starts_with("status: "), "{e}");
    let e = rejected_op(&mut st, update("nope", Some("n1"), None, None));
    assert_eq!(e, ApplyError::not_found(EntityKind::Shard, "nope"));
    let e = rejected_op(&mut st, update("s0", None, Some(&["n1"]), None));
    assert!(message(&e).starts_with("replicaNodes[0]: "), "{e}");
    let e = rejected_op(&mut st, update("s0", Some("n2"), Some(&["n2"]), None));
    assert!(message(&e).contains("is the primary"), "{e}");
    let e = rejected_op(&mut st, update("s0", Some("ghost"), None, None));
    assert!(message(&e).starts_with("primaryNode: "), "{e}");
    ok_op(&mut st, reg("n3"));
    ok_op(&mut st, start("s0", "n1", "n3"));
    let e = rejected_op(
        &mut st,
        update("s0", None, None, Some(ShardStatus::Offline)),
    );
    assert_eq!(e.kind(), ApplyErrorKind::Conflict);
    assert!(
        message(&e).contains("is migrating from \"n1\" to \"n3\" (0%)"),
        "{e}"
    );
}

#[test]
fn remove_shard() {
    let mut st = topo(2, 1);
    let e = rejected_op(
        &mut st,
        Operation::RemoveShard {
            shard_id: "x".into(),
        },
    );
    assert_eq!(e.http_status(), 404);
    let ev = ok_op(
        &mut st,
        Operation::RemoveShard {
            shard_id: "s0".into(),
        },
    );
    assert_eq!(event_types(&ev), [EventType::ShardRemove]);
    assert!(ev[0].new_value.is_none());
    assert_eq!(ev[0].shard().unwrap().shard_id, "s0");
    assert!(st.node("n1").unwrap().shards.is_empty());
    // A removal that leaves a gap is refused.
    let mut st = topo(2, 2);
    let e = rejected_op(
        &mut st,
        Operation::RemoveShard {
            shard_id: "s0".into(),
        },
    );
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "removeShard"),
        "{e:?}"
    );
    assert!(
        message(&e).contains("gap [0000000000000000, 8000000000000000) before"),
        "{e}"
    );
}

fn split(id: &str, at: Option<u64>, new_id: Option<&str>) -> Operation {
    Operation::SplitShard {
        shard_id: id.into(),
        at: at.map(HashPoint),
        new_shard_id: new_id.map(Into::into),
    }
}

#[test]
fn split_at_the_midpoint_by_default() {
    let mut st = topo(2, 1);
    let ev = ok_op(&mut st, split("s0", None, None));
    assert_eq!(
        event_types(&ev),
        [EventType::ShardSplit, EventType::ShardSplit]
    );
    let left = shard(&st, "s0");
    let right = shard(&st, "shard-8000000000000000");
    assert_eq!(left.key_range, KeyRange::new(0, Some(HALF)));
    assert_eq!(right.key_range, KeyRange::new(HALF, None));
    assert_eq!(
        (right.primary_node.clone(), right.replica_nodes.clone()),
        (left.primary_node.clone(), left.replica_nodes.clone())
    );
    assert_eq!(left.epoch, 2);
    assert_eq!(
        right.epoch,
        st.version(),
        "a new shard starts at the version"
    );
    assert_eq!(
        st.node("n1").unwrap().shards,
        ["s0", "shard-8000000000000000"]
    );
    assert!(ev[1].old_value.is_none());
    // Explicit point and id; the default id is made unique.
    ok_op(&mut st, split("s0", Some(1 << 62), Some("q1")));
    assert_eq!(
        shard(&st, "q1").key_range,
        KeyRange::new(1 << 62, Some(HALF))
    );
    // A default id that is taken gets a suffix.
    ok_op(
        &mut st,
        split(
            "q1",
            Some(0x6000_0000_0000_0000),
            Some("shard-a000000000000000"),
        ),
    );
    ok_op(
        &mut st,
        split("shard-8000000000000000", Some(0xa000_0000_0000_0000), None),
    );
    assert_eq!(
        shard(&st, "shard-a000000000000000-1").key_range,
        KeyRange::new(0xa000_0000_0000_0000, None)
    );
}

#[test]
fn split_rejections() {
    let mut st = topo(2, 1);
    for (at, want) in [
        (0, "at: 0000000000000000 is not strictly inside"),
        (u64::MAX, ""),
    ] {
        if want.is_empty() {
            ok_op(&mut st, split("s0", Some(at), Some("top")));
            continue;
        }
        let e = rejected_op(&mut st, split("s0", Some(at), None));
        assert!(message(&e).starts_with(want), "{e}");
    }
    // "top" is [ffffffffffffffff, end): one value.
    let e = rejected_op(&mut st, split("top", None, None));
    assert!(message(&e).contains("single hash value"), "{e}");
    let e = rejected_op(&mut st, split("top", Some(u64::MAX), None));
    assert!(message(&e).starts_with("at: "), "{e}");
    let e = rejected_op(&mut st, split("s0", None, Some("top")));
    assert!(message(&e).contains("already exists"), "{e}");
    let e = rejected_op(&mut st, split("s0", None, Some("s0")));
    assert!(message(&e).contains("already exists"), "{e}");
    let e = rejected_op(&mut st, split("s0", None, Some("bad id")));
    assert!(message(&e).starts_with("newShardId: "), "{e}");
    let e = rejected_op(&mut st, split("zz", None, None));
    assert_eq!(e.http_status(), 404);
    ok_op(&mut st, reg("n3"));
    ok_op(&mut st, start("s0", "n1", "n3"));
    let e = rejected_op(&mut st, split("s0", None, None));
    assert!(message(&e).contains("migrating"), "{e}");
}

#[test]
fn merge_adjacent_shards_either_way() {
    let mut st = topo(2, 4);
    let ev = ok_op(
        &mut st,
        Operation::MergeShards {
            shard_id: "s1".into(),
            with: "s2".into(),
        },
    );
    assert_eq!(
        event_types(&ev),
        [EventType::ShardMerge, EventType::ShardRemove]
    );
    assert_eq!(
        shard(&st, "s1").key_range,
        KeyRange::new(1 << 62, Some(3 << 62))
    );
    assert!(st.shard("s2").is_none());
    ok_op(
        &mut st,
        Operation::MergeShards {
            shard_id: "s3".into(),
            with: "s1".into(),
        },
    );
    assert_eq!(shard(&st, "s3").key_range, KeyRange::new(1 << 62, None));
    assert_eq!(
        shard(&st, "s3").primary_node,
        "n2",
        "the survivor keeps its nodes"
    );
    assert_eq!(st.node("n1").unwrap().shards, ["s0", "s3"]);
}

#[test]
fn merge_rejections() {
    let mut st = topo(3, 4);
    let merge = |a: &str, b: &str| Operation::MergeShards {
        shard_id: a.into(),
        with: b.into(),
    };
    let e = rejected_op(&mut st, merge("s0", "s2"));
    assert!(
        message(&e)
            .starts_with("with: shard \"s2\" [8000000000000000, c000000000000000) is not adjacent"),
        "{e}"
    );
    let e = rejected_op(&mut st, merge("s0", "s0"));
    assert!(message(&e).starts_with("with: "), "{e}");
    let e = rejected_op(&mut st, merge("s0", "ghost"));
    assert!(
        message(&e).starts_with("with: shard \"ghost\" does not exist"),
        "{e}"
    );
    let e = rejected_op(&mut st, merge("ghost", "s0"));
    assert_eq!(e.http_status(), 404);
    ok_op(
        &mut st,
        update("s1", None, None, Some(ShardStatus::Readonly)),
    );
    let e = rejected_op(&mut st, merge("s0", "s1"));
    assert!(message(&e).contains("shard \"s1\" is readonly"), "{e}");
    ok_op(&mut st, start("s3", "n1", "n3"));
    let e = rejected_op(&mut st, merge("s2", "s3"));
    assert!(message(&e).contains("migrating"), "{e}");
}

#[test]
fn epochs_grow_once_per_change_set_and_timestamps_never_go_back() {
    let mut st = topo(3, 2);
    let e0 = shard(&st, "s0").epoch;
    ok(
        &mut st,
        cmd(
            9000,
            vec![
                update("s0", None, None, Some(ShardStatus::Readonly)),
                update("s0", None, None, Some(ShardStatus::Active)),
                update("s0", Some("n3"), None, None),
            ],
        ),
    );
    let s0 = shard(&st, "s0");
    assert_eq!(s0.epoch, e0 + 1);
    assert_eq!(s0.last_update, 9000);
    assert_eq!(
        shard(&st, "s1").last_update,
        1000,
        "untouched shards keep theirs"
    );
    // A command stamped in the past (a new leader with a slow clock) does not move
    // time back.
    ok_op(&mut st, update("s1", Some("n3"), None, None));
    assert_eq!(st.timestamp(), 9000);
    assert_eq!(shard(&st, "s1").last_update, 9000);
    // A shard removed and created again never reuses an epoch.
    let old_epoch = shard(&st, "s1").epoch;
    ok(
        &mut st,
        cmd(
            9500,
            vec![
                Operation::RemoveShard {
                    shard_id: "s1".into(),
                },
                create("s1", HALF, None, "n1", &[]),
            ],
        ),
    );
    assert!(shard(&st, "s1").epoch > old_epoch);
}
