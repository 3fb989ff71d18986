//! The SSE fan-out writer of one executor: once a stream's response head is out, its
//! socket leaves hyper and joins this executor's [`Fanout`]; one task ([`writer`])
//! then writes each publication to every stream in one pass, a nonblocking vectored
//! `sendmsg` of the shared frame `Bytes` per socket, with no task, no wake-up and no
//! buffer per stream.
//!
//! Why `sendmsg` from one task rather than glommio's io_uring writes: glommio 0.9's
//! socket write is itself a nonblocking `send` first (io_uring only after
//! `EAGAIN`), so the io_uring path would add a future per socket for the same syscall;
//! `sendmsg` also takes a whole change set (many frames) as one iovec list.
//!
//! A stream that cannot take a whole unit keeps only the unsent tail as slices of the
//! shared `Bytes` (`owed`) and is armed for `EPOLLOUT`; while it owes, it is handed
//! nothing new, so its cursor falls behind and the lag rule cuts it off as before.
//! Reads are never polled: the epoll set reports hang-ups (`EPOLLRDHUP`), checked on
//! every pass and at least every [`IDLE_CHECK`].
//!
//! Per pass, the chunk-framed bytes owed for one (cursor, filter) are built once and
//! shared by every stream at that cursor with that filter (all of them, usually).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use slab::Slab;

use super::feed::{self, Feed, Moment, Step};
use crate::executor::ExecutorContext;
use crate::net::capacity::Place;
use crate::net::raw::{RawSocket, Readiness, Watch, READY_BATCH};
use crate::publish::frames::EventFilter;
use crate::publish::Published;

/// How often the hang-up check runs when nothing else wakes the writer.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// How often streams that owe bytes are retried (their `EPOLLOUT` is checked).
const BLOCKED_CHECK: Duration = Duration::from_millis(2);
/// Least time between two passes over every stream that only timers asked for
/// (heartbeats and closes are batched, late by at most this).
const TIMER_PASS_SPACING: Duration = Duration::from_millis(20);

/// The end of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// Streams visited between two turns of the executor's other tasks (the writer's
/// answer, reads, Raft): ~0.7 ms of sends on this machine's loopback. A pass over
/// 10,000 streams takes tens of milliseconds, and a write's acknowledgement, ready as
/// soon as it commits, must not wait for the pass that publishes it.
const STREAMS_PER_SLICE: usize = 128;

/// A stream handed over by the HTTP front once its request was accepted.
pub struct Handoff {
    pub socket: RawSocket,
    /// The response head, written first.
    pub head: Bytes,
    pub feed: Feed,
    /// The frames that open the stream (`Feed::open`).
    pub opening: Vec<Bytes>,
    /// The connection's place under `http.max_connections`, held until it closes.
    pub place: Place,
}

struct RawStream {
    socket: RawSocket,
    feed: Feed,
    /// Bytes the socket has not taken yet; empty (no buffer) while nothing is owed.
    owed: VecDeque<Bytes>,
    /// Armed for `EPOLLOUT` (exactly while `owed` is not empty).
    armed: bool,
    _place: Place,
}

impl RawStream {
    /// Sends `unit` after whatever is owed; false when the connection is gone.
    fn write(&mut self, unit: &[Bytes]) -> bool {
        if self.owed.is_empty() {
            let Ok(mut sent) = self.socket.send(unit) else {
                return false;
            };
            let mut whole = 0;
            while whole < unit.len() && sent >= unit[whole].len() {
                sent -= unit[whole].len();
                whole += 1;
            }
            if whole == unit.len() {
                return true;
            }
            self.owed.push_back(unit[whole].slice(sent..));
            self.owed.extend(unit[whole + 1..].iter().cloned());
        } else {
            self.owed.extend(unit.iter().cloned());
        }
        self.flush()
    }

