//! Following one server's SSE stream (`GET /api/topology/subscribe`): resume from
//! the local version with `Last-Event-ID`, gather each change set up to the event
//! that carries `id: <version>`, apply what is complete, handle `Reset` and
//! `Progress`, and run `report_stale` refreshes while the stream is quiet.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use concord_model::{TopologyEvent, TopologyState};

use crate::error::SyncError;
use crate::http::{BodyDecoder, Read};
use crate::shared::bump;
use crate::sse::{SseEvent, SseParser};
use crate::wire;
use crate::worker::{Outcome, Worker};

/// What one SSE event asks of the stream loop.
enum Step {
    Continue,
    Resync,
}

/// Change sets of a stream: the one being gathered and those complete.
#[derive(Default)]
struct Sets {
    pending: Vec<TopologyEvent>,
    ready: Vec<(u64, Vec<TopologyEvent>)>,
}

impl Worker {
    /// Follows the stream until it ends. `Ok(None)`: the server has no SSE route
    /// (404/405/501), so the caller polls instead.
    pub(crate) fn stream(&mut self) -> Result<Option<Outcome>, SyncError> {
        let from = self.state.as_ref().map_or(0, TopologyState::version);
        let mut conn = self.connect()?;
        let last_id = from.to_string();
        let auth = self.auth_header();
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Last-Event-ID", last_id.as_str()),
        ];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        conn.send_get(self.endpoint(), "/api/topology/subscribe", &headers)?;
        let head = self.read_head(&mut conn)?;
        if matches!(head.status, 404 | 405 | 501) {
            return Ok(None);
        }
        if head.status != 200 {
            // 503: this server has not applied our version yet (or lost its leader).
            let mut body = Vec::new();
            let mut decoder = BodyDecoder::new(&head.body);
            let _ = decoder.decode(conn.pending(), &mut body);
            return Err(SyncError::Status {
                path: "/api/topology/subscribe".into(),
                status: head.status,
                message: wire::error_message(&body),
            });
        }
        let sse = head
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if !sse {
            return Err(SyncError::Protocol(format!(
                "/api/topology/subscribe answered Content-Type {:?}, not text/event-stream",
                head.content_type
            )));
        }
        let c = &self.shared.counters;
        bump(&c.streams_opened);
        c.streaming.store(true, Relaxed);
        let result = self.follow(&mut conn, BodyDecoder::new(&head.body));
        self.shared.counters.streaming.store(false, Relaxed);
        result.map(Some)
    }

    fn follow(
        &mut self,
        conn: &mut crate::http::Conn,
        mut body: BodyDecoder,
    ) -> Result<Outcome, SyncError> {
        let mut parser = SseParser::new(self.opts.max_message_bytes);
        let mut sets = Sets::default();
        let mut chunk = Vec::new();
        let opened = Instant::now();
        let mut idle_since = opened;
        loop {
            chunk.clear();
            let used = body.decode(conn.pending(), &mut chunk)?;
            conn.consume(used);
            parser.feed(&chunk);
            while let Some(event) = parser.next_event()? {
                if let Step::Resync = self.on_event(event, &mut sets)? {
                    self.apply_sets(&mut sets.ready);
                    return Ok(Outcome::Resync);
                }
            }
            if let Some(ms) = parser.retry() {
                self.retry_hint = Some(Duration::from_millis(ms));
            }
            // Everything complete in this burst is applied at once: one table per burst.
            if !sets.ready.is_empty() {
                if !self.apply_sets(&mut sets.ready) {
                    return Ok(Outcome::Resync);
                }
                self.backoff.reset();
            }
            if body.is_done() {
                // A clean end (the server's subscription timeout): resume.
                return Ok(Outcome::Closed(opened.elapsed()));
            }
            if self.refresh_due() {
                self.refresh()?;
            }
            match self.wait(conn, &mut idle_since)? {
                Read::Data => {}
                Read::Idle => {}
                // Cut off mid-stream (the server died?): try the next server now.
                Read::Eof => return Err(SyncError::Closed),
            }
        }
    }

    fn on_event(&mut self, mut e: SseEvent, sets: &mut Sets) -> Result<Step, SyncError> {
        let id = match &e.id {
            Some(id) => Some(id.trim().parse::<u64>().map_err(|_| {
                SyncError::Protocol(format!("event id {id:?} is not a version number"))
            })?),
            None => None,
        };
        match e.event.as_str() {
            "Reset" => {
                // Our version is older than the server's history: the whole snapshot.
                sets.pending.clear();
                self.apply_sets(&mut sets.ready);
                let snapshot = wire::parse_snapshot(&mut e.data)?;
                if id.is_some_and(|v| v != snapshot.version) {
                    return Err(SyncError::Protocol(format!(
                        "Reset id {id:?} differs from its snapshot's version {}",
                        snapshot.version
                    )));
                }
                bump(&self.shared.counters.resyncs);
                self.install_snapshot(snapshot)?;
                self.backoff.reset();
                Ok(Step::Continue)
            }
            "Progress" => {
                let version = wire::parse_progress(&mut e.data)?;
                if !sets.pending.is_empty() {
                    // Progress never comes inside a change set: a version was split.
                    return Ok(Step::Resync);
                }
                if !self.apply_sets(&mut sets.ready) {
                    return Ok(Step::Resync);
                }
                self.backoff.reset();
                let local = self.state.as_ref().map_or(0, TopologyState::version);
                // Everything up to `version` was sent; if we do not have it, some was lost.
                Ok(if version > local {
                    Step::Resync
                } else {
                    Step::Continue
                })
            }
            name => {
                let event = wire::parse_event(&mut e.data)?;
                if event.event_type.as_str() != name {
                    return Err(SyncError::Protocol(format!(
                        "event: {name} carries a {} event",
                        event.event_type
                    )));
                }
                if sets
                    .pending
                    .first()
                    .is_some_and(|p| p.version != event.version)
                {
                    // A version ended without its id: its end was lost.
                    return Ok(Step::Resync);
                }
                let version = event.version;
                sets.pending.push(event);
                if let Some(v) = id {
                    if v != version {
                        return Err(SyncError::Protocol(format!(
                            "id {v} on an event of version {version}"
                        )));
                    }
                    sets.ready.push((v, std::mem::take(&mut sets.pending)));
                }
                Ok(Step::Continue)
            }
        }
    }
}
