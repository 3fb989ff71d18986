use std::time::{Duration, Instant};

use super::*;

fn op(t0: Instant, client: usize, from_ms: u64, to_ms: u64, op: Op, ret: Ret) -> Recorded {
    Recorded {
        client,
        op,
        invoked: t0 + Duration::from_millis(from_ms),
        returned: Some((t0 + Duration::from_millis(to_ms), ret)),
    }
}

/// `n` sequential writes from version `from`, 10 ms apart, each 5 ms long.
fn writes(t0: Instant, start_ms: u64, from: u64, n: u64) -> Vec<Recorded> {
    (0..n)
        .map(|i| {
            let at = start_ms + 10 * i;
            op(t0, 0, at, at + 5, Op::Write, Ret::Written(from + i + 1))
        })
        .collect()
}

#[test]
fn windows_are_cut_only_where_nothing_is_in_flight() {
    let t0 = Instant::now();
    let mut ops = writes(t0, 0, 0, WINDOW_MIN as u64);
    // A read spanning the end of the writes and the next write: no cut there.
    let end = 10 * WINDOW_MIN as u64;
    ops.push(op(
        t0,
        1,
        end - 8,
        end + 20,
        Op::Read,
        Ret::Read(WINDOW_MIN as u64),
    ));
    ops.push(op(
        t0,
        0,
        end + 10,
        end + 15,
        Op::Write,
        Ret::Written(WINDOW_MIN as u64 + 1),
    ));
    ops.push(op(
        t0,
        0,
        end + 30,
        end + 35,
        Op::Write,
        Ret::Written(WINDOW_MIN as u64 + 2),
    ));
    let cut = windows(ops);
    assert_eq!(cut.len(), 2);
    assert_eq!(cut[0].len(), WINDOW_MIN + 2);
    assert_eq!(cut[1].len(), 1);
}

#[test]
fn windows_carry_the_register_and_a_stale_read_is_a_violation() {
    let t0 = Instant::now();
    let first = writes(t0, 0, 5, 3);
    let fresh = vec![op(t0, 1, 100, 110, Op::Read, Ret::Read(8))];
    let checked = check_windows(5, vec![first.clone(), fresh]);
    assert_eq!(
        (checked.windows, checked.violations, checked.unchecked),
        (2, 0, 0)
    );

    // A read that starts after version 8 was acknowledged must not see 7.
    let stale = vec![op(t0, 1, 100, 110, Op::Read, Ret::Read(7))];
    let checked = check_windows(5, vec![first.clone(), stale]);
    assert_eq!(checked.violations, 1, "{:?}", checked.details);
    assert!(checked.details[0].contains("window 1 from version 8"));

    // A CAS acknowledged against a version that was not current.
    let bad_cas = vec![op(t0, 1, 100, 110, Op::Cas(6), Ret::Written(9))];
    assert_eq!(check_windows(5, vec![first, bad_cas]).violations, 1);
}

#[test]
fn sse_gaps_duplicates_and_reorders_are_counted_and_a_reset_resyncs() {
    use SseItem::*;
    let ev = |version| Event {
        version,
        completes: true,
    };
    let clean = [
        Resume { from: 3 },
        ev(4),
        ev(5),
        Resume { from: 5 },
        Reset { version: 9 },
        ev(10),
    ];
    assert_eq!(sse_counts(3, &clean), (0, 0, 0, 10));
    assert_eq!(sse_counts(3, &[ev(4), ev(6)]).0, 1);
    assert_eq!(sse_counts(3, &[ev(4), ev(4)]).1, 1);
    assert_eq!(sse_counts(3, &[ev(4), ev(5), ev(3)]).2, 1);
    assert_eq!(sse_counts(3, &[ev(4), Reset { version: 2 }]).2, 1);
    // Resuming from anywhere but the last version is a gap.
    assert_eq!(sse_counts(3, &[ev(4), Resume { from: 7 }]).0, 1);
}

#[test]
fn resource_means_cover_only_their_slice_and_server() {
    let s = |at, server, rss, fds| Sample {
        at,
        server,
        pid: 7,
        rss,
        fds,
    };
    let samples = [
        s(0.0, 1, 100, 10),
        s(1.0, 1, 300, 20),
        s(9.5, 1, 500, 30),
        s(0.5, 2, 9, 9),
    ];
    assert_eq!(mean(&samples, 1, 0.0, 2.0), Some((200.0, 15.0)));
    assert_eq!(mean(&samples, 1, 9.0, f64::MAX), Some((500.0, 30.0)));
    assert_eq!(mean(&samples, 3, 0.0, 10.0), None);
}

#[test]
fn growth_is_judged_only_on_a_process_that_lived_through_the_whole_run() {
    let s = |at, server, pid, rss| Sample {
        at,
        server,
        pid,
        rss,
        fds: 20,
    };
    let samples = [
        s(5.0, 1, 7, 50),
        s(25.0, 1, 7, 100),
        s(95.0, 1, 7, 130),
        s(25.0, 2, 8, 100),
        s(95.0, 2, 9, 100),
    ];
    let one = growth(&samples, 1, 100.0).expect("server 1 ran as one process");
    assert_eq!(
        (one.pid, one.rss, one.fds),
        (7, (100.0, 130.0), (20.0, 20.0))
    );
    // Restarted: its curve is a saw-tooth, not a growth measurement.
    assert!(growth(&samples, 2, 100.0).is_none());
    assert!(growth(&samples, 3, 100.0).is_none());
}
