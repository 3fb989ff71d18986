//! Counters and latency histograms, exposed in the Prometheus text format.
//!
//! Each executor owns its own [`ExecutorMetrics`] (written by that thread alone, so
//! the relaxed atomics never bounce between cores, and recording never locks or
//! allocates); `/metrics` sums them at scrape time together with the process-wide
//! gauges of [`crate::executor::RaftView`]. The text itself is written by
//! `prometheus-client`: each scrape hands one [`Collector`] per source to the crate's
//! Prometheus text (0.0.4) encoder, which formats names, labels and values.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

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
#[derive(Clone, Copy, Debug)]
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
    encode_into(
        &mut out,
        ServerCollector {
            executors: all.to_vec(),
            gauges: *gauges,
        },
    );
    out
}

/// Appends what `collector` reports to `out`, in the Prometheus text format (0.0.4).
///
/// That format, unlike OpenMetrics, names a counter family with its `_total` suffix
/// and has no `# EOF` line, so the answer can be built from several collectors.
fn encode_into(out: &mut String, collector: impl Collector) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    prometheus_text::encode(out, &registry)
        .expect("the collectors only write into a String, which cannot fail");
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Starts a metric family. The encoder appends `_total` to a counter's name itself, so
/// `name` is the exposed one and a counter's suffix is taken off before it is handed on.
fn describe<'s>(
    encoder: &'s mut DescriptorEncoder<'_>,
    name: &'s str,
    help: &str,
    kind: MetricType,
) -> Result<MetricEncoder<'s>, fmt::Error> {
    let family = match kind {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    encoder.encode_descriptor(family, help, None, kind)
}

fn encode_counter(metric: &mut MetricEncoder, value: u64) -> fmt::Result {
    metric.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// One unlabelled series.
struct Scalar {
    /// As exposed: a counter's ends in `_total`.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: u64,
}

impl Scalar {
    fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricType::Counter,
            value,
        }
    }

    fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricType::Gauge,
            value,
        }
    }
}

fn encode_scalars(encoder: &mut DescriptorEncoder, scalars: &[Scalar]) -> fmt::Result {
    for s in scalars {
        let mut metric = describe(encoder, s.name, s.help, s.kind)?;
        match s.kind {
            MetricType::Counter => encode_counter(&mut metric, s.value)?,
            _ => metric.encode_gauge(&s.value)?,
        }
    }
    Ok(())
}

/// A histogram's counts at one instant, possibly summed over several writers.
#[derive(Clone, Copy, Debug, Default)]
struct HistogramSnapshot {
    /// Per bucket, not cumulative.
    buckets: [u64; BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

impl HistogramSnapshot {
    fn add(&mut self, histogram: &Histogram) {
        for (total, bucket) in self.buckets.iter_mut().zip(&histogram.buckets) {
            *total += bucket.load(Relaxed);
        }
        self.count += histogram.count.load(Relaxed);
        self.sum_us += histogram.sum_us.load(Relaxed);
    }

    fn of(histogram: &Histogram) -> Self {
        let mut snapshot = Self::default();
        snapshot.add(histogram);
        snapshot
    }

    /// The encoder makes the buckets cumulative and adds `le="+Inf"` (= count) itself,
    /// so observations above the last bound are counted there, as before.
    fn encode(&self, metric: &mut MetricEncoder) -> fmt::Result {
        let buckets: [(f64, u64); BUCKETS_US.len()] =
            std::array::from_fn(|i| (seconds(BUCKETS_US[i]), self.buckets[i]));
        metric.encode_histogram::<NoLabelSet>(seconds(self.sum_us), self.count, &buckets, None)
    }
}

/// The executors' metrics plus the gauges. Holds the executors themselves, not a
/// copy, and sums their atomics when the encoder asks: a scrape reads the counters
/// with relaxed loads and never makes a writer wait.
struct ServerCollector {
    executors: Vec<Arc<ExecutorMetrics>>,
    gauges: Gauges,
}

impl fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCollector")
            .field("executors", &self.executors.len())
            .field("gauges", &self.gauges)
            .finish()
    }
}