    /// Sends what is owed, as far as the socket takes it; false when it is gone.
    fn flush(&mut self) -> bool {
        while !self.owed.is_empty() {
            let Ok(mut sent) = self.socket.send(&self.owed) else {
                return false;
            };
            if sent == 0 {
                return true;
            }
            while sent > 0 {
                let front = self.owed.front_mut().expect("sent bytes were owed");
                if sent >= front.len() {
                    sent -= front.len();
                    self.owed.pop_front();
                } else {
                    front.advance(sent);
                    sent = 0;
                }
            }
        }
        // Give the queue's buffer back: an idle stream holds none.
        self.owed = VecDeque::new();
        true
    }
}

/// What a visit decided for one stream.
enum Outcome {
    /// Keep it; it owes nothing before this instant (`None`: the next publication).
    Keep(Option<Instant>),
    /// Close it; `terminate`: end the chunked body first; `dropped`: for lagging.
    Close { terminate: bool, dropped: bool },
}

/// The streams of one executor.
pub struct Fanout {
    streams: RefCell<Slab<RawStream>>,
    /// Streams added since the last pass (visited at once, not with everyone).
    fresh: RefCell<Vec<usize>>,
    watch: Watch,
    wake: event_listener::Event,
    blocked: Cell<usize>,
}

thread_local! {
    /// This executor's fan-out (set by [`writer`] when it starts).
    static FANOUT: RefCell<Option<Rc<Fanout>>> = const { RefCell::new(None) };
}

/// Hands a stream to this executor's writer: true when the writer serves it from
/// now on (and counts its connection closed when it ends); false when it is gone
/// already (its client left before the head was out, or this executor has no writer).
pub fn hand_over(handoff: Handoff) -> bool {
    FANOUT
        .with(|f| f.borrow().clone())
        .is_some_and(|fanout| fanout.add(handoff))
}

/// The chunk-framed bytes owed for one (what, filter), built once per pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnitKey {
    Changes(u64, EventFilter),
    Heartbeat(u64),
}

struct Pass<'a> {
    ctx: &'a ExecutorContext,
    published: &'a Published,
    moment: Moment<'a>,
    units: Vec<(UnitKey, Rc<[Bytes]>, bool)>,
}

/// `frames` as one HTTP/1.1 chunk (nothing when there are none).
fn chunked(frames: Vec<Bytes>) -> Rc<[Bytes]> {
    if frames.is_empty() {
        return Rc::from(Vec::new());
    }
    let total: usize = frames.iter().map(Bytes::len).sum();
    let mut unit = Vec::with_capacity(frames.len() + 2);
    unit.push(Bytes::from(format!("{total:x}\r\n")));
    unit.extend(frames);
    unit.push(Bytes::from_static(b"\r\n"));
    Rc::from(unit)
}

impl Pass<'_> {
    /// The unit for `key`, and whether it is a `Reset`.
    fn unit(&mut self, key: UnitKey) -> (Rc<[Bytes]>, bool) {
        if let Some((_, unit, reset)) = self.units.iter().find(|(k, _, _)| *k == key) {
            return (unit.clone(), *reset);
        }
        let mut frames = Vec::new();
        let reset = match key {
            UnitKey::Changes(from, filter) => {
                feed::changes(self.published, from, filter, &mut frames)
            }
            UnitKey::Heartbeat(version) => {
                feed::heartbeat(version, &mut frames);
                false
            }
        };
        let unit = chunked(frames);
        // Distinct keys in one pass are few (cursors agree unless streams lag).
        if self.units.len() < 64 {
            self.units.push((key, unit.clone(), reset));
        }
        (unit, reset)
    }

    fn visit(&mut self, stream: &mut RawStream) -> Outcome {
        let close = |dropped: bool| Outcome::Close {
            terminate: !dropped,
            dropped,
        };
        if !stream.owed.is_empty() {
            if stream.feed.lagging(self.published) {
                return close(true);
            }
            if stream.feed.ended(&self.moment) {
                return Outcome::Close {
                    terminate: false,
                    dropped: false,
                };
            }
            return Outcome::Keep(None);
        }
        loop {
            let key = match stream.feed.next(self.published, &self.moment) {
                Step::Changes { from } => UnitKey::Changes(from, stream.feed.filter()),
                Step::Heartbeat { version } => UnitKey::Heartbeat(version),
                Step::End => return close(false),
                Step::Lagging => return close(true),
                Step::Idle { wake_at } => return Outcome::Keep(Some(wake_at)),
            };
            let (unit, reset) = self.unit(key);
            if reset {
                self.ctx.metrics.sse_reset();
            }
            if !stream.write(&unit) {
                return Outcome::Close {
                    terminate: false,
                    dropped: false,
                };
            }
            if !stream.owed.is_empty() {
                return Outcome::Keep(None);
            }
        }
    }
}

