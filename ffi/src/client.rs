//! [`TopologyClient`]: the public face of the caching router client. Reads (routing,
//! version, snapshot) come from the published table and never touch the network;
//! the client's own thread keeps that table current.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::Guard;
use concord_model::{key_hash, KeyRange, ShardStatus, TopologySnapshot};

use crate::error::{OptionsError, RouteError, WaitError};
use crate::options::ClientOptions;
use crate::shared::{bump, lock, Change, ClientStats, ListenerId, Shared};
use crate::table::{NodeRef, RouteRef, RoutingTable};
use crate::worker::Worker;

/// A caching router client for one topology cluster.
///
/// Thread-safe: every method may be called from any thread at once (`Send + Sync`).
/// Dropping it stops its thread and waits for it, so no listener runs afterwards
/// (when dropped from inside a listener, the thread ends right after that listener).
pub struct TopologyClient {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The route of one key, holding the routing table it was read from (so the
/// strings stay valid while it lives). Cheap, allocation-free; drop it soon, since
/// it keeps that table's version alive.
pub struct Route {
    table: Guard<Option<Arc<RoutingTable>>>,
    slot: RouteSlot,
}

#[derive(Clone, Copy)]
struct RouteSlot {
    hash: u64,
    index: u32,
}

impl TopologyClient {
    /// Validates the options and starts the client's thread, which connects to the
    /// first server. Does not wait for the network: see [`TopologyClient::wait_ready`].
    pub fn new(options: ClientOptions) -> Result<TopologyClient, OptionsError> {
        let endpoints = options.validate()?;
        let tls = options.tls_config()?;
        let shared = Arc::new(Shared::default());
        let worker = Worker::new(Arc::clone(&shared), options, endpoints, tls);
        let thread = std::thread::Builder::new()
            .name("concordkv-topology".into())
            .spawn(move || worker.run())
            .map_err(OptionsError::Thread)?;
        Ok(TopologyClient {
            shared,
            thread: Some(thread),
        })
    }

    /// Routes `key` (hashed with the topology's `hashFunction`, `sha256-be64`).
    /// No allocation, no lock, no network.
    pub fn route(&self, key: &[u8]) -> Result<Route, RouteError> {
        if key.is_empty() {
            return Err(RouteError::EmptyKey);
        }
        self.route_hash(key_hash(key))
    }

    /// Routes a point of the hash space (a key already hashed with [`key_hash`]).
    #[inline]
    pub fn route_hash(&self, hash: u64) -> Result<Route, RouteError> {
        let table = self.shared.table.load();
        let Some(t) = table.as_ref() else {
            return Err(RouteError::NotReady);
        };
        let index = t.route_hash(hash)?.index();
        Ok(Route {
            table,
            slot: RouteSlot { hash, index },
        })
    }

    /// The current routing table, to route many keys at one version.
    pub fn table(&self) -> Option<Arc<RoutingTable>> {
        self.shared.table.load_full()
    }

    /// The version routed with; 0 before the first snapshot arrives.
    pub fn version(&self) -> u64 {
        self.shared.table.load().as_ref().map_or(0, |t| t.version())
    }

    /// The `configHash` of the local copy (equal to the server's at the same version).
    pub fn config_hash(&self) -> Option<String> {
        self.table().map(|t| t.config_hash().to_string())
    }

    /// The local copy as a snapshot.
    pub fn snapshot(&self) -> Option<TopologySnapshot> {
        self.table().map(|t| t.state().to_snapshot())
    }

    /// The local copy as the JSON of `GET /api/topology/snapshot`'s `snapshot`.
    pub fn snapshot_json(&self) -> Option<String> {
        self.snapshot()
            .map(|s| serde_json::to_string(&s).expect("snapshots always serialize"))
    }

    /// Waits until the client routes with a topology (any version).
    pub fn wait_ready(&self, timeout: Duration) -> Result<u64, WaitError> {
        self.wait_for_version(1, timeout)
    }

    /// Waits until the local version is at least `version`; returns it.
    pub fn wait_for_version(&self, version: u64, timeout: Duration) -> Result<u64, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut current = lock(&self.shared.version);
        loop {
            if *current >= version {
                return Ok(*current);
            }
            let now = Instant::now();
            if now >= deadline {
                let last_error = self.last_error().unwrap_or_else(|| "none yet".to_string());
                return Err(if self.shared.reached.load(Relaxed) {
                    WaitError::Timeout { last_error }
                } else {
                    WaitError::Unreachable { last_error }
                });
            }
            current = self
                .shared
                .version_changed
                .wait_timeout(current, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Calls `f` after every change of the local topology, on the client's thread,
    /// in version order, once the routing table includes that version. `f` must
    /// return quickly and must not wait for this client.
    pub fn on_change<F>(&self, f: F) -> ListenerId
    where
        F: FnMut(&Change<'_>) + Send + 'static,
    {
        self.shared.add_listener(Box::new(f))
    }

    /// Removes a listener; false if unknown. Off the client's thread, it waits for
    /// a call in progress, so the listener never runs after this returns.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.shared.remove_listener(id)
    }

    /// A data node refused a request routed with `epoch` for `shard_id`: the local
    /// copy may be stale. Asks for one refresh (coalesced with other reports, at most
    /// one per `stale_refresh_interval`); returns false when the local copy already
    /// has a newer epoch for that shard (nothing to do).
    pub fn report_stale(&self, shard_id: &str, epoch: u64) -> bool {
        bump(&self.shared.counters.stale_reports);
        if let Some(table) = self.shared.table.load().as_ref() {
            if table.epoch_of(shard_id).is_some_and(|e| e > epoch) {
                return false;
            }
        }
        lock(&self.shared.control).refresh = true;
        self.shared.wake.notify_all();
        true
    }

    pub fn stats(&self) -> ClientStats {
        self.shared.stats()
    }

    /// The last failure talking to a server (`host:port: what happened`).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }
}

impl Drop for TopologyClient {
    fn drop(&mut self) {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // From a listener, the thread is this one: it ends after the listener.
            if !self.shared.on_worker_thread() {
                let _ = thread.join();
            }
        }
    }
}

impl Route {
    fn view(&self) -> RouteRef<'_> {
        let table = self.table.as_ref().expect("a Route is made from a table");
        table.route_at(self.slot.index, self.slot.hash)
    }

    pub fn version(&self) -> u64 {
        self.view().version()
    }

    pub fn key_hash(&self) -> u64 {
        self.slot.hash
    }

    pub fn shard_id(&self) -> &str {
        self.view().shard_id()
    }

    pub fn epoch(&self) -> u64 {
        self.view().epoch()
    }

    pub fn status(&self) -> ShardStatus {
        self.view().status()
    }

    pub fn key_range(&self) -> KeyRange {
        self.view().key_range()
    }

    pub fn primary(&self) -> NodeRef<'_> {
        self.view().primary()
    }

    pub fn replicas(&self) -> impl ExactSizeIterator<Item = NodeRef<'_>> + '_ {
        self.view().replicas()
    }

    /// The borrowed form, for repeated field access without re-searching.
    pub fn get(&self) -> RouteRef<'_> {
        self.view()
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.view();
        f.debug_struct("Route")
            .field("version", &r.version())
            .field("shard_id", &r.shard_id())
            .field("epoch", &r.epoch())
            .field("primary", &r.primary())
            .field("replicas", &r.replicas().collect::<Vec<_>>())
            .finish()
    }
}
