//! `watch`: follows `GET /api/topology/subscribe` and prints one line per event.
//!
//! A version's events are printed only once its block with `id:` arrived (the server
//! marks the end of a change set that way), so after a disconnect the stream resumes
//! with `Last-Event-ID` on the next endpoint and no version is printed twice or lost.

use std::time::{Duration, Instant};

use concord_api::TopologyEvent;
use concordkv_topology::http::{BodyDecoder, Read};
use concordkv_topology::{SseEvent, SseParser};

use crate::answer::refusal;
use crate::cli::{Output, WatchArgs};
use crate::error::{CtlError, Result};
use crate::render::or_dash;
use crate::transport::{wait_within, NoAnswer, Opened, Reply, Transport};

const SUBSCRIBE: &str = "/api/topology/subscribe";

/// The server sends a comment every 15 s by default; three missed ones mean it is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// Largest event accepted (a `Reset` carries a whole snapshot).
const MAX_EVENT: usize = 64 << 20;

/// Pause between rounds over the endpoints when none would stream.
const ROUND_PAUSE: Duration = Duration::from_millis(250);

/// One line of human output for an event.
pub fn event_line(e: &TopologyEvent) -> String {
    let subject = match (&e.node_id, &e.shard_id) {
        (Some(n), Some(s)) => format!("node={n} shard={s}"),
        (Some(n), None) => format!("node={n}"),
        (None, Some(s)) => format!("shard={s}"),
        (None, None) => String::new(),
    };
    format!("{} {} {}", e.version, e.event_type, subject)
        .trim_end()
        .to_string()
}

/// Where the watch is: what was printed, what is buffered, when to stop.
struct Watch<'a> {
    args: &'a WatchArgs,
    output: Output,
    /// The last complete version printed (or the start point): the resume point.
    last: Option<u64>,
    printed: u64,
    /// Events of the change set being received (its `id:` block not yet seen).
    pending: Vec<SseEvent>,
    stop_at: Option<Instant>,
}

enum End {
    /// `--max-events` or `--for` reached.
    Done,
    /// The stream broke: resume elsewhere.
    Broken,
}

pub fn run(t: &Transport, args: &WatchArgs, output: Output) -> Result<()> {
    let mut w = Watch {
        args,
        output,
        last: args.since,
        printed: 0,
        pending: Vec::new(),
        stop_at: args.duration.map(|d| Instant::now() + d),
    };
    let mut target = SUBSCRIBE.to_string();
    if !args.types.is_empty() {
        target.push_str(&format!("?eventTypes={}", args.types.join(",")));
    }
    // Since the last stream that worked (or the start): how long nothing would stream.
    let mut failing_since = Instant::now();
    loop {
        if w.finished() {
            return Ok(());
        }
        let mut reasons = Vec::new();
        let order: Vec<usize> = t.order().collect();
        for i in order {
            let opened = match open(t, i, &target, w.last) {
                Ok(Ok(opened)) => opened,
                Ok(Err(reply)) if reply.status == 503 => {
                    reasons.push(refusal(&reply).to_string());
                    continue;
                }
                Ok(Err(reply)) => return Err(refusal(&reply)),
                Err(e) => {
                    reasons.push(format!("{}: {e}", t.endpoints[i].authority));
                    continue;
                }
            };
            failing_since = Instant::now();
            // Next time, start with the endpoint after this one: it may be the one
            // that just went away.
            t.prefer((i + 1) % t.endpoints.len());
            if let End::Done = w.follow(opened) {
                return Ok(());
            }
            break;
        }
        if !reasons.is_empty() && failing_since.elapsed() >= t.timeout {
            return Err(CtlError::Unreachable(reasons.join("; ")));
        }
        std::thread::sleep(ROUND_PAUSE);
    }
}

