//! The tracker's state machine, case by case, then exhaustively against the health
//! rules with the decisions committed through the real model state machine.

use super::*;
use concord_model::{Command, EventType, Operation, TopologyState};

const T3_2: Thresholds = Thresholds {
    failure: 3,
    success: 2,
};

fn topology(ids: &[&str]) -> TopologyState {
    let mut st = TopologyState::new(1000);
    for id in ids {
        st.apply(&Command::single(
            1,
            Operation::RegisterNode {
                node_id: id.to_string(),
                address: format!("127.0.0.1:{}", 9000 + id.len()),
                labels: None,
            },
        ))
        .expect("register");
    }
    st
}

fn pass(id: &str, at_ms: u64) -> Check {
    Check {
        node_id: id.into(),
        outcome: Outcome::Pass,
        at_ms,
    }
}

fn fail(id: &str, at_ms: u64, why: &str) -> Check {
    Check {
        node_id: id.into(),
        outcome: Outcome::Fail(why.into()),
        at_ms,
    }
}

/// Decides one round and commits its updates (one command) as the monitor does.
fn round(tracker: &mut Tracker, st: &mut TopologyState, checks: &[Check]) -> Decision {
    let decision = tracker.decide(st.node_map(), checks);
    if !decision.updates.is_empty() {
        let before = st.version();
        st.apply(&Command::single(
            99,
            Operation::SetHealth {
                updates: decision.updates.clone(),
            },
        ))
        .expect("the tracker's updates are always valid");
        assert_eq!(st.version(), before + 1, "one round is one version");
    }
    decision
}

fn health(st: &TopologyState, id: &str) -> Health {
    st.node(id).expect("node").health
}

#[test]
fn unknown_becomes_healthy_on_the_first_pass() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    let d = round(&mut t, &mut st, &[pass("a", 10)]);
    assert_eq!(d.updates.len(), 1);
    let n = st.node("a").unwrap();
    assert_eq!(
        (n.health, n.failure_count, n.last_seen),
        (Health::Healthy, 0, 10)
    );
    assert_eq!(d.verdicts[0].previous, Health::Unknown);
    assert!(d.verdicts[0].passed && d.verdicts[0].update);
}

#[test]
fn a_node_outside_the_allow_list_is_unknown_with_the_reason_committed_once() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 10)]);
    let not_allowed = |at_ms| Check {
        node_id: "a".into(),
        outcome: Outcome::NotAllowed("not allowed".into()),
        at_ms,
    };
    let d = round(&mut t, &mut st, &[not_allowed(20)]);
    assert_eq!(d.updates.len(), 1);
    let n = st.node("a").unwrap();
    assert_eq!((n.health, n.failure_count), (Health::Unknown, 0));
    assert_eq!(n.last_error.as_deref(), Some("not allowed"));
    assert!(!d.verdicts[0].passed);
    let d = round(&mut t, &mut st, &[not_allowed(30)]);
    assert!(
        d.updates.is_empty(),
        "a steady refusal is not committed again"
    );
    round(&mut t, &mut st, &[pass("a", 40)]);
    assert_eq!(health(&st, "a"), Health::Healthy);
}

#[test]
fn unknown_becomes_degraded_on_the_first_failure_or_unhealthy_at_threshold_one() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[fail("a", 10, "refused")]);
    let n = st.node("a").unwrap();
    assert_eq!((n.health, n.failure_count), (Health::Degraded, 1));
    assert_eq!(n.last_error.as_deref(), Some("refused"));
    assert_eq!(n.last_seen, 0, "never seen");

    let mut st = topology(&["a"]);
    let mut t = Tracker::new(Thresholds {
        failure: 1,
        success: 1,
    });
    round(&mut t, &mut st, &[fail("a", 10, "refused")]);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
}

#[test]
fn a_steady_healthy_node_is_never_committed() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 10)]);
    let version = st.version();
    for i in 0..20 {
        let d = round(&mut t, &mut st, &[pass("a", 20 + i)]);
        assert!(d.updates.is_empty());
        assert_eq!(d.verdicts[0].last_seen, 20 + i, "memory tracks lastSeen");
    }
    assert_eq!(st.version(), version);
    assert_eq!(st.node("a").unwrap().last_seen, 10, "committed lastSeen");
}

