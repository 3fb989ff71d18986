//! What every serving executor shares, and what each one owns.
//!
//! [`Shared`] is built once and read by all executors (config, the control channel,
//! the publication hub, the Raft view). [`ExecutorContext`] is one executor's own:
//! its copy of the published state, its metrics and its body cache, never touched
//! by another thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use http::HeaderValue;

use crate::config::Config;
use crate::control::ControlClient;
use crate::http::response::TopologyHeaders;
use crate::metrics::ExecutorMetrics;
use crate::publish::{Encoded, LocalPublished, PublicationHub, Published};

/// This server's view of Raft, refreshed by the control executor on every metrics change.
pub struct RaftView {
    term: AtomicU64,
    leader: AtomicU64,
    is_leader: AtomicBool,
    applied_index: AtomicU64,
    /// Milliseconds since `epoch` when the leader was last lost; u64::MAX while one is known.
    leaderless_since_ms: AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

impl Default for RaftView {
    fn default() -> Self {
        RaftView {
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            applied_index: AtomicU64::new(0),
            leaderless_since_ms: AtomicU64::new(0),
            epoch: std::sync::OnceLock::new(),
        }
    }
}

impl RaftView {
    fn now_ms(&self) -> u64 {
        self.epoch
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }

    /// How long this server has known no leader; `None` while it knows one.
    pub fn leaderless_for(&self) -> Option<std::time::Duration> {
        let since = self.leaderless_since_ms.load(Relaxed);
        (since != u64::MAX)
            .then(|| std::time::Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Records whether this server hears a leader (its own quorum, when it leads);
    /// losing it starts the clock of [`Self::leaderless_for`]. True when it was just lost.
    pub fn set_leader_reachable(&self, reachable: bool) -> bool {
        if reachable {
            self.leaderless_since_ms.store(u64::MAX, Relaxed);
        } else if self.leaderless_since_ms.load(Relaxed) == u64::MAX {
            self.leaderless_since_ms.store(self.now_ms(), Relaxed);
            return true;
        }
        false
    }

    pub fn update(&self, term: u64, leader: Option<u64>, is_leader: bool, applied_index: u64) {
        self.term.store(term, Relaxed);
        self.leader.store(leader.unwrap_or(0), Relaxed);
        self.is_leader.store(is_leader, Relaxed);
        self.applied_index.store(applied_index, Relaxed);
    }

    pub fn term(&self) -> u64 {
        self.term.load(Relaxed)
    }

    /// 0 when no leader is known.
    pub fn leader(&self) -> u64 {
        self.leader.load(Relaxed)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Relaxed)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Relaxed)
    }
}

/// Built once, shared by all executors.
pub struct Shared {
    pub config: Config,
    pub control: ControlClient,
    pub hub: Arc<PublicationHub>,
    pub raft: RaftView,
    pub metrics: Vec<Arc<ExecutorMetrics>>,
    /// `Cache-Control` of read answers, from `topology.cache.ttl`.
    pub cache_control: HeaderValue,
    /// Set once Raft has a leader and the first state is published (`/readyz`).
    pub ready: AtomicBool,
    /// SSE streams open on all executors (bounded by `max_subscribers`).
    pub sse_subscribers: std::sync::atomic::AtomicUsize,
    /// Health-probe counters, written by the leader's health monitor.
    pub probes: crate::metrics::ProbeMetrics,
}

impl Shared {
    pub fn cache_control_for(config: &Config) -> HeaderValue {
        let ttl = config.topology.cache.ttl.as_secs();
        if ttl == 0 {
            HeaderValue::from_static("no-cache")
        } else {
            HeaderValue::from_str(&format!("max-age={ttl}")).expect("digits are a valid header")
        }
    }
}

/// Parameterised bodies (one shard, one node, an event range) encoded at most once per
/// version on this executor, bounded by `topology.cache.max_entries`.
#[derive(Default)]
pub struct BodyCache {
    version: u64,
    entries: HashMap<String, Rc<Encoded>>,
}

impl BodyCache {
    /// The cached body for `key` at `version`, or `encode()`'s result, cached when room is left.
    pub fn get_or_encode(
        &mut self,
        version: u64,
        key: String,
        max_entries: usize,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> Rc<Encoded> {
        if self.version != version {
            self.entries.clear();
            self.version = version;
        }
        if let Some(hit) = self.entries.get(&key) {
            return hit.clone();
        }
        let encoded = Rc::new(Encoded::new(encode()));
        if self.entries.len() < max_entries {
            self.entries.insert(key, encoded.clone());
        }
        encoded
    }
}

/// One executor's own context, handed to every request it serves.
pub struct ExecutorContext {
    pub shared: Arc<Shared>,
    pub published: Rc<LocalPublished>,
    pub metrics: Arc<ExecutorMetrics>,
    pub cache: RefCell<BodyCache>,
    pub subscribers: crate::notify::subscribers::Registry,
}

impl ExecutorContext {
    /// Topology headers for an answer built from `published`.
    pub fn headers_for(&self, published: &Published) -> TopologyHeaders {
        TopologyHeaders {
            version: published.version,
            term: self.shared.raft.term(),
            leader: self.shared.raft.leader(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_cache_encodes_once_per_version_and_respects_its_bound() {
        let mut cache = BodyCache::default();
        let mut calls = 0;
        for _ in 0..3 {
            cache.get_or_encode(1, "a".into(), 1, || {
                calls += 1;
                b"x".to_vec()
            });
        }
        assert_eq!(calls, 1, "same version and key must hit the cache");
        cache.get_or_encode(2, "a".into(), 1, || {
            calls += 1;
            b"y".to_vec()
        });
        assert_eq!(calls, 2, "a new version must re-encode");
        // The cache is full (max 1): another key is encoded but not stored.
        for _ in 0..2 {
            cache.get_or_encode(2, "b".into(), 1, || {
                calls += 1;
                b"z".to_vec()
            });
        }
        assert_eq!(calls, 4);
    }
}