impl Fanout {
    fn new() -> std::io::Result<Fanout> {
        Ok(Fanout {
            streams: RefCell::new(Slab::new()),
            fresh: RefCell::new(Vec::new()),
            watch: Watch::new()?,
            wake: event_listener::Event::new(),
            blocked: Cell::new(0),
        })
    }

    fn add(&self, handoff: Handoff) -> bool {
        let Handoff {
            socket,
            head,
            feed,
            opening,
            place,
        } = handoff;
        let mut stream = RawStream {
            socket,
            feed,
            owed: VecDeque::new(),
            armed: false,
            _place: place,
        };
        let mut first = vec![head];
        first.extend(chunked(opening).iter().cloned());
        if !stream.write(&first) {
            return false;
        }
        let mut streams = self.streams.borrow_mut();
        let entry = streams.vacant_entry();
        let key = entry.key();
        if self.watch.add(&stream.socket, key as u64).is_err() {
            return false;
        }
        entry.insert(stream);
        self.sync_armed(&mut streams[key], key);
        self.fresh.borrow_mut().push(key);
        self.wake.notify(1);
        true
    }

    /// Arms `EPOLLOUT` exactly while the stream owes bytes.
    fn sync_armed(&self, stream: &mut RawStream, key: usize) {
        let owes = !stream.owed.is_empty();
        if owes != stream.armed {
            stream.armed = owes;
            self.watch.want_writable(&stream.socket, key as u64, owes);
            let blocked = self.blocked.get();
            self.blocked
                .set(if owes { blocked + 1 } else { blocked - 1 });
        }
    }

    fn close(&self, ctx: &ExecutorContext, key: usize, terminate: bool, dropped: bool) {
        let Some(mut stream) = self.streams.borrow_mut().try_remove(key) else {
            return;
        };
        if stream.armed {
            self.blocked.set(self.blocked.get() - 1);
        }
        self.watch.remove(&stream.socket);
        if terminate && stream.owed.is_empty() {
            // Best effort: a socket that cannot take 5 bytes is closed all the same.
            let _ = stream.socket.send([&Bytes::from_static(LAST_CHUNK)]);
        }
        stream.owed.clear();
        if dropped {
            ctx.metrics.sse_dropped();
        }
        ctx.metrics.connection_closed();
    }

    /// Closes the streams whose clients left; flushes the ones that can take more.
    /// Batch by batch: each socket reported is dealt with (closed, or flushed until it
    /// would block or owes nothing) before the next batch is asked for, so every round
    /// brings new ones; the rounds are bounded by the streams there are.
    fn check_sockets(&self, pass: &mut Pass<'_>) {
        let rounds = self.streams.borrow().len() / READY_BATCH + 2;
        let mut ready = Vec::new();
        for _ in 0..rounds {
            ready.clear();
            let more = self.watch.ready(&mut ready);
            self.deal_with(pass, &ready);
            if !more {
                return;
            }
        }
    }

    fn deal_with(&self, pass: &mut Pass<'_>, ready: &[(u64, Readiness)]) {
        for &(token, readiness) in ready {
            let key = token as usize;
            match readiness {
                Readiness::Gone => self.close(pass.ctx, key, false, false),
                Readiness::Writable => {
                    let mut streams = self.streams.borrow_mut();
                    let Some(stream) = streams.get_mut(key) else {
                        continue;
                    };
                    if !stream.flush() {
                        drop(streams);
                        self.close(pass.ctx, key, false, false);
                        continue;
                    }
                    self.sync_armed(stream, key);
                    // A stream that caught up gets what it missed on this pass.
                    if stream.owed.is_empty() {
                        self.fresh.borrow_mut().push(key);
                    }
                }
            }
        }
    }

