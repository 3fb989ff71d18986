//! Helpers for the unit tests: terse constructors and checked apply/reject that
//! assert the state machine's guarantees on every call.

use crate::*;

pub fn reg(id: &str) -> Operation {
    Operation::RegisterNode {
        node_id: id.into(),
        address: format!("{id}.local:7000"),
        labels: None,
    }
}

pub fn create(
    id: &str,
    start: u64,
    end: Option<u64>,
    primary: &str,
    replicas: &[&str],
) -> Operation {
    Operation::CreateShard {
        shard_id: id.into(),
        key_range: KeyRange::new(start, end),
        primary_node: primary.into(),
        replica_nodes: replicas.iter().map(|r| r.to_string()).collect(),
    }
}

pub fn cmd(ts: u64, ops: Vec<Operation>) -> Command {
    Command::new(ts, ops)
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Nodes n1..=n{nodes}, then shards s0.. splitting the space in `shards` equal parts,
/// shard i on primary n{i%nodes+1} with the next node as replica (when there is one).
pub fn topo(nodes: usize, shards: u64) -> TopologyState {
    let mut st = TopologyState::new(1000);
    let mut ops: Vec<Operation> = (1..=nodes).map(|i| reg(&format!("n{i}"))).collect();
    let bound = |i: u64| ((u128::from(i) << 64) / u128::from(shards)) as u64;
    for i in 0..shards {
        let end = (i + 1 < shards).then(|| bound(i + 1));
        let primary = format!("n{}", i as usize % nodes + 1);
        let replica = format!("n{}", (i as usize + 1) % nodes + 1);
        let replicas: Vec<&str> = if nodes > 1 { vec![&replica] } else { vec![] };
        ops.push(create(&format!("s{i}"), bound(i), end, &primary, &replicas));
    }
    ok(&mut st, cmd(1000, ops));
    st
}

/// Applies a command that must succeed; checks the version step, the events, the
/// derived data (against a from-scratch rebuild) and that a client replaying the
/// events ends up equal.
pub fn ok(st: &mut TopologyState, c: Command) -> Vec<TopologyEvent> {
    let before = st.clone();
    let events = st
        .apply(&c)
        .unwrap_or_else(|e| panic!("expected success, got {e:?}"));
    assert_eq!(st.version(), before.version() + 1);
    assert!(!events.is_empty(), "every version has events");
    assert!(events.iter().all(|e| e.version == st.version()));
    check_derived(st);
    let mut client = before;
    client.apply_events(st.version(), &events).expect("replay");
    assert_eq!(
        &client, st,
        "a client replaying the events equals the server"
    );
    events
}

/// Applies a command that must fail, and checks that nothing changed.
pub fn rejected(st: &mut TopologyState, c: Command) -> ApplyError {
    let before = st.clone();
    let e = st.apply(&c).expect_err("expected a refusal");
    assert_eq!(&before, st, "a refused command changes nothing");
    e
}

pub fn rejected_op(st: &mut TopologyState, op: Operation) -> ApplyError {
    rejected(st, cmd(2000, vec![op]))
}

pub fn ok_op(st: &mut TopologyState, op: Operation) -> Vec<TopologyEvent> {
    ok(st, cmd(2000, vec![op]))
}

/// The incrementally maintained index, node lists and hash equal a rebuild.
pub fn check_derived(st: &TopologyState) {
    let rebuilt = TopologyState::from_snapshot(st.to_snapshot(), 0).expect("valid snapshot");
    assert_eq!(rebuilt.to_snapshot(), st.to_snapshot());
    assert_eq!(rebuilt.index, st.index);
    assert_eq!(rebuilt.sum, st.sum);
}

pub fn event_types(events: &[TopologyEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

pub fn message(e: &ApplyError) -> String {
    e.to_string()
}

pub fn start(id: &str, from: &str, to: &str) -> Operation {
    Operation::StartMigration {
        shard_id: id.into(),
        from: from.into(),
        to: to.into(),
    }
}

pub fn progress(id: &str, percent: u8) -> Operation {
    Operation::MigrationProgress {
        shard_id: id.into(),
        percent,
    }
}

pub fn complete(id: &str) -> Operation {
    Operation::CompleteMigration {
        shard_id: id.into(),
    }
}

pub fn update(id: &str, p: Option<&str>, r: Option<&[&str]>, s: Option<ShardStatus>) -> Operation {
    Operation::UpdateShard {
        shard_id: id.into(),
        primary_node: p.map(Into::into),
        replica_nodes: r.map(strings),
        status: s,
    }
}

pub fn shard(st: &TopologyState, id: &str) -> ShardInfo {
    st.shard(id)
        .unwrap_or_else(|| panic!("no shard {id}"))
        .clone()
}
