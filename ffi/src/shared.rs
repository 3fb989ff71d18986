//! What the client's thread and its callers share: the published routing table,
//! the control flags (stop, refresh), the change listeners, counters and the last
//! error. Readers only ever load the table (`arc-swap`: no lock, no allocation).

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use concord_model::TopologyEvent;

use crate::table::RoutingTable;

/// One change of the local topology, as a listener sees it.
#[derive(Debug)]
pub struct Change<'a> {
    /// The version before the change (0: there was none).
    pub previous_version: u64,
    /// The version now routed with.
    pub version: u64,
    /// True when a whole snapshot replaced the local copy (first load, a server's
    /// `Reset`, or a resynchronisation after a gap); `events` is then empty.
    pub reset: bool,
    /// The events of `version`, in the server's order.
    pub events: &'a [TopologyEvent],
}

/// A change listener. Runs on the client's thread: it must return quickly and must
/// not wait for the client (no `wait_*` inside it).
pub type ChangeCallback = Box<dyn FnMut(&Change<'_>) + Send>;

/// Identifies a listener for [`crate::TopologyClient::remove_listener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u64);

/// Counters of what the client did, for monitoring and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// The version routed with (0: none yet).
    pub version: u64,
    /// Whole snapshots installed (first load, `Reset`, resynchronisation).
    pub snapshots_loaded: u64,
    /// Versions applied from events (each exactly once).
    pub versions_applied: u64,
    pub events_applied: u64,
    /// Versions received again (after a resume or refresh) and ignored.
    pub duplicates_skipped: u64,
    /// Gaps, `Reset`s and inconsistencies that forced a resynchronisation.
    pub resyncs: u64,
    /// Failed exchanges that made the client move to the next server.
    pub failovers: u64,
    /// SSE streams opened.
    pub streams_opened: u64,
    /// Delta polls (only against servers without `/subscribe`).
    pub polls: u64,
    pub stale_reports: u64,
    /// Refreshes run for `report_stale` (coalesced and rate limited).
    pub refreshes: u64,
    /// Index in the server list of the server in use.
    pub current_server: usize,
    /// True while an SSE stream is open.
    pub streaming: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub snapshots_loaded: AtomicU64,
    pub versions_applied: AtomicU64,
    pub events_applied: AtomicU64,
    pub duplicates_skipped: AtomicU64,
    pub resyncs: AtomicU64,
    pub failovers: AtomicU64,
    pub streams_opened: AtomicU64,
    pub polls: AtomicU64,
    pub stale_reports: AtomicU64,
    pub refreshes: AtomicU64,
    pub current_server: AtomicUsize,
    pub streaming: AtomicBool,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

#[derive(Default)]
pub(crate) struct Control {
    pub stop: bool,
    pub refresh: bool,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub table: ArcSwapOption<RoutingTable>,
    pub control: Mutex<Control>,
    pub wake: Condvar,
    /// The published version, for waiters.
    pub version: Mutex<u64>,
    pub version_changed: Condvar,
    listeners: Mutex<Vec<(ListenerId, ChangeCallback)>>,
    /// Listeners added from inside a callback (the list is locked by the dispatch).
    pending_adds: Mutex<Vec<(ListenerId, ChangeCallback)>>,
    /// Ids removed from inside a callback (the list is locked by the dispatch then).
    removed: Mutex<BTreeSet<ListenerId>>,
    live_ids: Mutex<BTreeSet<ListenerId>>,
    next_listener: AtomicU64,
    pub counters: Counters,
    pub last_error: Mutex<Option<String>>,
    /// Some server has answered an HTTP request at least once.
    pub reached: AtomicBool,
    pub worker: OnceLock<ThreadId>,
}

/// Locks, ignoring poisoning: every critical section here leaves its data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn on_worker_thread(&self) -> bool {
        self.worker.get() == Some(&std::thread::current().id())
    }

    pub fn publish(&self, table: RoutingTable) {
        let version = table.version();
        self.table.store(Some(Arc::new(table)));
        *lock(&self.version) = version;
        self.version_changed.notify_all();
    }

    pub fn set_error(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }

    pub fn stopped(&self) -> bool {
        lock(&self.control).stop
    }

    /// Sleeps up to `d`; returns early (true) when stopping, and when a refresh is
    /// asked for if `wake_on_refresh`.
    pub fn sleep(&self, d: Duration, wake_on_refresh: bool) -> bool {
        let deadline = Instant::now() + d;
        let mut c = lock(&self.control);
        loop {
            if c.stop || (wake_on_refresh && c.refresh) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .wake
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn add_listener(&self, f: ChangeCallback) -> ListenerId {
        let id = ListenerId(self.next_listener.fetch_add(1, Relaxed) + 1);
        lock(&self.live_ids).insert(id);
        if self.on_worker_thread() {
            // From inside a callback: it runs from the next change on.
            lock(&self.pending_adds).push((id, f));
        } else {
            lock(&self.listeners).push((id, f));
        }
        id
    }

    /// Removes a listener; once this returns (off the client's thread) the listener
    /// is not running and will never run again.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        if !lock(&self.live_ids).remove(&id) {
            return false;
        }
        if self.on_worker_thread() {
            lock(&self.removed).insert(id);
        } else {
            // Waits for a dispatch in progress: the list is locked while callbacks run.
            lock(&self.listeners).retain(|(i, _)| *i != id);
            lock(&self.pending_adds).retain(|(i, _)| *i != id);
        }
        true
    }

    /// Runs every listener for `change`, in registration order. A panicking Rust
    /// listener is caught so the client's thread goes on.
    pub fn dispatch(&self, change: &Change<'_>) {
        let mut list = lock(&self.listeners);
        list.append(&mut lock(&self.pending_adds));
        for (id, f) in list.iter_mut() {
            // A listener may have freed the client: call no one after that.
            if self.stopped() {
                break;
            }
            if lock(&self.removed).contains(id) {
                continue;
            }
            let _ = catch_unwind(AssertUnwindSafe(|| f(change)));
        }
        let removed = std::mem::take(&mut *lock(&self.removed));
        list.retain(|(id, _)| !removed.contains(id));
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Relaxed);
        ClientStats {
            version: *lock(&self.version),
            snapshots_loaded: get(&c.snapshots_loaded),
            versions_applied: get(&c.versions_applied),
            events_applied: get(&c.events_applied),
            duplicates_skipped: get(&c.duplicates_skipped),
            resyncs: get(&c.resyncs),
            failovers: get(&c.failovers),
            streams_opened: get(&c.streams_opened),
            polls: get(&c.polls),
            stale_reports: get(&c.stale_reports),
            refreshes: get(&c.refreshes),
            current_server: c.current_server.load(Relaxed),
            streaming: c.streaming.load(Relaxed),
        }
    }
}