    /// Visits every stream, in slices of [`STREAMS_PER_SLICE`] with a turn for every
    /// other ready task of the executor between them (`yield_now` puts this task at
    /// the back of the run queue; glommio's `yield_if_needed` only yields once the task
    /// queue's time slice is spent, which a pass over 10,000 streams fits in); the
    /// earliest instant one of them owes something without a publication. A stream that
    /// arrives meanwhile is visited through `fresh`; one that closes meanwhile is skipped.
    async fn visit_all(&self, pass: &mut Pass<'_>) -> Option<Instant> {
        let keys: Vec<usize> = self.streams.borrow().iter().map(|(key, _)| key).collect();
        let mut earliest: Option<Instant> = None;
        for (n, slice) in keys.chunks(STREAMS_PER_SLICE).enumerate() {
            if n > 0 {
                futures_lite::future::yield_now().await;
            }
            if let Some(at) = self.visit(pass, slice) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        earliest
    }

    /// Visits `keys` (a key whose stream has closed is skipped); the earliest instant
    /// one of them owes something without a publication.
    fn visit(&self, pass: &mut Pass<'_>, keys: &[usize]) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut closing = Vec::new();
        {
            let mut streams = self.streams.borrow_mut();
            for &key in keys {
                let Some(stream) = streams.get_mut(key) else {
                    continue;
                };
                match pass.visit(stream) {
                    Outcome::Keep(wake) => {
                        if let Some(at) = wake {
                            earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        }
                        self.sync_armed(stream, key);
                    }
                    Outcome::Close { terminate, dropped } => {
                        closing.push((key, terminate, dropped))
                    }
                }
            }
        }
        for (key, terminate, dropped) in closing {
            self.close(pass.ctx, key, terminate, dropped);
        }
        earliest
    }
}

/// Drives this executor's fan-out until the executor stops: a pass over every stream
/// at each publication (and when a timer owes heartbeats or closes), the new and the
/// drained streams as soon as they appear.
pub async fn writer(ctx: Rc<ExecutorContext>) {
    let fanout = match Fanout::new() {
        Ok(fanout) => Rc::new(fanout),
        Err(e) => {
            // Subscriptions then stay on hyper's path (`hand_over` gives them back).
            tracing::warn!(error = %e, "no SSE fan-out writer on this executor");
            return;
        }
    };
    FANOUT.with(|f| *f.borrow_mut() = Some(fanout.clone()));
    let mut timer = glommio::timer::Timer::new(IDLE_CHECK);
    let mut due: Option<Instant> = None;
    let mut last_full = Instant::now();
    let mut full = true;
    loop {
        let changed = ctx.published.changed();
        let woken = fanout.wake.listen();
        let published = ctx.published.current();
        let now = Instant::now();
        let mut pass = Pass {
            ctx: &ctx,
            published: &published,
            moment: Moment::at(&ctx.shared, now),
            units: Vec::new(),
        };
        fanout.check_sockets(&mut pass);
        let fresh = std::mem::take(&mut *fanout.fresh.borrow_mut());
        if full || due.is_some_and(|at| now >= at) {
            due = fanout.visit_all(&mut pass).await;
            last_full = now;
        } else if !fresh.is_empty() {
            if let Some(at) = fanout.visit(&mut pass, &fresh) {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
        drop(pass);
        let check = if fanout.blocked.get() > 0 {
            BLOCKED_CHECK
        } else {
            IDLE_CHECK
        };
        let mut wake_at = now + check;
        if let Some(at) = due {
            wake_at = wake_at.min(at.max(last_full + TIMER_PASS_SPACING));
        }
        timer.reset(wake_at.saturating_duration_since(Instant::now()));
        let timer = &mut timer;
        full = futures_lite::future::or(
            async {
                changed.await;
                true
            },
            futures_lite::future::or(
                async {
                    woken.await;
                    false
                },
                async {
                    timer.await;
                    false
                },
            ),
        )
        .await;
    }
}
