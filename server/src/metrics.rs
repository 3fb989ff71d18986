//! Counters and latency histograms, rendered in the Prometheus text format.
//!
//! Each executor owns its own [`ExecutorMetrics`] (written by that thread alone, so
//! the relaxed atomics never bounce between cores); `/metrics` sums them at scrape
//! time together with the process-wide gauges of [`crate::publish::RaftView`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Route classes counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    Read,
    Subscribe,
    Write,
    Cluster,
    Probe,
    Other,
}

const CLASSES: [(RouteClass, &str); 6] = [
    (RouteClass::Read, "read"),
    (RouteClass::Subscribe, "subscribe"),
    (RouteClass::Write, "write"),
    (RouteClass::Cluster, "cluster"),
    (RouteClass::Probe, "probe"),
    (RouteClass::Other, "other"),
];

/// Status families counted per class.
const STATUS_FAMILIES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the latency buckets, microseconds.
const BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
}

/// The metrics one executor writes.
#[derive(Default)]
pub struct ExecutorMetrics {
    responses: [[AtomicU64; STATUS_FAMILIES.len()]; CLASSES.len()],
    latency: [Histogram; CLASSES.len()],
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    sse_dropped: AtomicU64,
    sse_resets: AtomicU64,
}

fn class_index(class: RouteClass) -> usize {
    CLASSES
        .iter()
        .position(|(c, _)| *c == class)
        .expect("every class is listed")
}

impl ExecutorMetrics {
    pub fn record(&self, class: RouteClass, status: u16, elapsed: Duration) {
        let c = class_index(class);
        let family = (status / 100).clamp(2, 5) as usize - 2;
        self.responses[c][family].fetch_add(1, Relaxed);
        self.latency[c].observe(elapsed);
    }

    pub fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Relaxed);
    }

    /// A subscriber disconnected for falling behind.
    pub fn sse_dropped(&self) {
        self.sse_dropped.fetch_add(1, Relaxed);
    }

    /// A subscriber sent a `Reset` (its resume point was older than the history).
    pub fn sse_reset(&self) {
        self.sse_resets.fetch_add(1, Relaxed);
    }
}

/// Gauges that come from outside the executors, read at scrape time.
pub struct Gauges {
    pub version: u64,
    pub term: u64,
    pub leader: u64,
    pub is_leader: bool,
    pub applied_index: u64,
    pub shards: usize,
    pub nodes: usize,
    pub executors: usize,
    pub sse_subscribers: usize,
}

