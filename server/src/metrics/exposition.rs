//! The `/metrics` text: `prometheus-client`'s Prometheus text (0.0.4) encoder fed by one
//! [`Collector`] per source, built at each scrape. The collectors read the recording
//! side's atomics with relaxed loads, so a scrape never makes a writer wait.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{
    ExecutorMetrics, Gauges, HealthSummary, Histogram, ProbeMetrics, BUCKETS_US, CLASSES,
    STATUS_FAMILIES,
};

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
pub(super) fn encode_into(out: &mut String, collector: impl Collector) {
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

/// A counter family over two labels: one series per pair of values, in order.
fn encode_counter_grid(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    (outer_key, outer): (&str, &[&str]),
    (inner_key, inner): (&str, &[&str]),
    value: impl Fn(usize, usize) -> u64,
) -> fmt::Result {
    let mut family = describe(encoder, name, help, MetricType::Counter)?;
    for (o, outer_value) in outer.iter().enumerate() {
        for (i, inner_value) in inner.iter().enumerate() {
            let labels = [(outer_key, *outer_value), (inner_key, *inner_value)];
            encode_counter(&mut family.encode_family(&labels)?, value(o, i))?;
        }
    }
    Ok(())
}

/// One unlabelled series.
pub(super) struct Scalar {
    /// As exposed: a counter's ends in `_total`.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: u64,
}

impl Scalar {
    pub(super) fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
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

pub(super) fn encode_scalars(encoder: &mut DescriptorEncoder, scalars: &[Scalar]) -> fmt::Result {
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
        encode_counter_grid(
            &mut encoder,
            "concord_http_responses_total",
            "HTTP responses by route class and status family.",
            ("class", &CLASSES.map(|(_, name)| name)),
            ("status", &STATUS_FAMILIES),
            |ci, fi| self.sum(|m| m.responses[ci][fi].load(Relaxed)),
        )?;
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
                Scalar::counter(
                    "concord_control_ticks_late_total",
                    "Ticks of executor 0's heartbeat-interval clock that came over one interval late (Raft's heartbeats and votes wait the same way).",
                    g.control_late_ticks,
                ),
                Scalar::gauge(
                    "concord_control_tick_late_max_milliseconds",
                    "The latest any tick of executor 0's heartbeat-interval clock came since start.",
                    g.control_late_max_ms,
                ),
                Scalar::counter(
                    "concord_raft_followers_log_lost_total",
                    "Followers this server, leading, found to have lost log entries they had acknowledged (a wiped or restored data directory), once per follower and term; each is kept out of replication until replaced.",
                    g.followers_log_lost,
                ),
            ],
        )
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
        encode_counter_grid(
            &mut encoder,
            "concord_health_probes_total",
            "Data-node health checks by probe and result.",
            ("probe", &["http", "tcp"]),
            ("result", &["pass", "fail"]),
            |ki, ri| self.probes[ki][ri],
        )?;
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
    use crate::metrics::RouteClass;
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn render_sums_executors_and_buckets_cumulatively() {
        let a = Arc::new(ExecutorMetrics::default());
        let b = Arc::new(ExecutorMetrics::default());
        a.record(RouteClass::Read, 200, Duration::from_micros(40));
        b.record(RouteClass::Read, 304, Duration::from_micros(400));
        b.record(RouteClass::Write, 409, Duration::from_millis(3));
        a.connection_opened();
        let text = render(&[a, b], &gauges());
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
        assert!(text.contains("concord_control_ticks_late_total 4"));
        assert!(text.contains("concord_control_tick_late_max_milliseconds 480"));
        assert!(text.contains("concord_raft_followers_log_lost_total 1"));
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

    fn gauges() -> Gauges {
        Gauges {
            version: 7,
            term: 2,
            leader: 1,
            is_leader: true,
            applied_index: 9,
            shards: 64,
            nodes: 6,
            executors: 2,
            sse_subscribers: 3,
            control_late_ticks: 4,
            followers_log_lost: 1,
            control_late_max_ms: 480,
        }
    }

    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// Checks that every line is blank, a `# HELP`/`# TYPE` comment, or
    /// `name{labels} value` with a finite number whose family was typed before it, and
    /// returns the samples by `name{labels}` as written.
    fn parse(text: &str) -> HashMap<String, f64> {
        let mut types = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let (keyword, name, rest) = (words.next(), words.next(), words.next());
                let name = name.filter(|n| is_name(n));
                match (keyword, name, rest) {
                    (Some("HELP"), Some(_), Some(help)) => assert!(!help.is_empty(), "{line}"),
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
                        assert!(types.insert(name, kind).is_none(), "typed twice: {line}");
                    }
                    _ => panic!("not a HELP or TYPE line: {line}"),
                }
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value is not a number: {line}"));
            assert!(value.is_finite() && value >= 0.0, "{line}");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.strip_suffix('}').expect(line)),
                None => (series, ""),
            };
            assert!(is_name(name), "bad metric name: {line}");
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (key, quoted) = pair.split_once('=').expect(line);
                let label = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
                assert!(
                    is_name(key) && label.is_some_and(|l| !l.contains('"')),
                    "{line}"
                );
                if key == "le" {
                    let bound: f64 = label.unwrap().parse().expect(line);
                    assert!(bound > 0.0, "{line}");
                }
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (types.get(base) == Some(&"histogram")).then_some(base)
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "sample before its TYPE: {line}");
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "twice: {line}"
            );
        }
        samples
    }

    #[test]
    fn exposition_parses_and_sums_two_executors() {
        let a = Arc::new(ExecutorMetrics::default());
        let b = Arc::new(ExecutorMetrics::default());
        a.record(RouteClass::Read, 200, Duration::from_micros(40));
        a.record(RouteClass::Read, 503, Duration::from_millis(2));
        a.record(RouteClass::Write, 201, Duration::from_millis(100));
        b.record(RouteClass::Read, 200, Duration::from_micros(300));
        // Past the last bound: counted in `+Inf` and the sum only.
        b.record(RouteClass::Subscribe, 200, Duration::from_secs(20));
        for _ in 0..3 {
            a.connection_opened();
        }
        b.connection_opened();
        b.connection_closed();
        b.connection_closed();
        a.sse_dropped();
        b.sse_reset();
        b.sse_reset();
        let probes = ProbeMetrics::default();
        probes.probe(true, true, Duration::from_micros(300));
        probes.probe(false, false, Duration::from_millis(2));
        probes.set_monitoring(true);
        let mut text = render(&[a, b], &gauges());
        render_probes(&mut text, &probes);

        let samples = parse(&text);
        let get = |series: &str| *samples.get(series).unwrap_or_else(|| panic!("{series}"));
        let responses = |class: &str, status: &str| {
            get(&format!(
                "concord_http_responses_total{{class=\"{class}\",status=\"{status}\"}}"
            ))
        };
        assert_eq!(responses("read", "2xx"), 2.0);
        assert_eq!(responses("read", "5xx"), 1.0);
        assert_eq!(responses("write", "2xx"), 1.0);
        assert_eq!(responses("subscribe", "2xx"), 1.0);
        let all: f64 = samples
            .iter()
            .filter(|(k, _)| k.starts_with("concord_http_responses_total{"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(all, 5.0);

        let duration = |series: &str, class: &str, le: Option<&str>| {
            let le = le.map_or(String::new(), |le| format!(",le=\"{le}\""));
            get(&format!(
                "concord_http_request_duration_seconds_{series}{{class=\"{class}\"{le}}}"
            ))
        };
        assert_eq!(duration("bucket", "read", Some("5e-05")), 1.0);
        assert_eq!(duration("bucket", "read", Some("0.0001")), 1.0);
        assert_eq!(duration("bucket", "read", Some("0.0005")), 2.0);
        assert_eq!(duration("bucket", "read", Some("0.0025")), 3.0);
        assert_eq!(duration("bucket", "read", Some("+Inf")), 3.0);
        assert_eq!(duration("count", "read", None), 3.0);
        assert!((duration("sum", "read", None) - 0.00234).abs() < 1e-12);
        assert_eq!(duration("bucket", "subscribe", Some("10")), 0.0);
        assert_eq!(duration("bucket", "subscribe", Some("+Inf")), 1.0);
        assert_eq!(duration("sum", "subscribe", None), 20.0);
        assert_eq!(duration("bucket", "write", Some("0.1")), 1.0);
        assert_eq!(duration("bucket", "write", Some("0.025")), 0.0);

        assert_eq!(get("concord_http_connections_opened_total"), 4.0);
        assert_eq!(get("concord_http_connections_open"), 2.0);
        assert_eq!(get("concord_sse_dropped_total"), 1.0);
        assert_eq!(get("concord_sse_resets_total"), 2.0);
        assert_eq!(get("concord_sse_subscribers"), 3.0);
        assert_eq!(get("concord_raft_is_leader"), 1.0);
        assert_eq!(get("concord_executors"), 2.0);
        assert_eq!(
            get("concord_health_probes_total{probe=\"tcp\",result=\"fail\"}"),
            1.0
        );
        assert_eq!(get("concord_health_probe_duration_seconds_count"), 2.0);
        assert_eq!(get("concord_health_monitoring"), 1.0);
        // 6 classes x 4 families, 6 classes x (12 bounds + `+Inf` + sum + count),
        // 16 scalars; 4 probe counters, 12 + 3 histogram series, 4 scalars.
        assert_eq!(samples.len(), 24 + 6 * 15 + 16 + 4 + 15 + 4);
    }

    #[test]
    fn every_family_keeps_its_name_and_type() {
        let mut text = render(&[Arc::new(ExecutorMetrics::default())], &gauges());
        render_probes(&mut text, &ProbeMetrics::default());
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            typed,
            [
                "concord_http_responses_total counter",
                "concord_http_request_duration_seconds histogram",
                "concord_sse_subscribers gauge",
                "concord_sse_dropped_total counter",
                "concord_sse_resets_total counter",
                "concord_http_connections_opened_total counter",
                "concord_http_connections_open gauge",
                "concord_topology_version gauge",
                "concord_topology_shards gauge",
                "concord_topology_nodes gauge",
                "concord_raft_term gauge",
                "concord_raft_leader_id gauge",
                "concord_raft_is_leader gauge",
                "concord_raft_applied_index gauge",
                "concord_executors gauge",
                "concord_control_ticks_late_total counter",
                "concord_control_tick_late_max_milliseconds gauge",
                "concord_raft_followers_log_lost_total counter",
                "concord_health_probes_total counter",
                "concord_health_probe_duration_seconds histogram",
                "concord_health_rounds_total counter",
                "concord_health_commits_total counter",
                "concord_health_monitoring gauge",
                "concord_health_last_round_failed gauge",
            ]
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    #[should_panic(expected = "value is not a number")]
    fn parse_rejects_a_sample_without_a_number() {
        parse("# TYPE concord_x gauge\nconcord_x{a=\"b\"} 0.0.1\n");
    }
}
