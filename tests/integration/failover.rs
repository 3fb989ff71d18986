//! Failover time — leader SIGKILL to the first acknowledged write — measured over
//! repeated runs with the default Raft timing (heartbeat 50 ms, election timeout
//! 100–200 ms). A measurement, so ignored by default:
//!
//! ```sh
//! FAILOVER_RUNS=30 cargo test -p concord-tests -- --ignored failover --nocapture
//! ```
//!
//! The client behaves like the router client: it sends each write to the next server
//! in turn and moves on at once on a refused connection or a 503. perf/README.md
//! ("Failover") records the numbers.

use std::time::{Duration, Instant};

use crate::cluster_support::{put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// Default Raft timing; the health monitor off (it would add versions).
const DEFAULT_TIMING: &str = "\
topology:
  health_check:
    enabled: false
";

#[test]
#[ignore = "a measurement (about 2 s per run); see perf/README.md, Failover"]
fn failover_time_over_repeated_runs() {
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut cluster = Cluster::start_with(3, false, DEFAULT_TIMING);
    let mut times = Vec::new();
    let mut write = 0usize;
    for run in 0..runs {
        let leader = cluster.leader(WAIT);
        let targets: Vec<_> = cluster.nodes.iter().map(|n| n.client).collect();
        // The cluster is busy: the leader has just acknowledged a write.
        put_node(cluster.node(leader).client, &format!("warm-{run}"), None).expect("warm-up");
        let killed = Instant::now();
        cluster.kill(leader);
        let elapsed = loop {
            let target = targets[write % targets.len()];
            write += 1;
            if put_node(target, &format!("f{write}"), None).is_ok() {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < WAIT,
                "no write accepted {WAIT:?} after the kill"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        eprintln!("run {run}: leader {leader} killed, first write acknowledged after {elapsed:?}");
        times.push(elapsed);
        cluster.restart(leader);
        let ids = cluster.ids();
        let newest = cluster.node(ids[0]).version().map_or(0, |v| v.0);
        cluster.converged(&ids, newest, WAIT);
        // Let the restarted server settle as a follower before the next kill.
        std::thread::sleep(Duration::from_millis(300));
    }
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
    let max = *times.last().unwrap();
    eprintln!(
        "failover over {runs} runs: min {:?}, median {median:?}, p90 {p90:?}, max {max:?}",
        times[0]
    );
    // The issue's goal with default timeouts.
    assert!(
        median < Duration::from_secs(2),
        "median failover {median:?}"
    );
}
