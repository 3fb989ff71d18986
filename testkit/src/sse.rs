//! An SSE reader for `GET /api/topology/subscribe`: the response head, the chunked
//! body and the events, parsed by the client library's own code (its head parser,
//! body decoder and `SseParser`).
//!
//! [`SseDecoder`] is sans-IO (bytes in, events out), so the harness can drive it
//! from glommio sockets; [`SseClient`] is the blocking reader the tests use.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use concordkv_topology::http::{parse_head, BodyDecoder};
use concordkv_topology::SseParser;

/// Largest event accepted (a `Reset` carries a whole snapshot).
const MAX_EVENT_BYTES: usize = 256 << 20;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`"message"` when the block had none).
    pub event: String,
    /// The `id:` of this block, if it had one.
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }

    /// The version this event completes: its `id:` as a number, for the topology's
    /// change events (`Progress` and `Reset` carry ids that complete no change set).
    pub fn completed_version(&self) -> Option<u64> {
        if self.event == "Progress" || self.event == "Reset" {
            return None;
        }
        self.id.as_deref()?.parse().ok()
    }
}

/// The response head of a subscription.
#[derive(Debug)]
struct Head {
    status: u16,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: BodyDecoder,
}

/// Bytes of one SSE response in, its head and events out.
#[derive(Debug)]
pub struct SseDecoder {
    /// Received bytes not decoded yet (the head, or a partial chunk line).
    raw: Vec<u8>,
    head: Option<Head>,
    /// Decoded body bytes, reused between feeds.
    body: Vec<u8>,
    parser: SseParser,
}

impl Default for SseDecoder {
    fn default() -> SseDecoder {
        SseDecoder {
            raw: Vec::new(),
            head: None,
            body: Vec::new(),
            parser: SseParser::new(MAX_EVENT_BYTES),
        }
    }
}

impl SseDecoder {
    /// Takes bytes as the socket delivered them; fails on a malformed head or chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw.extend_from_slice(bytes);
        if self.head.is_none() {
            let mut headers = Vec::new();
            let parsed = parse_head(&self.raw, |k, v| {
                headers.push((k.to_ascii_lowercase(), v.to_string()))
            })?;
            let Some((head, used)) = parsed else {
                return Ok(());
            };
            self.raw.drain(..used);
            self.head = Some(Head {
                status: head.status,
                headers,
                body: BodyDecoder::new(&head.body),
            });
        }
        let head = self.head.as_mut().expect("parsed above");
        self.body.clear();
        let used = head.body.decode(&self.raw, &mut self.body)?;
        self.raw.drain(..used);
        self.parser.feed(&self.body);
        Ok(())
    }

    /// The response status, once the head is in.
    pub fn status(&self) -> Option<u16> {
        self.head.as_ref().map(|h| h.status)
    }

    /// True when the head said anything but 200 (e.g. 503: try another server).
    pub fn rejected(&self) -> bool {
        self.status().is_some_and(|s| s != 200)
    }

    /// A response header (`name` lower-case), once the head is in.
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.head.as_ref()?;
        head.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the body ended (the last chunk, or all of a `Content-Length`).
    pub fn body_done(&self) -> bool {
        self.head.as_ref().is_some_and(|h| h.body.is_done())
    }

    /// The next complete event, if the bytes fed so far hold one.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let event = self
            .parser
            .next_event()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(event.map(|e| SseEvent {
            event: e.event,
            id: e.id,
            data: String::from_utf8_lossy(&e.data).into_owned(),
        }))
    }

    /// The `retry:` the server sent, if any.
    pub fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    /// The stream's last event id so far (what `Last-Event-ID` would resume from).
    pub fn last_event_id(&self) -> Option<&str> {
        Some(self.parser.last_event_id()).filter(|id| !id.is_empty())
    }
}

/// A `GET path` request head asking for an event stream, with extra `headers`.
fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// An open subscription over a blocking socket.
pub struct SseClient {
    stream: TcpStream,
    decoder: SseDecoder,
    ended: bool,
    pub status: u16,
    /// The `retry:` value the server sent, if any.
    pub retry: Option<u64>,
    /// The last `id:` seen (what EventSource would send as Last-Event-ID).
    pub last_event_id: Option<String>,
}

