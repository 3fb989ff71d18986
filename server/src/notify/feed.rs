//! The SSE rules of one subscriber, whoever drives its socket (the fan-out writer,
//! `fanout`, or a hyper response body, `subscribers::open`): what it is owed at a
//! publication (the frames after its cursor, or a `Reset`), keep-alive + `Progress`
//! when idle, the lag cut-off, the subscription timeout, the leader-loss close, and
//! the close of a stream whose token a credential reload no longer accepts.
//! A [`Feed`] holds no frames and no buffers: only a cursor, a filter, two instants
//! and the digest of the token it opened with, plus its [`Slot`] in the subscriber count.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::leader_loss;
use super::subscribers::{lagging, Slot, StreamStart};
use crate::config::LiveCredentials;
use crate::executor::Shared;
use crate::net::bearer::{Presented, Scope};
use crate::publish::frames::{progress_frame, retry_line, EventFilter, KEEP_ALIVE};
use crate::publish::Published;

/// What is true of the whole executor at one instant, computed once per pass.
#[derive(Clone, Copy, Debug)]
pub struct Moment<'a> {
    pub now: Instant,
    /// No leader heard for longer than the election timeout: every stream ends.
    pub leader_lost: bool,
    /// While no leader is heard: when streams must close.
    pub leader_closes_at: Option<Instant>,
    /// The generation of the client tokens in force: a stream checks its token again
    /// (against `credentials`, loaded only then) when it moved since it last did.
    generation: u64,
    credentials: &'a LiveCredentials,
}

impl Moment<'_> {
    pub fn at(shared: &Shared, now: Instant) -> Moment<'_> {
        Moment {
            now,
            leader_lost: leader_loss::lost(shared),
            leader_closes_at: leader_loss::closes_at(shared, now),
            generation: shared.credentials.client_generation(),
            credentials: &shared.credentials,
        }
    }
}

/// What a stream owes at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The frames of the versions after `from` (see [`changes`]); the cursor moved on.
    Changes { from: u64 },
    /// A keep-alive comment and a `Progress` at `version` (see [`heartbeat`]).
    Heartbeat { version: u64 },
    /// The stream ends (subscription timeout, no leader heard, or its token is no
    /// longer accepted).
    End,
    /// Too far behind: cut off (it resumes with `Last-Event-ID`).
    Lagging,
    /// Nothing owed before `wake_at` or the next publication.
    Idle { wake_at: Instant },
}

/// One subscriber's position and clocks.
pub struct Feed {
    cursor: u64,
    filter: EventFilter,
    closes_at: Instant,
    idle_since: Instant,
    heartbeat: Duration,
    queue_bound: u64,
    /// The token the subscribe presented, and the credentials generation it was last
    /// found good under (`None`: not yet checked by a pass).
    presented: Presented,
    checked: Option<u64>,
    /// Given back when the stream is dropped.
    _slot: Slot,
}

fn jitter(base: Duration, fraction: f64) -> Duration {
    base.mul_f64(1.0 + fastrand::f64() * fraction)
}

impl Feed {
    /// A new stream at `start.cursor`, and the frames that open it: the `retry:` line,
    /// and a `Progress` when it starts at the current version (so the client knows
    /// at once where it stands).
    pub fn open(shared: &Shared, current: u64, start: StreamStart) -> (Feed, Vec<Bytes>) {
        let notifications = &shared.config.topology.notifications;
        let now = Instant::now();
        let mut opening = vec![retry_line(1000 + fastrand::u64(0..1000))];
        if start.cursor == current {
            opening.push(progress_frame(start.cursor));
        }
        let feed = Feed {
            cursor: start.cursor,
            filter: start.filter,
            closes_at: now + jitter(notifications.subscription_timeout, 0.1),
            idle_since: now,
            heartbeat: notifications.heartbeat_interval,
            queue_bound: notifications.subscriber_queue as u64,
            presented: start.presented,
            checked: None,
            _slot: start.slot,
        };
        (feed, opening)
    }

    /// The last version this stream was handed.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn filter(&self) -> EventFilter {
        self.filter
    }

    /// True when the stream must end whatever it owes.
    pub fn ended(&mut self, moment: &Moment) -> bool {
        moment.now >= self.closes_at || moment.leader_lost || self.revoked(moment)
    }

    /// True when the credentials in force no longer let this stream's token read.
    /// Checked once per credentials generation (and once at the first pass, which
    /// closes the gap between the subscribe's own check and a reload meanwhile).
    fn revoked(&mut self, moment: &Moment) -> bool {
        if self.checked == Some(moment.generation) {
            return false;
        }
        if !moment
            .credentials
            .client()
            .grant_presented(self.presented)
            .allows(Scope::Read)
        {
            return true;
        }
        self.checked = Some(moment.generation);
        false
    }

    /// True when `published` is too far ahead of this stream to keep it.
    pub fn lagging(&self, published: &Published) -> bool {
        lagging(published.version, self.cursor, self.queue_bound)
    }

    /// What this stream owes now, given the executor's `published` state; moves the
    /// cursor (and the idle clock) as if the answer were sent.
    pub fn next(&mut self, published: &Published, moment: &Moment) -> Step {
        if self.ended(moment) {
            return Step::End;
        }
        if published.version > self.cursor {
            if self.lagging(published) {
                return Step::Lagging;
            }
            let from = self.cursor;
            self.cursor = published.version;
            self.idle_since = moment.now;
            return Step::Changes { from };
        }
        let heartbeat_at = self.idle_since + self.heartbeat;
        if moment.now >= heartbeat_at {
            self.idle_since = moment.now;
            return Step::Heartbeat {
                version: self.cursor,
            };
        }
        let mut wake_at = heartbeat_at.min(self.closes_at);
        if let Some(closes) = moment.leader_closes_at {
            wake_at = wake_at.min(closes);
        }
        Step::Idle { wake_at }
    }
}

/// Appends to `out` the frames of the versions after `from` that `filter` admits, or
/// the `Reset` frame when the history no longer holds them; true for a `Reset`.
pub fn changes(
    published: &Published,
    from: u64,
    filter: EventFilter,
    out: &mut Vec<Bytes>,
) -> bool {
    match published.frames_after(from) {
        Some(range) => {
            for i in range {
                published.frames[i].write_filtered(&filter, out);
            }
            false
        }
        None => {
            out.push(published.reset_frame().clone());
            true
        }
    }
}

/// The idle frames: a keep-alive comment and the `Progress` at `version`.
pub fn heartbeat(version: u64, out: &mut Vec<Bytes>) {
    out.push(Bytes::from_static(KEEP_ALIVE));
    out.push(progress_frame(version));
}