#[test]
fn healthy_degrades_then_turns_unhealthy_at_the_threshold() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 5)]);
    let expected = [
        (Health::Degraded, 1, true),
        (Health::Degraded, 2, true),
        (Health::Unhealthy, 3, true),
        (Health::Unhealthy, 3, false),
        (Health::Unhealthy, 3, false),
    ];
    for (i, (h, committed_count, updated)) in expected.into_iter().enumerate() {
        let d = round(&mut t, &mut st, &[fail("a", 10 + i as u64, "timeout")]);
        assert_eq!(d.updates.is_empty(), !updated, "round {i}");
        assert_eq!(
            d.verdicts[0].failure_count,
            i as u32 + 1,
            "memory keeps counting"
        );
        let n = st.node("a").unwrap();
        assert_eq!(
            (n.health, n.failure_count),
            (h, committed_count),
            "round {i}"
        );
        assert_eq!(n.last_seen, 5, "the last pass is kept");
        assert_eq!(n.last_error.as_deref(), Some("timeout"));
    }
}

#[test]
fn recovery_needs_consecutive_passes_and_keeps_the_last_error() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    for i in 0..3 {
        round(&mut t, &mut st, &[fail("a", i, "HTTP 500")]);
    }
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    let d = round(&mut t, &mut st, &[pass("a", 100)]);
    assert!(d.updates.is_empty(), "one pass of two is not committed");
    assert_eq!(d.verdicts[0].success_count, 1);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    // A failure breaks the streak, and an unhealthy node stays unhealthy.
    let d = round(&mut t, &mut st, &[fail("a", 101, "HTTP 503")]);
    assert!(d.updates.is_empty());
    assert_eq!(d.verdicts[0].failure_count, 1);
    round(&mut t, &mut st, &[pass("a", 102)]);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    let d = round(&mut t, &mut st, &[pass("a", 103)]);
    assert_eq!(d.updates.len(), 1);
    let n = st.node("a").unwrap();
    assert_eq!(
        (n.health, n.failure_count, n.last_seen),
        (Health::Healthy, 0, 103)
    );
    assert_eq!(
        n.last_error.as_deref(),
        Some("HTTP 503"),
        "kept for diagnosis"
    );
}

#[test]
fn a_degraded_node_commits_its_failure_count_reset_and_recovers() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 1)]);
    round(&mut t, &mut st, &[fail("a", 2, "x")]);
    round(&mut t, &mut st, &[fail("a", 3, "x")]);
    assert_eq!(st.node("a").unwrap().failure_count, 2);
    let d = round(&mut t, &mut st, &[pass("a", 4)]);
    assert_eq!(
        d.updates.len(),
        1,
        "the count that leads to unhealthy reset"
    );
    let n = st.node("a").unwrap();
    assert_eq!((n.health, n.failure_count), (Health::Degraded, 0));
    // A failure now starts counting again from one: not unhealthy.
    round(&mut t, &mut st, &[fail("a", 5, "x")]);
    let n = st.node("a").unwrap();
    assert_eq!((n.health, n.failure_count), (Health::Degraded, 1));
    round(&mut t, &mut st, &[pass("a", 6)]);
    round(&mut t, &mut st, &[pass("a", 7)]);
    assert_eq!(health(&st, "a"), Health::Healthy);
}

#[test]
fn success_threshold_one_recovers_on_the_first_pass() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(Thresholds {
        failure: 2,
        success: 1,
    });
    round(&mut t, &mut st, &[fail("a", 1, "x")]);
    round(&mut t, &mut st, &[fail("a", 2, "x")]);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    round(&mut t, &mut st, &[pass("a", 3)]);
    assert_eq!(health(&st, "a"), Health::Healthy);
}

#[test]
fn a_new_leader_continues_from_the_committed_count() {
    let mut st = topology(&["a"]);
    let mut old_leader = Tracker::new(T3_2);
    round(&mut old_leader, &mut st, &[fail("a", 1, "x")]);
    round(&mut old_leader, &mut st, &[fail("a", 2, "x")]);
    let mut new_leader = Tracker::new(T3_2);
    let d = round(&mut new_leader, &mut st, &[fail("a", 3, "x")]);
    assert_eq!(d.verdicts[0].failure_count, 3);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    // The pass streak is not replicated: the new leader needs all its passes.
    let mut third = Tracker::new(T3_2);
    round(&mut third, &mut st, &[pass("a", 4)]);
    assert_eq!(health(&st, "a"), Health::Unhealthy);
    round(&mut third, &mut st, &[pass("a", 5)]);
    assert_eq!(health(&st, "a"), Health::Healthy);
}