impl ServerCollector {
    fn sum(&self, read: impl Fn(&ExecutorMetrics) -> u64) -> u64 {
        self.executors.iter().map(|m| read(m)).sum()
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut responses = describe(
            &mut encoder,
            "concord_http_responses_total",
            "HTTP responses by route class and status family.",
            MetricType::Counter,
        )?;
        for (ci, (_, class)) in CLASSES.iter().enumerate() {
            for (fi, family) in STATUS_FAMILIES.iter().enumerate() {
                let n = self.sum(|m| m.responses[ci][fi].load(Relaxed));
                let labels = [("class", *class), ("status", *family)];
                encode_counter(&mut responses.encode_family(&labels)?, n)?;
            }
        }
        let mut latency = describe(
            &mut encoder,
            "concord_http_request_duration_seconds",
            "Time to produce a response.",
            MetricType::Histogram,
        )?;
        for (ci, (_, class)) in CLASSES.iter().enumerate() {
            let mut histogram = HistogramSnapshot::default();
            for m in &self.executors {
                histogram.add(&m.latency[ci]);
            }
            histogram.encode(&mut latency.encode_family(&[("class", *class)])?)?;
        }
        let opened = self.sum(|m| m.connections_opened.load(Relaxed));
        let closed = self.sum(|m| m.connections_closed.load(Relaxed));
        let g = &self.gauges;
        encode_scalars(
            &mut encoder,
            &[
                Scalar::gauge(
                    "concord_sse_subscribers",
                    "SSE subscribers connected now.",
                    g.sse_subscribers as u64,
                ),
                Scalar::counter(
                    "concord_sse_dropped_total",
                    "Subscribers disconnected for falling behind.",
                    self.sum(|m| m.sse_dropped.load(Relaxed)),
                ),
                Scalar::counter(
                    "concord_sse_resets_total",
                    "Reset events sent (resume older than the history).",
                    self.sum(|m| m.sse_resets.load(Relaxed)),
                ),
                Scalar::counter(
                    "concord_http_connections_opened_total",
                    "Connections accepted.",
                    opened,
                ),
                Scalar::gauge(
                    "concord_http_connections_open",
                    "Connections open now.",
                    opened.saturating_sub(closed),
                ),
                Scalar::gauge(
                    "concord_topology_version",
                    "Topology version published on this server.",
                    g.version,
                ),
                Scalar::gauge(
                    "concord_topology_shards",
                    "Shards in the published topology.",
                    g.shards as u64,
                ),
                Scalar::gauge(
                    "concord_topology_nodes",
                    "Data nodes in the published topology.",
                    g.nodes as u64,
                ),
                Scalar::gauge("concord_raft_term", "Current Raft term.", g.term),
                Scalar::gauge(
                    "concord_raft_leader_id",
                    "Raft leader id (0 = none known).",
                    g.leader,
                ),
                Scalar::gauge(
                    "concord_raft_is_leader",
                    "1 when this server leads.",
                    u64::from(g.is_leader),
                ),
                Scalar::gauge(
                    "concord_raft_applied_index",
                    "Last applied Raft log index.",
                    g.applied_index,
                ),
                Scalar::gauge(
                    "concord_executors",
                    "Serving executors (threads).",
                    g.executors as u64,
                ),
            ],
        )
    }
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
    encode_into(
        out,
        ProbeCollector {
            probes: std::array::from_fn(|k| {
                std::array::from_fn(|r| probes.probes[k][r].load(Relaxed))
            }),
            latency: HistogramSnapshot::of(&probes.latency),
            summary: probes.summary(),
        },
    );
}

/// The health-probe metrics, copied at scrape time: a collector must own what it
/// reports, and [`ProbeMetrics`] lives inside the server's shared state.
#[derive(Debug)]
struct ProbeCollector {
    /// [kind: http, tcp][result: pass, fail], as in [`ProbeMetrics`].
    probes: [[u64; 2]; 2],
    latency: HistogramSnapshot,
    summary: HealthSummary,
}

impl Collector for ProbeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut checks = describe(
            &mut encoder,
            "concord_health_probes_total",
            "Data-node health checks by probe and result.",
            MetricType::Counter,
        )?;
        for (ki, kind) in ["http", "tcp"].iter().enumerate() {
            for (ri, result) in ["pass", "fail"].iter().enumerate() {
                let labels = [("probe", *kind), ("result", *result)];
                encode_counter(&mut checks.encode_family(&labels)?, self.probes[ki][ri])?;
            }
        }
        self.latency.encode(&mut describe(
            &mut encoder,
            "concord_health_probe_duration_seconds",
            "Duration of a check's last attempt.",
            MetricType::Histogram,
        )?)?;
        let s = &self.summary;
        encode_scalars(
            &mut encoder,
            &[
                Scalar::counter(
                    "concord_health_rounds_total",
                    "Health rounds run by this server.",
                    s.rounds,
                ),
                Scalar::counter(
                    "concord_health_commits_total",
                    "Change sets of health transitions committed by this server.",
                    s.commits,
                ),
                Scalar::gauge(
                    "concord_health_monitoring",
                    "1 while this server (the leader) probes data nodes.",
                    u64::from(s.monitoring),
                ),
                Scalar::gauge(
                    "concord_health_last_round_failed",
                    "Failed checks in the last round.",
                    s.last_round_failed,
                ),
            ],
        )
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
            "concord_http_request_duration_seconds_bucket{class=\"read\",le=\"5e-05\"} 1"
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
