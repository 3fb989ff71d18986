//! Counters and latency histograms, exposed in the Prometheus text format.
//!
//! Each executor owns its own [`ExecutorMetrics`] (written by that thread alone, so
//! the relaxed atomics never bounce between cores, and recording never locks or
//! allocates); `/metrics` sums them at scrape time together with the process-wide
//! gauges of [`crate::publish::RaftView`]. This module owns the recording side;
//! `exposition` turns it into text.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

mod exposition;
mod refusals;
mod reloads;

pub use exposition::{render, render_probes};
pub use refusals::{render_refusals, Refusals, RefusedTotals};
pub use reloads::render_reloads;

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
    /// Control-executor ticks over one heartbeat interval late, and the latest (ms).
    pub control_late_ticks: u64,
    pub control_late_max_ms: u64,
    /// Followers found to have lost log entries they had acknowledged.
    pub followers_log_lost: u64,
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
