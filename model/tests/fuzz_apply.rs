//! Fuzz target: `TopologyState::apply` on a bootstrapped state with generated change
//! sets (operations resolved against the current state, valid and invalid, batched,
//! with right and wrong compare-and-set versions). Every step must keep what
//! [`common::apply_and_check`] checks, and nothing may panic.
//!
//! A plain `cargo test` runs it on random inputs for bolero's default second (bolero
//! prints the number of inputs with `--nocapture`); longer:
//! `BOLERO_RANDOM_TEST_TIME_MS=180000 cargo test --release -p concord-model --test
//! fuzz_apply -- --nocapture` (or `BOLERO_RANDOM_ITERATIONS=N`), or `cargo bolero test`
//! with a coverage-guided engine.

mod common;

use bolero::{produce_with, TypeGenerator};
use common::*;
use concord_model::*;

/// One change set before its operations are resolved against the state.
#[derive(Clone, Debug, TypeGenerator)]
struct GenCommand {
    /// Each operation, resolved toward validity unless its byte is a multiple of 5
    /// (most are, as in the proptest strategy, so that change sets get far).
    #[generator(produce_with::<Vec<(AOp, u8)>>().len(1usize..3))]
    ops: Vec<(AOp, u8)>,
    /// 0: a wrong expected version; 1: the right one; else none.
    cas: u8,
    /// Small, so that time also goes backwards now and then.
    timestamp_ms: u16,
}

impl GenCommand {
    fn build(&self, st: &TopologyState, seq: &mut u32) -> Command {
        let ops: Vec<(AOp, bool)> = self
            .ops
            .iter()
            .map(|(op, s)| (op.clone(), s % 5 != 0))
            .collect();
        let cas = match self.cas {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        build(st, &ops, cas, u64::from(self.timestamp_ms), seq)
    }
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
                let c = g.build(&server, &mut seq);
                apply_and_check(&mut server, &mut client, &c);
            }
        });
}
