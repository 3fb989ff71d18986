//! The client's thread: keeps the local topology current and publishes a routing
//! table per applied version.
//!
//! One loop: bring the local copy up to the current server (a snapshot, or the
//! events since the local version), then follow its SSE stream from the local
//! version (`Last-Event-ID`), applying each change set once, in order. Any failure
//! (connect, 503, timeout, a malformed answer, a server behind the client) moves to
//! the next server after a jittered exponential backoff; a gap or `Reset` makes the
//! client resynchronise. Versions at or below the local one are skipped, so a resume
//! or a refresh never applies a version twice, and the published version never
//! goes back.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_model::{TopologyEvent, TopologySnapshot, TopologyState};

use crate::backoff::{self, Backoff};
use crate::error::SyncError;
use crate::http::{BodyDecoder, Conn, Endpoint, Read};
use crate::options::{ClientOptions, ReadConsistency};
use crate::shared::{bump, lock, Change, Shared};
use crate::table::RoutingTable;
use crate::wire::{self, SnapshotAnswer};

/// How a session with one server ended without an error.
pub(crate) enum Outcome {
    /// The server closed the stream cleanly, after it was open for this long.
    Closed(Duration),
    /// A gap or an inconsistency: fetch from the same server, then resume.
    Resync,
}

/// A stream that lived at least this long before a clean close was healthy.
const MIN_HEALTHY_STREAM: Duration = Duration::from_secs(2);

pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) opts: ClientOptions,
    endpoints: Vec<Endpoint>,
    /// Shared by every `https://` connection (`None`: no `ca_file`).
    tls: Option<Arc<rustls::ClientConfig>>,
    current: usize,
    pub(crate) state: Option<TopologyState>,
    pub(crate) backoff: Backoff,
    /// A keep-alive connection to `endpoints[current]` for plain requests.
    conn: Option<Conn>,
    need_fetch: bool,
    resync_streak: u32,
    last_refresh: Option<Instant>,
    /// The server's `retry:` (ms): how long to wait before resuming a closed stream.
    pub(crate) retry_hint: Option<Duration>,
}