#[test]
fn a_flapping_node_is_committed_at_most_once_per_round_and_never_recovers() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 0)]);
    for i in 1..40u64 {
        let check = if i % 2 == 0 {
            pass("a", i)
        } else {
            fail("a", i, "flap")
        };
        let before = st.version();
        let d = round(&mut t, &mut st, &[check]);
        assert!(d.updates.len() <= 1);
        assert!(st.version() <= before + 1);
        assert_eq!(health(&st, "a"), Health::Degraded, "round {i}");
    }
}

#[test]
fn all_transitions_of_a_round_are_one_version_with_one_event_each() {
    let mut st = topology(&["a", "b", "c", "d"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 1), pass("b", 1), pass("c", 1)]);
    let before = st.version();
    let d = round(
        &mut t,
        &mut st,
        &[
            fail("c", 2, "x"),
            pass("a", 2),
            fail("b", 2, "y"),
            pass("d", 2),
        ],
    );
    assert_eq!(st.version(), before + 1);
    let ids: Vec<&str> = d.updates.iter().map(|u| u.node_id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "d"], "sorted, steady `a` left out");
    let events = st.history().since(before, 100).expect("held");
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.event_type == EventType::NodeHealthChange && e.version == before + 1));
}

#[test]
fn checks_of_removed_nodes_are_dropped_and_forgotten() {
    let mut st = topology(&["a", "b"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[fail("a", 1, "x"), fail("b", 1, "x")]);
    st.apply(&Command::single(
        2,
        Operation::RemoveNode {
            node_id: "b".into(),
        },
    ))
    .unwrap();
    let d = round(&mut t, &mut st, &[fail("a", 3, "x"), fail("b", 3, "x")]);
    assert_eq!(d.verdicts.len(), 1);
    assert_eq!(d.updates.len(), 1);
    assert_eq!(d.updates[0].node_id, "a");
    // `b` registered again under the same id starts from scratch.
    st.apply(&Command::single(
        4,
        Operation::RegisterNode {
            node_id: "b".into(),
            address: "127.0.0.1:9".into(),
            labels: None,
        },
    ))
    .unwrap();
    let d = round(&mut t, &mut st, &[fail("b", 5, "x")]);
    assert_eq!(d.verdicts[0].failure_count, 1);
    assert_eq!(health(&st, "b"), Health::Degraded);
}

#[test]
fn memory_of_an_id_reused_between_rounds_is_reset_by_unknown() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[fail("a", 1, "x")]);
    round(&mut t, &mut st, &[fail("a", 2, "x")]);
    // Removed and registered again between two rounds: the tracker never saw it gone.
    st.apply(&Command::single(
        3,
        Operation::RemoveNode {
            node_id: "a".into(),
        },
    ))
    .unwrap();
    st.apply(&Command::single(
        3,
        Operation::RegisterNode {
            node_id: "a".into(),
            address: "127.0.0.1:9".into(),
            labels: None,
        },
    ))
    .unwrap();
    let d = round(&mut t, &mut st, &[fail("a", 4, "x")]);
    assert_eq!(d.verdicts[0].failure_count, 1);
    assert_eq!(health(&st, "a"), Health::Degraded);
}

#[test]
fn a_node_checked_twice_counts_once_with_its_last_check() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    let d = round(&mut t, &mut st, &[fail("a", 1, "x"), pass("a", 2)]);
    assert_eq!(d.verdicts.len(), 1);
    assert_eq!(health(&st, "a"), Health::Healthy);
}

#[test]
fn last_seen_never_goes_back() {
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[pass("a", 50)]);
    let d = round(&mut t, &mut st, &[pass("a", 40)]);
    assert_eq!(d.verdicts[0].last_seen, 50);
}

