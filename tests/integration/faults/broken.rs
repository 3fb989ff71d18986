//! The checks can fail: a server broken on purpose (a debug-build-only knob,
//! `CONCORD_DEBUG_BREAK=stale-linearizable-reads`: linearizable reads answered from
//! local state, without the Raft read-index round) must fail the linearizability
//! checker. The history: writes acknowledged by the majority, then linearizable
//! reads from a follower cut off from it. A correct server cannot answer those
//! reads (no leader confirms its index); the broken one answers its stale version.

use std::time::Instant;

use concord_testkit::linearizability::{self, Op, Recorded, Ret};

use crate::cluster_support::{linearizable_version, put_node, test_config, Cluster};

use super::WAIT;

#[test]
fn stale_linearizable_reads_fail_the_checker() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: release builds have no CONCORD_DEBUG_BREAK knob");
        return;
    }
    let cluster = Cluster::start_prepared(3, true, &test_config(""), |_, _| {
        vec![(
            "CONCORD_DEBUG_BREAK".to_string(),
            "stale-linearizable-reads".to_string(),
        )]
    });
    let initial = cluster.converged(&cluster.ids(), 0, WAIT).0;
    let leader = cluster.leader(WAIT);
    let cut = cluster.others(leader)[0];
    let partitions = cluster.partitions.as_ref().expect("proxied");
    partitions.isolate(cut, &cluster.ids());

    let mut history = Vec::new();
    let mut record = |client, op, call: &dyn Fn() -> Result<u64, u16>| {
        let invoked = Instant::now();
        let answer = call();
        let returned = answer.ok().map(|v| {
            let ret = if op == Op::Read {
                Ret::Read(v)
            } else {
                Ret::Written(v)
            };
            (Instant::now(), ret)
        });
        history.push(Recorded {
            client,
            op,
            invoked,
            returned,
        });
        answer
    };
    let majority = cluster.node(leader).client;
    for i in 0..5 {
        let name = format!("acked-{i}");
        record(0, Op::Write, &|| put_node(majority, &name, None)).expect("majority write");
    }
    let stale = cluster.node(cut).client;
    for _ in 0..3 {
        let _ = record(1, Op::Read, &|| linearizable_version(stale));
    }
    partitions.heal();
    let answered = history
        .iter()
        .filter(|r| r.op == Op::Read && r.returned.is_some())
        .count();
    assert!(answered > 0, "the cut-off server answered no read");

    let verdict = linearizability::check(initial, &history);
    let lines: Vec<String> = history.iter().map(|r| r.to_string()).collect();
    let violation = verdict.expect_err(&format!(
        "the checker accepted stale reads:\n{}",
        lines.join("\n")
    ));
    eprintln!("the checker reported, as it must: {violation}");
}