impl Worker {
    pub fn new(
        shared: Arc<Shared>,
        opts: ClientOptions,
        endpoints: Vec<Endpoint>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Worker {
        Worker {
            backoff: Backoff::new(opts.backoff_min, opts.backoff_max, backoff::seed()),
            shared,
            opts,
            endpoints,
            tls,
            current: 0,
            state: None,
            conn: None,
            need_fetch: true,
            resync_streak: 0,
            last_refresh: None,
            retry_hint: None,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.current]
    }

    pub fn run(mut self) {
        let _ = self.shared.worker.set(std::thread::current().id());
        while !self.shared.stopped() {
            match self.session() {
                // A long stream ended by the server's subscription timeout (or for
                // lagging): resume there at once, nothing is lost.
                Ok(Outcome::Closed(lived)) if lived >= MIN_HEALTHY_STREAM => {}
                // Closed right after opening (e.g. the server has lost its leader).
                Ok(Outcome::Closed(_)) => self.fail(SyncError::Protocol(
                    "the server ended the event stream right after opening it".into(),
                )),
                Ok(Outcome::Resync) => {
                    self.need_fetch = true;
                    self.resync_streak += 1;
                    bump(&self.shared.counters.resyncs);
                    if self.resync_streak > 3 {
                        // This server keeps sending what does not apply: try another.
                        self.fail(SyncError::Protocol(
                            "repeated resynchronisations on one server".into(),
                        ));
                    }
                }
                Err(SyncError::Stopped) => break,
                Err(e) => self.fail(e),
            }
        }
        self.shared.counters.streaming.store(false, Relaxed);
    }

    /// Records a failure, moves to the next server and waits the backoff delay.
    fn fail(&mut self, e: SyncError) {
        let server = self.endpoint().authority.clone();
        self.shared.set_error(format!("{server}: {e}"));
        bump(&self.shared.counters.failovers);
        self.conn = None;
        self.resync_streak = 0;
        self.current = (self.current + 1) % self.endpoints.len();
        self.shared
            .counters
            .current_server
            .store(self.current, Relaxed);
        let delay = self.backoff.next_delay();
        self.shared.sleep(delay, false);
    }

    fn session(&mut self) -> Result<Outcome, SyncError> {
        if self.need_fetch || self.state.is_none() {
            self.fetch(self.opts.consistency)?;
            self.need_fetch = false;
        }
        match self.stream()? {
            Some(outcome) => Ok(outcome),
            None => self.poll(),
        }
    }

    /// Against a server without `/subscribe`: fetch the events since the local
    /// version every `retry:` hint (1 s by default) until something fails.
    fn poll(&mut self) -> Result<Outcome, SyncError> {
        loop {
            let wait = self.retry_hint.unwrap_or(Duration::from_secs(1));
            if self.shared.sleep(wait, true) && self.shared.stopped() {
                return Err(SyncError::Stopped);
            }
            if self.refresh_due() {
                self.refresh()?;
            } else {
                bump(&self.shared.counters.polls);
                self.fetch(self.opts.consistency)?;
            }
            self.backoff.reset();
        }
    }

    /// True when `report_stale` asked for a refresh and the rate limit allows it.
    pub(crate) fn refresh_due(&self) -> bool {
        lock(&self.shared.control).refresh
            && self
                .last_refresh
                .is_none_or(|t| t.elapsed() >= self.opts.stale_refresh_interval)
    }

    /// One refresh for every `report_stale` since the last: the events since the
    /// local version from a linearizable read (so a lagging server cannot answer
    /// with the same stale state).
    pub(crate) fn refresh(&mut self) -> Result<(), SyncError> {
        lock(&self.shared.control).refresh = false;
        self.last_refresh = Some(Instant::now());
        bump(&self.shared.counters.refreshes);
        self.fetch(ReadConsistency::Linearizable)
    }

    /// Brings the local copy up to the server: the events since the local version
    /// when it still has them, its whole snapshot otherwise.
    fn fetch(&mut self, consistency: ReadConsistency) -> Result<(), SyncError> {
        self.fetch_with(consistency, true)
    }

    /// `delta`: ask for the events since the local version (else the whole snapshot).
    fn fetch_with(&mut self, consistency: ReadConsistency, delta: bool) -> Result<(), SyncError> {
        let since = self
            .state
            .as_ref()
            .filter(|_| delta)
            .map(TopologyState::version);
        let mut target = String::from("/api/topology/snapshot");
        let mut sep = '?';
        if let Some(v) = since {
            target.push_str(&format!("?since={v}"));
            sep = '&';
        }
        if consistency == ReadConsistency::Linearizable {
            target.push(sep);
            target.push_str("consistency=linearizable");
        }
        let mut body = self.get(&target)?;
        match wire::parse_snapshot_answer(&mut body)? {
            SnapshotAnswer::Full(snapshot) => self.install_snapshot(snapshot),
            SnapshotAnswer::Delta {
                since: from,
                version,
                events,
                has_more,
            } => {
                if Some(from) != since {
                    return Err(SyncError::Protocol(format!(
                        "asked for the events since {since:?}, got those since {from}"
                    )));
                }
                let mut sets = wire::by_version(events);
                if !self.apply_sets(&mut sets) {
                    // The events do not apply here: take the whole snapshot instead.
                    return self.fetch_with(consistency, false);
                }
                let local = self.state.as_ref().map_or(0, TopologyState::version);
                if has_more && local > from {
                    return self.fetch_with(consistency, true);
                }
                if local < version {
                    return self.fetch_with(consistency, false);
                }
                Ok(())
            }
        }
    }

    /// Replaces the local copy with a snapshot that is not older than it.
    pub(crate) fn install_snapshot(&mut self, snapshot: TopologySnapshot) -> Result<(), SyncError> {
        let previous = self.state.as_ref().map_or(0, TopologyState::version);
        if snapshot.version < previous {
            return Err(SyncError::Behind {
                server: snapshot.version,
                local: previous,
            });
        }
        if let Some(state) = &self.state {
            if state.version() == snapshot.version && state.config_hash() == snapshot.config_hash {
                return Ok(()); // the same topology: nothing to publish
            }
        }
        let state = TopologyState::from_snapshot(snapshot, 0)?;
        let version = state.version();
        // Counted before publishing, so a waiter woken by the new version sees it.
        bump(&self.shared.counters.snapshots_loaded);
        self.shared.publish(RoutingTable::build(&state));
        self.state = Some(state);
        self.shared.dispatch(&Change {
            previous_version: previous,
            version,
            reset: true,
            events: &[],
        });
        Ok(())
    }

    /// Applies complete change sets in order, publishes once, then tells the
    /// listeners version by version. Returns false on a gap or an inconsistency
    /// (what applied before it stays applied).
    pub(crate) fn apply_sets(&mut self, sets: &mut Vec<(u64, Vec<TopologyEvent>)>) -> bool {
        let Some(state) = self.state.as_mut() else {
            sets.clear();
            return false;
        };
        let c = &self.shared.counters;
        let mut applied = Vec::new();
        let mut ok = true;
        for (version, events) in sets.drain(..) {
            if !ok {
                continue;
            }
            if version <= state.version() {
                bump(&c.duplicates_skipped);
                continue;
            }
            let previous = state.version();
            match state.apply_events(version, &events) {
                Ok(()) => {
                    bump(&c.versions_applied);
                    c.events_applied.fetch_add(events.len() as u64, Relaxed);
                    applied.push((previous, version, events));
                }
                Err(e) => {
                    let server = &self.endpoints[self.current].authority;
                    self.shared
                        .set_error(format!("{server}: {e}; resynchronising"));
                    ok = false;
                }
            }
        }
        if !applied.is_empty() {
            self.resync_streak = 0;
            let first_previous = applied[0].0;
            let table = match self.shared.table.load_full() {
                // Health-only bursts share the previous table's layout.
                Some(prev) if prev.version() == first_previous => {
                    prev.next(state, applied.iter().flat_map(|(_, _, e)| e.iter()))
                }
                _ => RoutingTable::build(state),
            };
            self.shared.publish(table);
            for (previous, version, events) in &applied {
                self.shared.dispatch(&Change {
                    previous_version: *previous,
                    version: *version,
                    reset: false,
                    events,
                });
            }
        }
        ok
    }

    /// Common headers of every request.
    pub(crate) fn auth_header(&self) -> Option<String> {
        self.opts.auth_token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// GET on the current server over the keep-alive connection; the body of a 200.
    fn get(&mut self, target: &str) -> Result<Vec<u8>, SyncError> {
        if self.conn.is_some() {
            // A kept connection may have been closed by the server while idle; only
            // then is it worth one more try on a fresh one.
            match self.get_once(target) {
                Err(SyncError::Io(_) | SyncError::Closed) if !self.shared.stopped() => {}
                other => return other,
            }
        }
        self.get_once(target)
    }

    fn get_once(&mut self, target: &str) -> Result<Vec<u8>, SyncError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let auth = self.auth_header();
        let mut headers = vec![("Accept", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        conn.send_get(self.endpoint(), target, &headers)?;
        let head = self.read_head(&mut conn)?;
        let mut decoder = BodyDecoder::new(&head.body);
        let mut body = Vec::new();
        let mut idle_since = Instant::now();
        while !decoder.is_done() {
            let used = decoder.decode(conn.pending(), &mut body)?;
            conn.consume(used);
            if body.len() > self.opts.max_message_bytes {
                return Err(SyncError::Protocol(format!(
                    "{target}: the answer is larger than {} bytes",
                    self.opts.max_message_bytes
                )));
            }
            if decoder.is_done() {
                break;
            }
            if self.wait(&mut conn, &mut idle_since)? == Read::Eof {
                if head.body == crate::http::BodyKind::UntilClose {
                    break;
                }
                return Err(SyncError::Closed);
            }
        }
        if head.status != 200 {
            return Err(SyncError::Status {
                path: target.to_string(),
                status: head.status,
                message: wire::error_message(&body),
            });
        }
        if head.keep_alive && conn.pending().is_empty() {
            self.conn = Some(conn);
        }
        Ok(body)
    }

    pub(crate) fn connect(&self) -> Result<Conn, SyncError> {
        Conn::connect(
            self.endpoint(),
            self.opts.connect_timeout,
            self.tls.as_ref(),
        )
        .map_err(SyncError::Connect)
    }

    /// Reads a response head, waiting at most `read_timeout` between bytes.
    pub(crate) fn read_head(&self, conn: &mut Conn) -> Result<crate::http::Head, SyncError> {
        let mut idle_since = Instant::now();
        loop {
            if let Some(head) = conn.take_head()? {
                self.shared.reached.store(true, Relaxed);
                return Ok(head);
            }
            if self.wait(conn, &mut idle_since)? == Read::Eof {
                return Err(SyncError::Closed);
            }
        }
    }

    /// Waits one tick for bytes; fails when stopping or silent for `read_timeout`.
    pub(crate) fn wait(
        &self,
        conn: &mut Conn,
        idle_since: &mut Instant,
    ) -> Result<Read, SyncError> {
        let got = conn.fill()?;
        match got {
            Read::Data => *idle_since = Instant::now(),
            Read::Eof => {}
            Read::Idle => {
                if self.shared.stopped() {
                    return Err(SyncError::Stopped);
                }
                if idle_since.elapsed() >= self.opts.read_timeout {
                    return Err(SyncError::Idle(self.opts.read_timeout));
                }
            }
        }
        Ok(got)
    }
}