/// Renders every executor's metrics plus the gauges as Prometheus text.
pub fn render(all: &[Arc<ExecutorMetrics>], gauges: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    let sum = |f: &dyn Fn(&ExecutorMetrics) -> u64| all.iter().map(|m| f(m)).sum::<u64>();

    out.push_str(
        "# HELP concord_http_responses_total HTTP responses by route class and status family.\n",
    );
    out.push_str("# TYPE concord_http_responses_total counter\n");
    for (ci, (_, class)) in CLASSES.iter().enumerate() {
        for (fi, family) in STATUS_FAMILIES.iter().enumerate() {
            let n = sum(&|m| m.responses[ci][fi].load(Relaxed));
            let _ = writeln!(
                out,
                "concord_http_responses_total{{class=\"{class}\",status=\"{family}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP concord_http_request_duration_seconds Time to produce a response.\n");
    out.push_str("# TYPE concord_http_request_duration_seconds histogram\n");
    for (ci, (_, class)) in CLASSES.iter().enumerate() {
        let mut cumulative = 0;
        for (bi, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += sum(&|m| m.latency[ci].buckets[bi].load(Relaxed));
            let _ = writeln!(
                out,
                "concord_http_request_duration_seconds_bucket{{class=\"{class}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = sum(&|m| m.latency[ci].count.load(Relaxed));
        let sum_us = sum(&|m| m.latency[ci].sum_us.load(Relaxed));
        let _ = writeln!(
            out,
            "concord_http_request_duration_seconds_bucket{{class=\"{class}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "concord_http_request_duration_seconds_sum{{class=\"{class}\"}} {}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "concord_http_request_duration_seconds_count{{class=\"{class}\"}} {count}"
        );
    }
    let opened = sum(&|m| m.connections_opened.load(Relaxed));
    let closed = sum(&|m| m.connections_closed.load(Relaxed));
    let sse_dropped = sum(&|m| m.sse_dropped.load(Relaxed));
    let sse_resets = sum(&|m| m.sse_resets.load(Relaxed));
    let gauges_list: [(&str, &str, &str, u64); 13] = [
        (
            "concord_sse_subscribers",
            "gauge",
            "SSE subscribers connected now.",
            gauges.sse_subscribers as u64,
        ),
        (
            "concord_sse_dropped_total",
            "counter",
            "Subscribers disconnected for falling behind.",
            sse_dropped,
        ),
        (
            "concord_sse_resets_total",
            "counter",
            "Reset events sent (resume older than the history).",
            sse_resets,
        ),
        (
            "concord_http_connections_opened_total",
            "counter",
            "Connections accepted.",
            opened,
        ),
        (
            "concord_http_connections_open",
            "gauge",
            "Connections open now.",
            opened.saturating_sub(closed),
        ),
        (
            "concord_topology_version",
            "gauge",
            "Topology version published on this server.",
            gauges.version,
        ),
        (
            "concord_topology_shards",
            "gauge",
            "Shards in the published topology.",
            gauges.shards as u64,
        ),
        (
            "concord_topology_nodes",
            "gauge",
            "Data nodes in the published topology.",
            gauges.nodes as u64,
        ),
        (
            "concord_raft_term",
            "gauge",
            "Current Raft term.",
            gauges.term,
        ),
        (
            "concord_raft_leader_id",
            "gauge",
            "Raft leader id (0 = none known).",
            gauges.leader,
        ),
        (
            "concord_raft_is_leader",
            "gauge",
            "1 when this server leads.",
            gauges.is_leader as u64,
        ),
        (
            "concord_raft_applied_index",
            "gauge",
            "Last applied Raft log index.",
            gauges.applied_index,
        ),
        (
            "concord_executors",
            "gauge",
            "Serving executors (threads).",
            gauges.executors as u64,
        ),
    ];
    for (name, kind, help, value) in gauges_list {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}

/// Health-probe metrics. Written by the health monitor on the control executor alone
/// (so, like [`ExecutorMetrics`], its relaxed atomics never bounce between cores);
/// read by `/metrics` and `/api/topology/stats` on any executor.
#[derive(Default)]
pub struct ProbeMetrics {
    /// [kind: http, tcp][result: pass, fail]
    probes: [[AtomicU64; 2]; 2],
    latency: Histogram,
    rounds: AtomicU64,
    commits: AtomicU64,
    monitoring: std::sync::atomic::AtomicBool,
    last_round_at_ms: AtomicU64,
    last_round_duration_us: AtomicU64,
    last_round_nodes: AtomicU64,
    last_round_failed: AtomicU64,
}

/// The health part of `/api/topology/stats`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// True while this server leads and probes.
    pub monitoring: bool,
    pub rounds: u64,
    /// Wall-clock time (ms) the last round of this server finished; 0 = none yet.
    pub last_round_at: u64,
    pub last_round_duration_ms: u64,
    pub last_round_nodes: u64,
    pub last_round_failed: u64,
    pub probes: u64,
    pub probe_failures: u64,
    /// Change sets the monitor committed.
    pub commits: u64,
}

impl ProbeMetrics {
    /// One check: `http` selects the kind, `passed` the result.
    pub fn probe(&self, http: bool, passed: bool, elapsed: Duration) {
        self.probes[usize::from(!http)][usize::from(!passed)].fetch_add(1, Relaxed);
        self.latency.observe(elapsed);
    }

    pub fn round(&self, finished_at_ms: u64, took: Duration, nodes: usize, failed: usize) {
        self.rounds.fetch_add(1, Relaxed);
        self.last_round_at_ms.store(finished_at_ms, Relaxed);
        self.last_round_duration_us
            .store(took.as_micros() as u64, Relaxed);
        self.last_round_nodes.store(nodes as u64, Relaxed);
        self.last_round_failed.store(failed as u64, Relaxed);
    }

    pub fn committed(&self) {
        self.commits.fetch_add(1, Relaxed);
    }

    pub fn set_monitoring(&self, on: bool) {
        self.monitoring.store(on, Relaxed);
    }

    pub fn summary(&self) -> HealthSummary {
        let total = |result: usize| {
            self.probes[0][result].load(Relaxed) + self.probes[1][result].load(Relaxed)
        };
        HealthSummary {
            monitoring: self.monitoring.load(Relaxed),
            rounds: self.rounds.load(Relaxed),
            last_round_at: self.last_round_at_ms.load(Relaxed),
            last_round_duration_ms: self.last_round_duration_us.load(Relaxed) / 1000,
            last_round_nodes: self.last_round_nodes.load(Relaxed),
            last_round_failed: self.last_round_failed.load(Relaxed),
            probes: total(0) + total(1),
            probe_failures: total(1),
            commits: self.commits.load(Relaxed),
        }
    }
}

/// Appends the health-probe metrics to a `/metrics` answer.
pub fn render_probes(out: &mut String, probes: &ProbeMetrics) {
    out.push_str(
        "# HELP concord_health_probes_total Data-node health checks by probe and result.\n",
    );
    out.push_str("# TYPE concord_health_probes_total counter\n");
    for (ki, kind) in ["http", "tcp"].iter().enumerate() {
        for (ri, result) in ["pass", "fail"].iter().enumerate() {
            let n = probes.probes[ki][ri].load(Relaxed);
            let _ = writeln!(
                out,
                "concord_health_probes_total{{probe=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
    }
    out.push_str(
        "# HELP concord_health_probe_duration_seconds Duration of a check's last attempt.\n",
    );
    out.push_str("# TYPE concord_health_probe_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (bi, bound) in BUCKETS_US.iter().enumerate() {
        cumulative += probes.latency.buckets[bi].load(Relaxed);
        let _ = writeln!(
            out,
            "concord_health_probe_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let count = probes.latency.count.load(Relaxed);
    let _ = writeln!(
        out,
        "concord_health_probe_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "concord_health_probe_duration_seconds_sum {}",
        probes.latency.sum_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "concord_health_probe_duration_seconds_count {count}");
    let s = probes.summary();
    let list: [(&str, &str, &str, u64); 4] = [
        (
            "concord_health_rounds_total",
            "counter",
            "Health rounds run by this server.",
            s.rounds,
        ),
        (
            "concord_health_commits_total",
            "counter",
            "Change sets of health transitions committed by this server.",
            s.commits,
        ),
        (
            "concord_health_monitoring",
            "gauge",
            "1 while this server (the leader) probes data nodes.",
            u64::from(s.monitoring),
        ),
        (
            "concord_health_last_round_failed",
            "gauge",
            "Failed checks in the last round.",
            s.last_round_failed,
        ),
    ];
    for (name, kind, help, value) in list {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_executors_and_buckets_cumulatively() {
        let a = Arc::new(ExecutorMetrics::default());
        let b = Arc::new(ExecutorMetrics::default());
        a.record(RouteClass::Read, 200, Duration::from_micros(40));
        b.record(RouteClass::Read, 304, Duration::from_micros(400));
        b.record(RouteClass::Write, 409, Duration::from_millis(3));
        a.connection_opened();
        let text = render(
            &[a, b],
            &Gauges {
                version: 7,
                term: 2,
                leader: 1,
                is_leader: true,
                applied_index: 9,
                shards: 64,
                nodes: 6,
                executors: 2,
                sse_subscribers: 3,
            },
        );
        assert!(text.contains("concord_http_responses_total{class=\"read\",status=\"2xx\"} 1"));
        assert!(text.contains("concord_http_responses_total{class=\"read\",status=\"3xx\"} 1"));
        assert!(text.contains("concord_http_responses_total{class=\"write\",status=\"4xx\"} 1"));
        assert!(text.contains(
            "concord_http_request_duration_seconds_bucket{class=\"read\",le=\"0.00005\"} 1"
        ));
        assert!(text.contains(
            "concord_http_request_duration_seconds_bucket{class=\"read\",le=\"0.0005\"} 2"
        ));
        assert!(text.contains("concord_http_request_duration_seconds_count{class=\"read\"} 2"));
        assert!(text.contains("concord_topology_version 7"));
        assert!(text.contains("concord_http_connections_open 1"));
        assert!(text.contains("concord_sse_subscribers 3"));
    }

    #[test]
    fn probe_metrics_count_by_kind_and_result() {
        let p = ProbeMetrics::default();
        p.probe(true, true, Duration::from_micros(300));
        p.probe(false, false, Duration::from_millis(2));
        p.round(1234, Duration::from_millis(7), 2, 1);
        p.committed();
        let mut text = String::new();
        render_probes(&mut text, &p);
        assert!(text.contains("concord_health_probes_total{probe=\"http\",result=\"pass\"} 1"));
        assert!(text.contains("concord_health_probes_total{probe=\"tcp\",result=\"fail\"} 1"));
        assert!(text.contains("concord_health_probe_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("concord_health_probe_duration_seconds_count 2"));
        assert!(text.contains("concord_health_rounds_total 1"));
        let s = p.summary();
        assert_eq!((s.probes, s.probe_failures, s.commits), (2, 1, 1));
        assert_eq!((s.last_round_at, s.last_round_duration_ms), (1234, 7));
    }
}
