//! Clock jumps: the leader's wall clock steps an hour ahead, later an hour back
//! (libfaketime, preloaded into every server, each reading its own offset file;
//! monotonic clocks are left alone, as an NTP step leaves them).
//!
//! Asserted: the history stays linearizable; a jump changes neither the leader nor
//! the term (Raft's timers run on the monotonic clock); the topology timestamp goes
//! back only for changes made while a clock was off, and stays within the jumped
//! clocks' reach; once every clock is right again, the next change is stamped
//! within [`MAX_TIMESTAMP_LEAD_MS`] of the real time (a jump does not stick).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concord_model::MAX_TIMESTAMP_LEAD_MS;

use crate::cluster_support::{all_events, put_node, Node};
use crate::fault_schedule::{clock_file, Fault, CLOCK_CACHE_SECS};
use crate::linearizable::{run_checked_history, Plan};

const HOUR_MS: u64 = 3_600_000;

/// How far apart the test's clock and a server's may be in these checks.
const SLACK_MS: u64 = 5_000;

/// libfaketime's preload library, where Debian and Ubuntu install it.
fn libfaketime() -> Option<PathBuf> {
    ["x86_64-linux-gnu", "aarch64-linux-gnu", ""]
        .iter()
        .map(|arch| {
            Path::new("/usr/lib")
                .join(arch)
                .join("faketime/libfaketimeMT.so.1")
        })
        .find(|p| p.exists())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// `(version, timestamp)` of every change a server holds, by version.
fn stamps(node: &Node) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in all_events(node) {
        let version = e["version"].as_u64().expect("version");
        let timestamp = e["timestamp"].as_u64().expect("timestamp");
        if out.last().is_none_or(|(v, _)| *v != version) {
            out.push((version, timestamp));
        }
    }
    out
}

#[test]
fn leader_clock_jumps_keep_the_history_linearizable_and_the_timestamp_clamped() {
    let Some(library) = libfaketime() else {
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install -y faketime)");
        return;
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let clocks = temp.path().to_path_buf();
    for id in 1..=3 {
        std::fs::write(clock_file(&clocks, id), "+0").expect("faketime file");
    }
    let env = |id: u64| {
        vec![
            ("LD_PRELOAD".to_string(), library.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".to_string(),
                clock_file(&clocks, id).display().to_string(),
            ),
            (
                "FAKETIME_CACHE_DURATION".to_string(),
                CLOCK_CACHE_SECS.to_string(),
            ),
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
        ]
    };
    let started = now_ms();
    let checked = run_checked_history(&Plan {
        env: &env,
        duration: Duration::from_secs(16),
        ..Plan::new(3, 3, &[Fault::ClockJump(clocks.clone())])
    });
    let faults = &checked.faults;
    eprintln!("clock jumps: {faults:?}");
    assert!(faults.clock_windows.len() >= 2, "{faults:?}");
    assert_eq!(
        faults.elections_during_jumps, 0,
        "a wall-clock jump disturbed the leader: {faults:?}"
    );

    // Every clock is right again: the next change is stamped near the real time.
    let cluster = &checked.cluster;
    let leader = cluster.leader(Duration::from_secs(20));
    let before = now_ms();
    let version = put_node(cluster.node(leader).client, "after-the-jumps", None)
        .expect("a write after the jumps");
    let after = now_ms();
    let stamped = stamps(cluster.node(leader));
    let &(_, last) = stamped
        .iter()
        .find(|(v, _)| *v == version)
        .expect("the last change's event");
    assert!(
        last + SLACK_MS >= before && last <= after + MAX_TIMESTAMP_LEAD_MS + SLACK_MS,
        "the change at {version} is stamped {last}, real time {before}..{after}: \
         a jumped clock stuck"
    );

    // Going back only where a jumped clock stamped (or right after, being pulled
    // back to the clamp), and never beyond what the clocks could say.
    let jumped = |v: u64| {
        faults
            .clock_windows
            .iter()
            .any(|&(from, to)| v > from && v <= to.saturating_add(1))
    };
    for pair in stamped.windows(2) {
        let ((v1, t1), (v2, t2)) = (pair[0], pair[1]);
        assert!(
            t2 >= t1 || jumped(v2),
            "timestamp went back from {t1} (version {v1}) to {t2} (version {v2}) \
             outside every clock jump {:?}",
            faults.clock_windows
        );
        assert!(
            t2 + HOUR_MS + SLACK_MS >= started && t2 <= after + HOUR_MS + SLACK_MS,
            "version {v2} stamped {t2}, beyond any server's clock ({started}..{after} \
             plus or minus an hour)"
        );
    }
}
