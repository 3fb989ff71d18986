//! Property tests of the state machine over random sequences of valid and invalid
//! commands.

mod common;

use common::*;
use concord_model::*;
use proptest::prelude::*;

fn build(
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_invariant(
        seed in proptest::collection::vec((aop(), any::<bool>()), 1..4),
        commands in proptest::collection::vec(acommand(), 1..40),
    ) {
        let mut server = TopologyState::new(16);
        let mut client = server.clone();
        let mut seq = 0;
        let mut log = Vec::new();
        // Start from something to work on most of the time.
        let boot = Command::new(1, vec![Operation::Bootstrap {
            nodes: (0..3).map(|i| NodeSpec { node_id: node(i), address: format!("{}.db:1", node(i)) }).collect(),
            shard_count: 4,
            replication_factor: 2,
        }]);
        let mut first = Some(if seed.len() > 1 { boot } else { build(&server, &seed, None, 1, &mut seq) });
        for step in 0..=commands.len() {
            let c = match first.take() {
                Some(c) => c,
                None => {
                    let (ops, cas, ts) = &commands[step - 1];
                    build(&server, ops, *cas, *ts, &mut seq)
                }
            };
            let before = server.clone();
            match server.apply(&c) {
                Ok(events) => {
                    prop_assert_eq!(server.version(), before.version() + 1);
                    prop_assert!(!events.is_empty());
                    prop_assert!(events.iter().all(|e| e.version == server.version()));
                    prop_assert!(server.timestamp() >= before.timestamp());
                    for s in server.shards() {
                        if let Some(old) = before.shard(&s.shard_id) {
                            prop_assert!(s.epoch >= old.epoch);
                            if s != old {
                                prop_assert!(s.epoch > old.epoch, "a change raises the epoch");
                            }
                        }
                    }
                    // The events travel as JSON to the client.
                    let wire = serde_json::to_string(&events).unwrap();
                    let received: Vec<TopologyEvent> = serde_json::from_str(&wire).unwrap();
                    client.apply_events(server.version(), &received).unwrap();
                    prop_assert_eq!(&client, &server);
                    log.push(c);
                }
                Err(e) => {
                    prop_assert_eq!(&server, &before, "refused by {:?}", e);
                    if c.ops.is_empty() && c.expected_version.is_none_or(|v| v == before.version()) {
                        prop_assert_eq!(e.kind(), ApplyErrorKind::BadRequest);
                    }
                }
            }
            assert_partition(&server);
            assert_consistent(&server);
        }
        // The history holds the latest change sets, whole.
        let h = server.history();
        if let Some(oldest) = h.oldest_version() {
            let all = h.since(oldest - 1, usize::MAX).unwrap();
            prop_assert_eq!(all.len(), h.len());
            prop_assert_eq!(all.last().unwrap().version, server.version());
        }
        // Determinism: the same commands, through the Raft log's encoding, give the
        // same state (and hash) on another server.
        let mut replica = TopologyState::new(16);
        for c in &log {
            let bytes = postcard::to_stdvec(c).unwrap();
            let c: Command = postcard::from_bytes(&bytes).unwrap();
            replica.apply(&c).unwrap();
        }
        prop_assert_eq!(&replica, &server);
        // A Raft snapshot restores the same state.
        let bytes = postcard::to_stdvec(&server).unwrap();
        let restored: TopologyState = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&restored, &server);
        // A client starting from the snapshot has the same map and hash.
        let fresh = TopologyState::from_snapshot(server.to_snapshot(), 16).unwrap();
        prop_assert_eq!(fresh.to_snapshot(), server.to_snapshot());
    }
}
