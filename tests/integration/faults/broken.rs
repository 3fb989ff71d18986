//! The checks can fail: a server broken on purpose (a debug-build-only knob,
//! `CONCORD_DEBUG_BREAK=stale-linearizable-reads`: linearizable reads answered from
//! local state, without the Raft read-index round) must fail the history checker
//! once a server is cut off and keeps answering.

use crate::fault_schedule::Fault;
use crate::linearizable::{checked_verdict, Plan};

#[test]
fn stale_linearizable_reads_fail_the_checker() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: release builds have no CONCORD_DEBUG_BREAK knob");
        return;
    }
    let env = |_| {
        vec![(
            "CONCORD_DEBUG_BREAK".to_string(),
            "stale-linearizable-reads".to_string(),
        )]
    };
    let verdict = checked_verdict(&Plan {
        env: &env,
        ..Plan::new(3, 3, &[Fault::Isolate])
    });
    let violation = verdict.expect_err("the checker accepted a server that answers stale reads");
    let first = violation.lines().next().unwrap_or_default();
    eprintln!("the checker reported, as it must: {first}");
}
