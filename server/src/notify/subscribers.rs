//! SSE subscribers of one executor: each stream pulls the frames it is owed from the
//! executor's published state, so a publication costs one wake-up per subscriber and
//! a reference-count increment per frame — never an encoding, never a copy.
//!
//! The rule "lagging subscribers are disconnected" lives here ([`lagging`]): a
//! subscriber's "queue" is the distance between its cursor (the last version it was
//! handed) and the published version; one more than `subscriber_queue` versions
//! behind (its socket does not drain) is disconnected, by its own stream or by the
//! executor's [`watchdog`] (it resumes with `Last-Event-ID`), so it can never hold
//! anyone back. The process-wide count of streams is owned by [`Slot`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures_lite::Stream;

use super::feed::{self, Feed, Moment, Step};
use crate::executor::{ExecutorContext, Shared};
use crate::net::bearer::Presented;
use crate::net::conn::address_key;
use crate::net::ConnectionGuard;
use crate::publish::frames::EventFilter;

/// One subscriber, as its executor's watchdog sees it.
pub struct Subscriber {
    /// The last version this subscriber was handed (frames up to it are queued or sent).
    cursor: Cell<u64>,
    connection: Rc<ConnectionGuard>,
}

/// True when a subscriber at `cursor` is too far behind `latest` to keep.
pub fn lagging(latest: u64, cursor: u64, bound: u64) -> bool {
    latest.saturating_sub(cursor) > bound
}

thread_local! {
    /// The subscribers of this executor (one executor per thread).
    static REGISTRY: Registry = Registry::default();
}

/// The subscribers of one executor.
#[derive(Default)]
pub struct Registry {
    subscribers: RefCell<Vec<Weak<Subscriber>>>,
}

impl Registry {
    fn register(&self, subscriber: &Rc<Subscriber>) {
        self.subscribers
            .borrow_mut()
            .push(Rc::downgrade(subscriber));
    }

    /// Disconnects every subscriber more than `bound` versions behind `latest`;
    /// forgets the ones that are gone. Returns how many were disconnected.
    pub fn sweep(&self, latest: u64, bound: u64) -> usize {
        let mut dropped = 0;
        self.subscribers.borrow_mut().retain(|weak| {
            let Some(sub) = weak.upgrade() else {
                return false;
            };
            if lagging(latest, sub.cursor.get(), bound) {
                sub.connection.close();
                dropped += 1;
                return false;
            }
            true
        });
        dropped
    }