#[test]
fn long_errors_are_cut_to_the_model_limit() {
    let long = "é".repeat(MAX_ERROR_LEN * 2);
    let cut = truncate_error(&long);
    assert_eq!(cut.chars().count(), MAX_ERROR_LEN);
    assert!(cut.ends_with('…'));
    assert_eq!(truncate_error("short"), "short");
    let exact = "x".repeat(MAX_ERROR_LEN);
    assert_eq!(truncate_error(&exact), exact);
    let mut st = topology(&["a"]);
    let mut t = Tracker::new(T3_2);
    round(&mut t, &mut st, &[fail("a", 1, &long)]);
    assert_eq!(
        st.node("a").unwrap().last_error.as_deref().map(str::len),
        Some(cut.len())
    );
}

/// What the health rules say the health after `outcomes` must be, from the rules alone.
fn rules_say(outcomes: &[bool], passes_since_failover: usize, t: Thresholds) -> Option<Health> {
    let trailing = |want: bool| outcomes.iter().rev().take_while(|o| **o == want).count();
    match outcomes.last() {
        None => Some(Health::Unknown),
        Some(false) if trailing(false) >= t.failure as usize => Some(Health::Unhealthy),
        Some(true) if !outcomes.contains(&false) => Some(Health::Healthy),
        Some(true) if passes_since_failover >= t.success as usize => Some(Health::Healthy),
        // Degraded or unhealthy, depending on the history: checked below.
        _ => None,
    }
}

#[test]
fn every_sequence_of_outcomes_follows_the_rules_across_failovers() {
    for failure in 1..=3 {
        for success in 1..=3 {
            let t = Thresholds { failure, success };
            for len in 0..=7usize {
                for bits in 0u32..(1 << len) {
                    let outcomes: Vec<bool> = (0..len).map(|i| bits & (1 << i) != 0).collect();
                    for failover_at in 0..=len {
                        check_sequence(&outcomes, failover_at, t);
                    }
                }
            }
        }
    }
}

/// Runs `outcomes` (true = pass) with a new tracker (a new leader) from
/// `failover_at` on, and checks every round against the rules.
fn check_sequence(outcomes: &[bool], failover_at: usize, t: Thresholds) {
    let mut st = topology(&["n"]);
    let mut tracker = Tracker::new(t);
    let mut ever_unhealthy_run = false;
    for (i, passed) in outcomes.iter().enumerate() {
        if i == failover_at {
            tracker = Tracker::new(t);
        }
        let before = st.node("n").unwrap().clone();
        let check = if *passed {
            pass("n", i as u64 + 1)
        } else {
            fail("n", i as u64 + 1, "down")
        };
        let d = round(&mut tracker, &mut st, &[check]);
        let after = st.node("n").unwrap().clone();
        let seen = &outcomes[..=i];
        let ctx = format!("{t:?} outcomes {seen:?} failover at {failover_at}");
        let trailing_fails = seen.iter().rev().take_while(|o| !**o).count();
        ever_unhealthy_run |= trailing_fails >= t.failure as usize;
        // The pass streak is not replicated: a new leader counts passes from scratch.
        let since = if failover_at <= i { failover_at } else { 0 };
        let passes_since_failover = seen[since..].iter().rev().take_while(|o| **o).count();
        // At most one update, and only when something that matters changed.
        assert!(d.updates.len() <= 1, "{ctx}");
        let changed = before.health != after.health || before.failure_count != after.failure_count;
        assert_eq!(d.updates.is_empty(), !changed, "{ctx}");
        if let Some(h) = rules_say(seen, passes_since_failover, t) {
            assert_eq!(after.health, h, "{ctx}");
        }
        match after.health {
            Health::Unknown => panic!("a checked node is never unknown: {ctx}"),
            Health::Healthy => assert!(*passed, "{ctx}"),
            Health::Degraded => {
                assert!(trailing_fails < t.failure as usize, "{ctx}");
                // The committed count is exact while degraded (a new leader needs it).
                assert_eq!(after.failure_count as usize, trailing_fails, "{ctx}");
            }
            Health::Unhealthy => assert!(ever_unhealthy_run, "{ctx}"),
        }
        if !*passed {
            assert_ne!(after.health, Health::Healthy, "{ctx}");
            assert_eq!(after.last_error.as_deref(), Some("down"), "{ctx}");
        }
    }
}
