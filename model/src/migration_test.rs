//! Migration steps: start, progress, complete, cancel, and their refusals.

use crate::testutil::*;
use crate::*;

#[test]
fn migration_of_the_primary() {
    let mut st = topo(2, 1);
    ok_op(&mut st, reg("n3"));
    let ev = ok(&mut st, cmd(5000, vec![start("s0", "n1", "n3")]));
    assert_eq!(event_types(&ev), [EventType::ShardMove]);
    let s = shard(&st, "s0");
    assert_eq!(s.status, ShardStatus::Migrating);
    assert_eq!(
        s.migration,
        Some(Migration {
            from: "n1".into(),
            to: "n3".into(),
            percent: 0,
            started_at: 5000
        })
    );
    assert!(
        st.node("n3").unwrap().shards.is_empty(),
        "a target holds nothing yet"
    );
    ok_op(&mut st, progress("s0", 40));
    ok_op(&mut st, progress("s0", 40));
    let e = rejected_op(&mut st, progress("s0", 30));
    assert!(
        message(&e).contains("cannot go back from 40% to 30%"),
        "{e}"
    );
    let e = rejected_op(&mut st, complete("s0"));
    assert!(message(&e).contains("is at 40%"), "{e}");
    let ev = ok(
        &mut st,
        cmd(6000, vec![progress("s0", 100), complete("s0")]),
    );
    assert_eq!(
        event_types(&ev),
        [EventType::ShardMove, EventType::ShardMove]
    );
    let s = shard(&st, "s0");
    assert_eq!((s.status, s.migration.clone()), (ShardStatus::Active, None));
    assert_eq!(
        (s.primary_node.as_str(), s.replica_nodes.clone()),
        ("n3", strings(&["n2"]))
    );
    assert_eq!(st.node("n3").unwrap().shards, ["s0"]);
    assert!(st.node("n1").unwrap().shards.is_empty());
}

#[test]
fn migration_of_a_replica_and_cancel() {
    let mut st = topo(3, 1);
    ok_op(&mut st, update("s0", None, Some(&["n2"]), None));
    ok_op(&mut st, start("s0", "n2", "n3"));
    ok_op(&mut st, progress("s0", 100));
    ok_op(&mut st, complete("s0"));
    let s = shard(&st, "s0");
    assert_eq!(
        (s.primary_node.as_str(), s.replica_nodes.clone()),
        ("n1", strings(&["n3"]))
    );
    ok_op(&mut st, start("s0", "n3", "n2"));
    let ev = ok_op(
        &mut st,
        Operation::CancelMigration {
            shard_id: "s0".into(),
        },
    );
    assert_eq!(event_types(&ev), [EventType::ShardMove]);
    let s = shard(&st, "s0");
    assert_eq!(
        (s.status, s.replica_nodes.clone()),
        (ShardStatus::Active, strings(&["n3"]))
    );
}

#[test]
fn migration_rejections() {
    let mut st = topo(3, 1);
    let cases = [
        (start("s0", "n3", "n2"), "from: node \"n3\" does not hold"),
        (start("s0", "n1", "n9"), "to: node \"n9\" is not registered"),
        (start("s0", "n1", "n2"), "to: node \"n2\" already holds"),
        (start("s0", "n1", ""), "to: "),
        (progress("s0", 101), "percent: 101 is not in 0-100"),
    ];
    for (op, want) in cases {
        let e = rejected_op(&mut st, op);
        assert!(message(&e).starts_with(want), "{want}: {e}");
    }
    for op in [
        progress("s0", 10),
        complete("s0"),
        Operation::CancelMigration {
            shard_id: "s0".into(),
        },
    ] {
        let e = rejected_op(&mut st, op);
        assert_eq!(e.kind(), ApplyErrorKind::Conflict);
        assert!(message(&e).contains("no migration in progress"), "{e}");
    }
    assert_eq!(
        rejected_op(&mut st, start("zz", "n1", "n3")).http_status(),
        404
    );
    ok_op(&mut st, start("s0", "n1", "n3"));
    let e = rejected_op(&mut st, start("s0", "n2", "n3"));
    assert!(
        message(&e).contains("already") || message(&e).contains("migrating"),
        "{e}"
    );
    let mut st = topo(3, 1);
    ok_op(
        &mut st,
        update("s0", None, None, Some(ShardStatus::Offline)),
    );
    let e = rejected_op(&mut st, start("s0", "n1", "n3"));
    assert!(message(&e).contains("is offline"), "{e}");
}
