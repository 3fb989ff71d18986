//! Hand-made histories for the checker: what a correct server may answer passes, what
//! a broken one would answer (stale reads, lost writes, double CAS) fails.

use std::time::{Duration, Instant};

use super::*;

/// Builds histories on a millisecond time line.
struct History {
    start: Instant,
    ops: Vec<Recorded>,
}

impl History {
    fn new() -> History {
        History {
            start: Instant::now(),
            ops: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// `client` ran `op` from `from` to `to` (ms) and got `ret`.
    fn op(mut self, client: usize, op: Op, from: u64, to: u64, ret: Ret) -> History {
        self.ops.push(Recorded {
            client,
            op,
            invoked: self.at(from),
            returned: Some((self.at(to), ret)),
        });
        self
    }

    /// `client` sent `op` at `from` and never learnt what happened.
    fn unknown(mut self, client: usize, op: Op, from: u64) -> History {
        self.ops.push(Recorded {
            client,
            op,
            invoked: self.at(from),
            returned: None,
        });
        self
    }

    fn check(&self) -> Result<Vec<(Op, Ret)>, Violation> {
        check(0, &self.ops)
    }

    fn assert_rejected(&self) {
        match self.check() {
            Err(Violation::NotLinearizable { .. }) => {}
            other => panic!("expected a violation, got {other:?}"),
        }
    }
}

#[test]
fn the_model_counts_versions_and_refuses_stale_cas() {
    let mut register = VersionRegister { version: 4 };
    assert_eq!(register.invoke(&Op::Write), Ret::Written(5));
    assert_eq!(register.invoke(&Op::Cas(4)), Ret::Conflict);
    assert_eq!(register.invoke(&Op::Read), Ret::Read(5));
    assert_eq!(register.invoke(&Op::Cas(5)), Ret::Written(6));
    assert_eq!(register.version, 6);
}

#[test]
fn a_concurrent_linearizable_history_passes_with_an_order() {
    // Two overlapping writes (either may be first), a read overlapping both, a CAS
    // that lost the race, and a read after everything.
    let h = History::new()
        .op(0, Op::Write, 0, 10, Ret::Written(2))
        .op(1, Op::Write, 2, 8, Ret::Written(1))
        .op(2, Op::Read, 1, 9, Ret::Read(1))
        .op(2, Op::Cas(1), 11, 15, Ret::Conflict)
        .op(1, Op::Cas(2), 12, 20, Ret::Written(3))
        .op(0, Op::Read, 21, 22, Ret::Read(3));
    let order = h.check().expect("linearizable");
    assert_eq!(order.len(), 6);
    assert_eq!(order.last(), Some(&(Op::Read, Ret::Read(3))));
}

#[test]
fn a_stale_read_after_an_acknowledged_write_fails() {
    History::new()
        .op(0, Op::Write, 0, 5, Ret::Written(1))
        .op(1, Op::Read, 6, 7, Ret::Read(0))
        .assert_rejected();
    // The same read overlapping the write is fine.
    History::new()
        .op(0, Op::Write, 0, 5, Ret::Written(1))
        .op(1, Op::Read, 4, 7, Ret::Read(0))
        .check()
        .expect("concurrent read may see the old version");
}

#[test]
fn a_lost_acknowledged_write_fails() {
    // The second write reuses version 1: the first acknowledged write is gone.
    History::new()
        .op(0, Op::Write, 0, 5, Ret::Written(1))
        .op(1, Op::Write, 6, 9, Ret::Written(1))
        .assert_rejected();
    // Or a later read sees less than two acknowledged writes produced.
    History::new()
        .op(0, Op::Write, 0, 5, Ret::Written(1))
        .op(1, Op::Write, 6, 9, Ret::Written(2))
        .op(2, Op::Read, 10, 11, Ret::Read(1))
        .assert_rejected();
}

#[test]
fn two_cas_on_the_same_expected_version_both_succeeding_fails() {
    History::new()
        .op(0, Op::Cas(0), 0, 10, Ret::Written(1))
        .op(1, Op::Cas(0), 1, 9, Ret::Written(1))
        .assert_rejected();
    // Even when the second claims the next version.
    History::new()
        .op(0, Op::Cas(0), 0, 10, Ret::Written(1))
        .op(1, Op::Cas(0), 1, 9, Ret::Written(2))
        .assert_rejected();
    // One winner, one conflict is the correct outcome.
    History::new()
        .op(0, Op::Cas(0), 0, 10, Ret::Written(1))
        .op(1, Op::Cas(0), 1, 9, Ret::Conflict)
        .check()
        .expect("one CAS wins");
}

#[test]
fn an_indeterminate_write_may_take_effect_later_or_never() {
    // Taken effect: seen by a read long after the client gave up on it.
    let order = History::new()
        .unknown(0, Op::Write, 0)
        .op(0, Op::Read, 50, 51, Ret::Read(0))
        .op(1, Op::Read, 100, 101, Ret::Read(1))
        .check()
        .expect("the lost answer's write applied late");
    assert!(order.contains(&(Op::Write, Ret::Written(1))));
    // Never taken effect.
    let order = History::new()
        .unknown(0, Op::Write, 0)
        .op(1, Op::Read, 100, 101, Ret::Read(0))
        .op(1, Op::Write, 102, 103, Ret::Written(1))
        .check()
        .expect("the lost answer's write never applied");
    assert_eq!(order.len(), 2);
    // An indeterminate CAS that applied explains a later conflict on its version.
    History::new()
        .unknown(0, Op::Cas(0), 0)
        .op(1, Op::Cas(0), 10, 11, Ret::Conflict)
        .op(1, Op::Read, 12, 13, Ret::Read(1))
        .check()
        .expect("indeterminate CAS applied");
}

#[test]
fn an_indeterminate_write_cannot_apply_before_it_was_sent_or_be_undone() {
    History::new()
        .op(1, Op::Read, 0, 1, Ret::Read(1))
        .unknown(0, Op::Write, 5)
        .assert_rejected();
    History::new()
        .unknown(0, Op::Write, 0)
        .op(1, Op::Read, 10, 11, Ret::Read(1))
        .op(2, Op::Read, 12, 13, Ret::Read(0))
        .assert_rejected();
    // Two unknown writes cannot explain three versions.
    History::new()
        .unknown(0, Op::Write, 0)
        .unknown(1, Op::Write, 0)
        .op(2, Op::Read, 10, 11, Ret::Read(3))
        .assert_rejected();
}

#[test]
fn overlapping_operations_of_one_client_are_malformed() {
    let result = History::new()
        .op(0, Op::Write, 0, 10, Ret::Written(1))
        .op(0, Op::Read, 5, 6, Ret::Read(1))
        .check();
    assert!(matches!(result, Err(Violation::Malformed(_))), "{result:?}");
}

/// A history of a correct register: every operation takes effect at a random point
/// between its invocation and its return; one in `lost_in` loses its answer, half of
/// those without taking effect (kept in the history only when `keep_unapplied`).
fn simulated(
    clients: usize,
    per_client: usize,
    seed: u64,
    lost_in: u8,
    keep_unapplied: bool,
) -> Vec<Recorded> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = Instant::now();
    let at = |us: u64| start + Duration::from_micros(us);
    // (effect time if it took effect, the op, its index in `ops`)
    let mut effects: Vec<(u64, usize)> = Vec::new();
    let mut ops = Vec::new();
    let mut returns = Vec::new();
    for client in 0..clients {
        let mut clock = rng.u64(0..50);
        for _ in 0..per_client {
            let invoked = clock + rng.u64(1..50);
            let effect = invoked + rng.u64(1..200);
            let returned = effect + rng.u64(1..200);
            clock = returned;
            let op = match rng.u8(0..3) {
                0 => Op::Write,
                1 => Op::Cas(0), // expected filled in below
                _ => Op::Read,
            };
            let lost = lost_in > 0 && rng.u8(0..lost_in) == 0;
            if !(lost && rng.bool()) {
                effects.push((effect, ops.len()));
            } else if !keep_unapplied || op == Op::Read {
                clock = invoked + 1;
                continue;
            }
            ops.push(Recorded {
                client,
                op,
                invoked: at(invoked),
                returned: None,
            });
            returns.push((returned, lost));
        }
    }
    effects.sort_unstable();
    let mut register = VersionRegister::default();
    for (_, index) in effects {
        if let Op::Cas(_) = ops[index].op {
            // Usually the current version, sometimes a stale one.
            let expected = register.version.saturating_sub(rng.u64(0..2));
            ops[index].op = Op::Cas(expected);
        }
        let ret = register.invoke(&ops[index].op);
        let (returned, lost) = returns[index];
        if !lost {
            ops[index].returned = Some((at(returned), ret));
        }
    }
    ops
}

#[test]
fn a_simulated_history_of_hundreds_of_operations_checks_in_seconds() {
    // Unknown outcomes that never applied multiply the search (each may be placed
    // anywhere, or nowhere); the cluster tests drop those the servers' committed
    // history proves unapplied, as here.
    for seed in 0..3 {
        let history = simulated(4, 80, seed, 10, false);
        let started = Instant::now();
        let order = check(0, &history).expect("a correct register is linearizable");
        let took = started.elapsed();
        assert!(order.len() >= 250, "{} operations ordered", order.len());
        assert!(took < Duration::from_secs(20), "seed {seed}: {took:?}");
    }
    // Unapplied unknown outcomes kept, on a smaller history.
    for seed in 0..3 {
        let history = simulated(4, 20, seed, 10, true);
        check(0, &history).expect("a correct register is linearizable");
    }
}
