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

use crate::config::{Config, LiveCredentials};
use crate::metrics::{ExecutorMetrics, Refusals};
use crate::net::capacity::Capacity;
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
    /// SSE streams open per client address (`address_key`), bounded by
    /// `max_subscribers_per_address`; counted only by `notify::subscribers::Slot`.
    pub sse_per_address: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Health-probe counters, written by the leader's health monitor.
    pub probes: crate::metrics::ProbeMetrics,
    /// Client connections open on all executors (`http.max_connections`).
    pub connections: Arc<Capacity>,
    /// Connections open on the peer port (`raft.max_peer_connections`).
    pub peer_connections: Arc<Capacity>,
    /// What the limits turned away, for `/metrics`.
    pub refusals: Refusals,
    /// The credentials in force: client tokens, HTTPS on the client port (`tls:`),
    /// the peer secret and peer TLS, replaced whole by a reload (SIGHUP).
    pub credentials: Arc<LiveCredentials>,
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

/// How much a [`BodyCache`] may hold.
#[derive(Clone, Copy, Debug)]
pub struct CacheBudget {
    /// `topology.cache.max_entries`.
    pub entries: usize,
    /// `topology.cache.max_bytes`.
    pub bytes: usize,
}

/// Bodies many routers ask for at one version (one shard, one node, the delta since a
/// version) encoded at most once per version on this executor, bounded by a
/// [`CacheBudget`] in entries and in bytes, so no mix of parameters can grow it past
/// the budget.
#[derive(Default)]
pub struct BodyCache {
    version: u64,
    entries: HashMap<String, Rc<Encoded>>,
    /// What the entries are charged: twice each plain body, room for its gzip form.
    bytes: usize,
}

impl BodyCache {
    /// The cached body for `key` at `version`, or `encode()`'s result, cached when room is left.
    pub fn get_or_encode(
        &mut self,
        version: u64,
        key: String,
        budget: CacheBudget,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> Rc<Encoded> {
        if self.version != version {
            // Replaced, not cleared: a burst of one version must not pin its capacity.
            self.entries = HashMap::new();
            self.bytes = 0;
            self.version = version;
        }
        if let Some(hit) = self.entries.get(&key) {
            return hit.clone();
        }
        let encoded = Rc::new(Encoded::new(encode()));
        let charge = 2 * (encoded.identity.len() + key.len());
        if self.entries.len() < budget.entries && self.bytes + charge <= budget.bytes {
            self.bytes += charge;
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

    const ONE_ENTRY: CacheBudget = CacheBudget {
        entries: 1,
        bytes: usize::MAX,
    };

    #[test]
    fn body_cache_encodes_once_per_version_and_respects_its_bound() {
        let mut cache = BodyCache::default();
        let mut calls = 0;
        for _ in 0..3 {
            cache.get_or_encode(1, "a".into(), ONE_ENTRY, || {
                calls += 1;
                b"x".to_vec()
            });
        }
        assert_eq!(calls, 1, "same version and key must hit the cache");
        cache.get_or_encode(2, "a".into(), ONE_ENTRY, || {
            calls += 1;
            b"y".to_vec()
        });
        assert_eq!(calls, 2, "a new version must re-encode");
        // The cache is full (max 1): another key is encoded but not stored.
        for _ in 0..2 {
            cache.get_or_encode(2, "b".into(), ONE_ENTRY, || {
                calls += 1;
                b"z".to_vec()
            });
        }
        assert_eq!(calls, 4);
    }

    #[test]
    fn body_cache_respects_its_byte_budget() {
        let mut cache = BodyCache::default();
        let budget = CacheBudget {
            entries: 100,
            bytes: 2 * (100 + 1),
        };
        let mut calls = 0;
        let mut read = |key: &str| {
            cache.get_or_encode(1, key.into(), budget, || {
                calls += 1;
                vec![b'x'; 100]
            });
        };
        read("a");
        read("a");
        read("b");
        read("b");
        assert_eq!(calls, 3, "`a` fills the budget: `b` is encoded per request");
    }
}
