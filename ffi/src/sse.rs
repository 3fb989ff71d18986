//! An incremental Server-Sent Events parser (the WHATWG `text/event-stream` rules),
//! fed with whatever bytes the socket delivers, split anywhere.
//!
//! Besides the standard fields it reports whether *this* block carried an `id:` line:
//! the topology server puts `id: <version>` only on the last event of a change set, so
//! that line is what tells the client a version is complete.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `"message"` when the block had none.
    pub event: String,
    /// The `data:` lines joined with `\n` (no trailing newline).
    pub data: Vec<u8>,
    /// The `id:` of this block, if it had one (the stream's last event id persists
    /// across blocks: [`SseParser::last_event_id`]).
    pub id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The parser's state between two `feed`s.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Start of the first unprocessed line in `buf`.
    pos: usize,
    /// The previous chunk ended in CR: an LF starting the next one belongs to it.
    skip_lf: bool,
    started: bool,
    event: String,
    data: Vec<u8>,
    has_data: bool,
    block_id: Option<String>,
    last_event_id: String,
    retry: Option<u64>,
    max_event_bytes: usize,
}

impl SseParser {
    /// `max_event_bytes` bounds one block (a `Reset` carries a whole snapshot).
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            pos: 0,
            skip_lf: false,
            started: false,
            event: String::new(),
            data: Vec::new(),
            has_data: false,
            block_id: None,
            last_event_id: String::new(),
            retry: None,
            max_event_bytes,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The last `retry:` value (reconnection delay in ms), if the server sent one.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The id of the stream so far (what `Last-Event-ID` would resume from).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// True when no partial block is buffered.
    pub fn is_idle(&self) -> bool {
        self.pos == self.buf.len() && !self.has_data && self.event.is_empty()
    }

    /// The next complete event, if the bytes fed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            if self.skip_lf && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.skip_lf = false;
            }
            if !self.started && self.buf.len() - self.pos >= 3 {
                // A UTF-8 byte order mark may open the stream; it is not data.
                if self.buf[self.pos..].starts_with(b"\xEF\xBB\xBF") {
                    self.pos += 3;
                }
                self.started = true;
            }
            let rest = &self.buf[self.pos..];
            let Some(eol) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                // Before the start is settled, `rest` may be the beginning of a byte
                // order mark, which is no part of any line (and under 3 bytes).
                if self.started && rest.len() + self.data.len() > self.max_event_bytes {
                    return Err(self.too_large());
                }
                return Ok(None);
            };
            // The same bound as for a line still arriving (above), so that where the
            // socket split the stream cannot decide whether it is refused.
            if eol + self.data.len() > self.max_event_bytes {
                return Err(self.too_large());
            }
            if !self.started {
                self.started = true;
            }
            let cr = rest[eol] == b'\r';
            let line_start = self.pos;
            self.pos += eol + 1;
            if cr {
                if self.pos < self.buf.len() {
                    if self.buf[self.pos] == b'\n' {
                        self.pos += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            let line_end = line_start + eol;
            if line_end == line_start {
                if let Some(event) = self.dispatch() {
                    return Ok(Some(event));
                }
                continue;
            }
            self.field(line_start, line_end)?;
        }
    }

    fn too_large(&mut self) -> SseError {
        SseError::TooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn field(&mut self, start: usize, end: usize) -> Result<(), SseError> {
        let line = &self.buf[start..end];
        if line[0] == b':' {
            return Ok(()); // a comment, e.g. the server's keep-alive
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_event_bytes {
                    return Err(self.too_large());
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            // An id with a NUL is ignored, as the standard says.
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value).into_owned();
                self.last_event_id.clone_from(&id);
                self.block_id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {} // unknown fields are ignored
        }
        Ok(())
    }

    /// Ends a block at an empty line; a block without data dispatches nothing.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let id = self.block_id.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id,
        })
    }
}

#[cfg(test)]
#[path = "sse_test.rs"]
mod tests;

#[cfg(test)]
#[path = "sse_fuzz.rs"]
mod fuzz;
