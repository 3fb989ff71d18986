//! Property tests of the state machine over random sequences of valid and invalid
//! commands.

mod common;

use common::*;
use concord_model::*;
use proptest::prelude::*;

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
        let boot = bootstrap_command();
        let mut first = Some(if seed.len() > 1 { boot } else { build(&server, &seed, None, 1, &mut seq) });
        for step in 0..=commands.len() {
            let c = match first.take() {
                Some(c) => c,
                None => {
                    let (ops, cas, ts) = &commands[step - 1];
                    build(&server, ops, *cas, *ts, &mut seq)
                }
            };
            if apply_and_check(&mut server, &mut client, &c) {
                log.push(c);
            }
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
