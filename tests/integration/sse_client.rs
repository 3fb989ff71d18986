//! A real SSE client for the tests: one TCP connection, HTTP/1.1 chunked decoding,
//! and the EventSource parsing rules (fields, blank-line dispatch, comments, `id`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// An open subscription.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    chunk_left: usize,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The `retry:` value the server sent, if any.
    pub retry: Option<u64>,
    /// The last `id:` seen (what EventSource would send as Last-Event-ID).
    pub last_event_id: Option<String>,
    ended: bool,
}

impl SseClient {
    /// Opens `path` with extra request headers; the response head is read before returning.
    pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send request");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line `{status_line}`"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        SseClient {
            reader,
            chunk_left: 0,
            status,
            headers,
            retry: None,
            last_event_id: None,
            ended: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads one byte of the de-chunked body; None at the end of the stream.
    fn body_byte(&mut self) -> std::io::Result<Option<u8>> {
        if self.ended {
            return Ok(None);
        }
        if self.chunk_left == 0 {
            let mut size_line = String::new();
            if self.reader.read_line(&mut size_line)? == 0 {
                self.ended = true;
                return Ok(None);
            }
            if size_line.trim().is_empty() {
                // The CRLF that closes the previous chunk.
                size_line.clear();
                if self.reader.read_line(&mut size_line)? == 0 {
                    self.ended = true;
                    return Ok(None);
                }
            }
            let size = usize::from_str_radix(size_line.trim(), 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("chunk size `{size_line}`"),
                )
            })?;
            if size == 0 {
                self.ended = true;
                return Ok(None);
            }
            self.chunk_left = size;
        }
        let mut byte = [0u8; 1];
        self.reader.read_exact(&mut byte)?;
        self.chunk_left -= 1;
        Ok(Some(byte[0]))
    }

    fn body_line(&mut self) -> std::io::Result<Option<String>> {
        let mut line = Vec::new();
        loop {
            match self.body_byte()? {
                None if line.is_empty() => return Ok(None),
                None => break,
                Some(b'\n') => break,
                Some(b) => line.push(b),
            }
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// The next event (comments skipped); None when the stream ended or `limit` passed.
    pub fn next_event(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + limit;
        let (mut event, mut id, mut data): (String, Option<String>, Vec<String>) =
            (String::new(), None, Vec::new());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.reader.get_ref().set_read_timeout(Some(left)).ok()?;
            let line = match self.body_line() {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => return None,
            };
            if line.is_empty() {
                if data.is_empty() {
                    event.clear();
                    continue;
                }
                if let Some(id) = &id {
                    self.last_event_id = Some(id.clone());
                }
                return Some(SseEvent {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    },
                    id,
                    data: data.join("\n"),
                });
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "event" => event = value,
                "data" => data.push(value),
                "id" => id = Some(value),
                "retry" => self.retry = value.parse().ok(),
                _ => {}
            }
        }
    }

    /// Events until one of type `kind` whose id is at least `version` (inclusive), or None.
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
