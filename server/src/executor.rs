//! What every serving executor shares, and what each one owns.
//!
//! [`Shared`] is built once and read by all executors (config, the service client,
//! the publication hub, the Raft view). [`ExecutorContext`] is one executor's own:
//! its copy of the published state, its metrics and its body cache, never touched
//! by another thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use http::HeaderValue;

use crate::config::Config;
use crate::metrics::ExecutorMetrics;
use crate::publish::{Encoded, LocalPublished, PublicationHub, RaftView, Readiness};
use crate::service::ServiceClient;

/// Built once, shared by all executors.
pub struct Shared {
    pub config: Config,
    /// The service boundary: operations for the control executor.
    pub service: ServiceClient,
    pub hub: Arc<PublicationHub>,
    pub raft: RaftView,
    pub metrics: Vec<Arc<ExecutorMetrics>>,
    /// `Cache-Control` of read answers, from `topology.cache.ttl`.
    pub cache_control: HeaderValue,
    /// Whether reads may be answered yet (the durable state is applied) and whether
    /// Raft has stopped: the read/SSE admission gate and `/readyz`.
    pub readiness: Readiness,
    /// SSE streams open on all executors (bounded by `max_subscribers`); counted
    /// only by `notify::subscribers::Slot`, read by the metrics.
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