impl SseClient {
    /// Opens `path` with extra request headers; the response head is read before
    /// returning. Panics when the server does not answer within 10 s.
    pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        SseClient::open(addr, path, headers, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("subscribe {path} on {addr}: {e}"))
    }

    /// Like [`SseClient::connect`], with `limit` on the connection and on the head.
    pub fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> io::Result<SseClient> {
        let stream = TcpStream::connect_timeout(&addr, limit)?;
        SseClient::subscribe(stream, addr, path, headers, limit)
    }

    /// Like [`SseClient::open`], with the subscribe as the second request of its
    /// connection: `GET first` (with the same headers) is answered and read whole
    /// first, so the server serves the stream on its HTTP path rather than handing
    /// the socket to its fan-out writer. Fails unless that first answer is a 200.
    pub fn open_after(
        addr: SocketAddr,
        first: &str,
        path: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> io::Result<SseClient> {
        let mut stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_write_timeout(Some(limit))?;
        stream.set_read_timeout(Some(limit))?;
        stream.write_all(request(addr, first, headers).as_bytes())?;
        let mut answer = SseDecoder::default();
        let mut buf = [0u8; 16 * 1024];
        while !answer.body_done() {
            match stream.read(&mut buf)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => answer.feed(&buf[..n])?,
            }
        }
        if answer.status() != Some(200) {
            return Err(io::Error::other(format!(
                "GET {first} answered {:?}",
                answer.status()
            )));
        }
        SseClient::subscribe(stream, addr, path, headers, limit)
    }

    /// Sends the subscribe on `stream` and reads the response head.
    fn subscribe(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> io::Result<SseClient> {
        stream.set_write_timeout(Some(limit))?;
        stream.write_all(request(addr, path, headers).as_bytes())?;
        let mut client = SseClient {
            stream,
            decoder: SseDecoder::default(),
            ended: false,
            status: 0,
            retry: None,
            last_event_id: None,
        };
        let deadline = Instant::now() + limit;
        while client.decoder.status().is_none() {
            if !client.fill(deadline)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a response head",
                ));
            }
        }
        client.status = client.decoder.status().unwrap_or(0);
        Ok(client)
    }

    /// A response header (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.decoder.header(name)
    }

    /// Reads once, waiting until `deadline`: false at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => self.decoder.feed(&buf[..n]).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    }

    /// The next event (comments skipped): `Ok(None)` when the stream ended, an error
    /// of kind `TimedOut` when none came within `limit`.
    pub fn read_event(&mut self, limit: Duration) -> io::Result<Option<SseEvent>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(event) = self.decoder.next_event()? {
                self.retry = self.decoder.retry();
                self.last_event_id = self.decoder.last_event_id().map(str::to_string);
                return Ok(Some(event));
            }
            if self.ended || self.decoder.body_done() {
                return Ok(None);
            }
            if !self.fill(deadline)? {
                self.ended = true;
            }
        }
    }

    /// The next event; None when the stream ended, failed or `limit` passed.
    pub fn next_event(&mut self, limit: Duration) -> Option<SseEvent> {
        self.read_event(limit).ok().flatten()
    }

    /// Events until one whose id is at least `version` (inclusive), or None.
    pub fn events_through(&mut self, version: u64, limit: Duration) -> Option<Vec<SseEvent>> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let event = self.next_event(deadline.saturating_duration_since(Instant::now()))?;
            let done = event
                .id
                .as_deref()
                .and_then(|id| id.parse::<u64>().ok())
                .is_some_and(|id| id >= version);
            seen.push(event);
            if done {
                return Some(seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_straddling_chunks_and_reads_are_decoded() {
        let body = "retry: 1500\n\nevent: Progress\nid: 3\ndata: {}\n\nevent: NodeJoin\nid: 4\ndata: {}\n\n";
        let (a, b) = body.split_at(40);
        let stream = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n",
            a.len(),
            b.len()
        );
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            decoder.feed(piece).unwrap();
            while let Some(e) = decoder.next_event().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(decoder.status(), Some(200));
        assert_eq!(decoder.header("content-type"), Some("text/event-stream"));
        assert_eq!(decoder.retry(), Some(1500));
        assert_eq!(decoder.last_event_id(), Some("4"));
        let completed: Vec<u64> = events
            .iter()
            .filter_map(SseEvent::completed_version)
            .collect();
        assert_eq!(completed, vec![4]);
        assert_eq!(events.len(), 2);
        assert!(!decoder.body_done());
        decoder.feed(b"0\r\n\r\n").unwrap();
        assert!(decoder.body_done());
    }

    #[test]
    fn a_refusal_is_seen_in_the_head() {
        let mut decoder = SseDecoder::default();
        decoder
            .feed(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap();
        assert!(decoder.rejected());
        assert!(decoder.body_done());
    }
}