/// Opens the stream on one endpoint: the stream, or the refusal, or why no answer.
fn open(
    t: &Transport,
    endpoint: usize,
    target: &str,
    last: Option<u64>,
) -> std::result::Result<std::result::Result<Opened, Reply>, std::io::Error> {
    let last = last.map(|v| v.to_string());
    let mut headers = vec![
        ("Accept", "text/event-stream"),
        ("Cache-Control", "no-cache"),
    ];
    if let Some(last) = &last {
        headers.push(("Last-Event-ID", last));
    }
    let opened = match t.open(endpoint, "GET", target, None, &headers) {
        Ok(opened) => opened,
        Err(NoAnswer::Connect(e) | NoAnswer::Lost(e)) => return Err(e),
    };
    if opened.head.status == 200 {
        return Ok(Ok(opened));
    }
    t.finish(endpoint, opened).map(Err)
}

impl Watch<'_> {
    fn finished(&self) -> bool {
        self.args.max_events.is_some_and(|max| self.printed >= max)
            || self.stop_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Follows one stream until it breaks or the watch is done.
    fn follow(&mut self, mut opened: Opened) -> End {
        if self.last.is_none() {
            // Without a start point the stream begins at the server's current version.
            self.last = opened.version;
        }
        // A change set cut off mid-way is sent again whole from the resume point.
        self.pending.clear();
        let conn = &mut opened.conn;
        let mut body = BodyDecoder::new(&opened.head.body);
        let mut parser = SseParser::new(MAX_EVENT);
        let mut chunk = Vec::new();
        let mut idle_since = Instant::now();
        loop {
            chunk.clear();
            let Ok(used) = body.decode(conn.pending(), &mut chunk) else {
                return End::Broken;
            };
            conn.consume(used);
            parser.feed(&chunk);
            loop {
                match parser.next_event() {
                    Ok(Some(event)) => self.on_event(event),
                    Ok(None) => break,
                    Err(_) => return End::Broken,
                }
                if self.finished() {
                    return End::Done;
                }
            }
            if self.finished() {
                return End::Done;
            }
            if body.is_done() {
                return End::Broken;
            }
            match wait_within(conn, &mut idle_since, SILENCE_LIMIT) {
                Ok(Read::Data | Read::Idle) => {}
                Ok(Read::Eof) | Err(_) => return End::Broken,
            }
        }
    }

    /// Buffers an event; prints its change set once the set is complete (`id:`).
    fn on_event(&mut self, event: SseEvent) {
        let id = event
            .id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok());
        match event.event.as_str() {
            // A whole snapshot (the resume point was older than the history).
            "Reset" => {
                self.pending.clear();
                self.emit(&event);
                self.last = id.or(self.last);
                return;
            }
            // Ends a change set whose last event the type filter left out.
            "Progress" => {}
            _ => self.pending.push(event),
        }
        let Some(id) = id else { return };
        for event in std::mem::take(&mut self.pending) {
            if self.finished() {
                break;
            }
            self.emit(&event);
        }
        self.last = Some(id);
    }

    fn emit(&mut self, event: &SseEvent) {
        let data = String::from_utf8_lossy(&event.data);
        match self.output {
            Output::Json => println!("{data}"),
            Output::Table if event.event == "Reset" => {
                println!("{} Reset (whole snapshot)", or_dash(event.id.as_deref()))
            }
            Output::Table => match serde_json::from_str::<TopologyEvent>(&data) {
                Ok(e) => println!("{}", event_line(&e)),
                Err(_) => println!("{} {data}", event.event),
            },
        }
        self.printed += 1;
    }
}

#[cfg(test)]
mod tests {
    use concord_api::EventType;

    use super::*;

    #[test]
    fn an_event_line_names_the_version_type_and_subject() {
        let mut e = TopologyEvent {
            event_type: EventType::ShardMove,
            version: 7,
            timestamp: 0,
            node_id: None,
            shard_id: Some("s1".into()),
            old_value: None,
            new_value: None,
        };
        assert_eq!(event_line(&e), "7 ShardMove shard=s1");
        e.shard_id = None;
        assert_eq!(event_line(&e), "7 ShardMove");
    }
}