    pub fn len(&self) -> usize {
        self.subscribers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One place in the process-wide count of SSE streams (`Shared::sse_subscribers`)
/// and in its client address's (`Shared::sse_per_address`): taken when a stream is
/// accepted, given back when it is dropped. Nothing else changes the counts.
pub struct Slot {
    shared: Arc<Shared>,
    /// The address counted, unless exempt (loopback) or unknown.
    address: Option<IpAddr>,
}

/// Which limit refused a stream, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `topology.notifications.max_subscribers`.
    Server(usize),
    /// `topology.notifications.max_subscribers_per_address`.
    Address(usize),
}

impl Slot {
    /// A place for one more stream from `peer`, or which limit is reached.
    pub fn take(shared: &Arc<Shared>, peer: Option<SocketAddr>) -> Result<Slot, Full> {
        let limits = &shared.config.topology.notifications;
        let count = shared.sse_subscribers.fetch_add(1, Ordering::Relaxed);
        // Constructed before the checks, so a refused place is given back by `drop`.
        let mut slot = Slot {
            shared: shared.clone(),
            address: None,
        };
        if count >= limits.max_subscribers {
            shared.refusals.sse_server_full();
            return Err(Full::Server(limits.max_subscribers));
        }
        let counted = peer
            .map(address_key)
            .filter(|ip| !(limits.exempt_loopback && ip.is_loopback()));
        let Some(address) = counted else {
            return Ok(slot);
        };
        let mut per_address = lock(&shared.sse_per_address);
        let held = per_address.entry(address).or_insert(0);
        if *held >= limits.max_subscribers_per_address {
            shared.refusals.sse_address_full();
            return Err(Full::Address(limits.max_subscribers_per_address));
        }
        *held += 1;
        slot.address = Some(address);
        Ok(slot)
    }
}

fn lock(map: &Mutex<HashMap<IpAddr, usize>>) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    // A count is never left half-changed, so a poisoned lock's map is still right.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.sse_subscribers.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut per_address = lock(&self.shared.sse_per_address);
            if let Some(held) = per_address.get_mut(&address) {
                *held -= 1;
                if *held == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

/// Disconnects, after every publication, this executor's subscribers that fell too
/// far behind.
pub async fn watchdog(ctx: Rc<ExecutorContext>) {
    let bound = ctx.shared.config.topology.notifications.subscriber_queue as u64;
    loop {
        ctx.published.changed().await;
        let latest = ctx.published.current().version;
        let dropped = REGISTRY.with(|registry| registry.sweep(latest, bound));
        for _ in 0..dropped {
            ctx.metrics.sse_dropped();
        }
    }
}

/// What a new stream needs.
pub struct StreamStart {
    pub cursor: u64,
    pub filter: EventFilter,
    /// The token its subscribe presented, checked again when the tokens are reloaded.
    pub presented: Presented,
    /// Its connection (the fan-out writer drives its socket without one).
    pub connection: Rc<ConnectionGuard>,
    pub slot: Slot,
}

struct StreamState {
    ctx: Rc<ExecutorContext>,
    subscriber: Rc<Subscriber>,
    feed: Feed,
    pending: VecDeque<Bytes>,
    /// Heartbeat / close / leader-loss deadline, reset per wait rather than made anew.
    timer: glommio::timer::Timer,
}

/// The body stream of one subscription served through hyper (a subscribe that is
/// not the first request of its connection, or one over TLS): the same [`Feed`] as
/// the fan-out writer's streams, driven by the response body; it holds its [`Slot`]
/// until dropped.
pub fn open(ctx: Rc<ExecutorContext>, start: StreamStart) -> impl Stream<Item = Bytes> {
    let connection = start.connection.clone();
    let (feed, opening) = Feed::open(&ctx.shared, ctx.published.current().version, start);
    let subscriber = Rc::new(Subscriber {
        cursor: Cell::new(feed.cursor()),
        connection,
    });
    REGISTRY.with(|registry| registry.register(&subscriber));
    let state = StreamState {
        timer: glommio::timer::Timer::new(
            ctx.shared.config.topology.notifications.heartbeat_interval,
        ),
        ctx,
        subscriber,
        feed,
        pending: opening.into(),
    };
    futures_lite::stream::unfold(state, |mut state| async move {
        let chunk = next_chunk(&mut state).await?;
        Some((chunk, state))
    })
}

async fn next_chunk(state: &mut StreamState) -> Option<Bytes> {
    let ctx = state.ctx.clone();
    loop {
        if let Some(chunk) = state.pending.pop_front() {
            return Some(chunk);
        }
        if state.subscriber.connection.is_closed() {
            return None;
        }
        let changed = ctx.published.changed();
        let published = ctx.published.current();
        let moment = Moment::at(&ctx.shared, Instant::now());
        let mut frames = Vec::new();
        match state.feed.next(&published, &moment) {
            Step::Changes { from } => {
                if feed::changes(&published, from, state.feed.filter(), &mut frames) {
                    ctx.metrics.sse_reset();
                }
                state.subscriber.cursor.set(state.feed.cursor());
            }
            Step::Heartbeat { version } => feed::heartbeat(version, &mut frames),
            Step::End => return None,
            Step::Lagging => {
                ctx.metrics.sse_dropped();
                return None;
            }
            Step::Idle { wake_at } => {
                // (Losing the leader pokes every executor's publication, which wakes `changed`.)
                state
                    .timer
                    .reset(wake_at.saturating_duration_since(moment.now));
                let timer = &mut state.timer;
                futures_lite::future::or(changed, async {
                    timer.await;
                })
                .await;
            }
        }
        state.pending.extend(frames);
    }
}
