//! Fuzz target: `TopologyState::apply` on a bootstrapped state with generated change
//! sets (operations resolved against the current state, valid and invalid, batched,
//! with right and wrong compare-and-set versions). Every step must keep what
//! [`common::apply_and_check`] checks, and nothing may panic.
//!
//! A plain `cargo test` runs it on random inputs for bolero's default second (bolero
//! prints the number of inputs with `--nocapture`); longer:
//! `BOLERO_RANDOM_TEST_TIME_MS=180000 cargo test --release -p concord-model --test
//! fuzz_apply -- --nocapture` (or `BOLERO_RANDOM_ITERATIONS=N`), or under a coverage
//! guided engine with `cargo bolero test -p concord-model --test fuzz_apply <name>`.

mod common;

use bolero::{produce_with, TypeGenerator};
use common::*;
use concord_model::*;

/// One change set before its operations are resolved against the state.
#[derive(Clone, Debug, TypeGenerator)]
struct GenCommand {
    /// Each operation and whether to resolve it toward validity.
    #[generator(produce_with::<Vec<(AOp, bool)>>().len(0usize..5))]
    ops: Vec<(AOp, bool)>,
    /// `Some(true)`: the right expected version; `Some(false)`: a wrong one.
    cas: Option<bool>,
    /// Small, so that time also goes backwards now and then.
    timestamp_ms: u16,
}

#[test]
fn apply_keeps_every_invariant_on_generated_change_sets() {
    bolero::check!()
        .with_generator(produce_with::<Vec<GenCommand>>().len(1usize..32))
        .for_each(|commands| {
            let mut server = TopologyState::new(16);
            let mut client = server.clone();
            assert!(apply_and_check(
                &mut server,
                &mut client,
                &bootstrap_command()
            ));
            let mut seq = 0;
            for g in commands {
                let c = build(&server, &g.ops, g.cas, u64::from(g.timestamp_ms), &mut seq);
                apply_and_check(&mut server, &mut client, &c);
            }
        });
}
