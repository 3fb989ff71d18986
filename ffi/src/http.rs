//! A deliberately small blocking HTTP/1.1 client over `std::net::TcpStream`, plain
//! or with TLS (rustls, see `tls`): just what the client's thread needs to talk to
//! topology servers (GET with headers, `Content-Length` and chunked bodies,
//! keep-alive, a streamed SSE body).
//!
//! Why not `ureq`: the client's thread must wake every [`TICK`] while a stream is
//! idle (to notice `report_stale`, shutdown and the idle limit) without tearing the
//! stream down, and must tell "no byte yet" apart from "the server is gone". A socket
//! read timeout gives exactly that on a std socket, and rustls passes it through
//! (keeping a partly received TLS record for the next read); behind ureq's reader a
//! timeout ends the body.

use std::io::{self, Read as _, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::tls::{self, TlsStream};
/// The TLS configuration of `https://` connections, from PEM files: for users of
/// [`Conn`] outside the client (`concord-topo ctl --cacert/--cert/--key`).
pub use crate::tls::{client_config as tls_config, Identity as TlsIdentity};
pub use rustls::ClientConfig as TlsClientConfig;

/// How often a blocked read returns to its caller with [`Read::Idle`].
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// A topology server's address, parsed from `host:port`, `http://host:port` or
/// `https://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, as resolved and as sent in the `Host` header.
    pub authority: String,
    /// The host alone (IPv6 in brackets): the name a TLS certificate must carry.
    pub host: String,
    /// `https://`: TLS over the connection.
    pub tls: bool,
}

/// The client port `concord-topo` listens on by default.
pub(crate) const DEFAULT_PORT: u16 = 7070;
/// The port of an `https://` address without one.
pub(crate) const DEFAULT_TLS_PORT: u16 = 443;

impl Endpoint {
    /// Accepts `host:port`, `host` (port 7070), `[v6]:port`, the same after
    /// `http://`, and after `https://` (port 443 by default), with an optional
    /// trailing `/`. Anything else is refused with a reason.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let s = text.trim();
        let (s, tls) = match s.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some(("https", rest)) => (rest, true),
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported; use http:// or https://"
                ))
            }
            None => (s, false),
        };
        let s = s.strip_suffix('/').unwrap_or(s);
        if s.is_empty() {
            return Err("empty address".into());
        }
        if s.contains('/') || s.contains('?') || s.chars().any(char::is_whitespace) {
            return Err("expected host:port with no path".into());
        }
        let bracketed = s.starts_with('[');
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !bracketed || h.ends_with(']') => (h, Some(p)),
            _ => (s, None),
        };
        if host.is_empty() || (bracketed && !host.ends_with(']')) {
            return Err("the host is empty or malformed".into());
        }
        if !bracketed && host.contains(':') {
            return Err("an IPv6 host must be written in brackets, [::1]:7070".into());
        }
        let port = match port {
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("port {p:?} is not a number 1-65535")),
            },
        };
        if tls {
            tls::server_name(host)?;
        }
        Ok(Endpoint {
            authority: format!("{host}:{port}"),
            host: host.to_string(),
            tls,
        })
    }
}

/// One outcome of waiting for bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Bytes arrived (they are in the connection's buffer).
    Data,
    /// Nothing arrived within one [`TICK`].
    Idle,
    /// The peer closed the connection.
    Eof,
}

/// A connection with its read buffer (bytes received but not consumed yet).
pub struct Conn {
    stream: Transport,
    buf: Vec<u8>,
    pos: usize,
}

/// The byte stream under HTTP. Both kinds return a socket read timeout as an error
/// of kind `WouldBlock`/`TimedOut`, having lost nothing.
enum Transport {
    Plain(TcpStream),
    /// Boxed: a TLS session is large and the plain case is common.
    Tls(Box<TlsStream>),
}

impl Drop for Transport {
    /// Ends a TLS session with `close_notify` (one try, never waiting for the
    /// peer), so the server can tell a deliberate close from a cut connection.
    fn drop(&mut self) {
        if let Transport::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }
}

impl io::Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// The parts of a response head the client acts on.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: BodyKind,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    /// Resolves `ep` and connects to the first address that answers within
    /// `timeout`; for `https://`, then runs the TLS handshake (within `timeout`
    /// too) with `tls`, which an `https://` endpoint requires.
    pub fn connect(
        ep: &Endpoint,
        timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Conn> {
        let mut last = None;
        for addr in ep.authority.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(TICK))?;
                    stream.set_write_timeout(Some(timeout.max(Duration::from_secs(1))))?;
                    let stream = match (ep.tls, tls) {
                        (false, _) => Transport::Plain(stream),
                        (true, Some(config)) => Transport::Tls(Box::new(tls::handshake(
                            config, &ep.host, stream, timeout,
                        )?)),
                        (true, None) => {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                "an https:// server needs ca_file",
                            ))
                        }
                    };
                    return Ok(Conn {
                        stream,
                        buf: Vec::with_capacity(16 * 1024),
                        pos: 0,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
        }))
    }

    /// Sends a GET with the given extra headers (`name: value` pairs).
    pub fn send_get(
        &mut self,
        ep: &Endpoint,
        target: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<()> {
        self.send_request(ep, "GET", target, headers, None)
    }

    /// Sends any request; a `body` goes out with its `Content-Length` (so a POST
    /// with an empty body says so).
    pub fn send_request(
        &mut self,
        ep: &Endpoint,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<()> {
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: concordkv-topology/{}\r\n",
            ep.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            req.push_str(name);
            req.push_str(": ");
            req.push_str(value);
            req.push_str("\r\n");
        }
        if let Some(body) = body {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut req = req.into_bytes();
        req.extend_from_slice(body.unwrap_or_default());
        self.stream.write_all(&req)?;
        // TLS may hold back what it could not hand to the socket yet.
        self.stream.flush()
    }

    /// Unconsumed received bytes.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Waits up to one [`TICK`] for more bytes.
    pub fn fill(&mut self) -> io::Result<Read> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 16 * 1024, 0);
        let got = self.stream.read(&mut self.buf[old..]);
        self.buf.truncate(old + *got.as_ref().unwrap_or(&0));
        match got {
            Ok(0) => Ok(Read::Eof),
            Ok(_) => Ok(Read::Data),
            Err(e) if tls::is_timeout(&e) => Ok(Read::Idle),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Read::Idle),
            Err(e) => Err(tls::explain("TLS", e)),
        }
    }

    /// Parses a complete response head from the buffer, if one is there.
    pub fn take_head(&mut self) -> io::Result<Option<Head>> {
        let Some((head, n)) = parse_head(self.pending(), |_, _| {})? else {
            return Ok(None);
        };
        self.consume(n);
        Ok(Some(head))
    }
}

/// Parses a complete response head at the start of `buf`: the head and its length in
/// bytes, or `None` while it is incomplete. `each_header` sees every header as sent
/// (for callers that keep more than [`Head`] does).
pub fn parse_head(
    buf: &[u8],
    mut each_header: impl FnMut(&str, &str),
) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(invalid("the response head is larger than 64 KiB"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("malformed response head: {e}"))),
    };
    // Also when it arrived in one read: whether it is refused must not depend on how
    // the socket split it.
    if n > MAX_HEAD {
        return Err(invalid("the response head is larger than 64 KiB"));
    }
    let status = resp.code.unwrap_or(0);
    let mut head = Head {
        status,
        content_type: None,
        body: BodyKind::UntilClose,
        keep_alive: resp.version == Some(1),
    };
    let mut length = None;
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        each_header(h.name, value);
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| invalid("bad Content-Length"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                head.body = BodyKind::Chunked;
            } else {
                return Err(invalid(&format!("unsupported Transfer-Encoding {value:?}")));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.keep_alive &= !value.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.to_ascii_lowercase());
        }
    }
    if head.body != BodyKind::Chunked {
        head.body = match length {
            Some(n) => BodyKind::Length(n),
            // 204/304 and 1xx have no body.
            None if status == 204 || status == 304 || status < 200 => BodyKind::Length(0),
            None => BodyKind::UntilClose,
        };
    }
    if head.body == BodyKind::UntilClose {
        head.keep_alive = false;
    }
    Ok(Some((head, n)))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Decodes a response body incrementally from a connection's buffer.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: BodyKind,
    /// Bytes left of the body (`Length`) or of the current chunk (`Chunked`).
    left: u64,
    chunk: ChunkState,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size line.
    Size,
    /// In a chunk's data (`left` bytes to go).
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last (zero) chunk, up to an empty line.
    Trailer,
}

impl BodyDecoder {
    pub fn new(kind: &BodyKind) -> BodyDecoder {
        let left = match kind {
            BodyKind::Length(n) => *n,
            _ => 0,
        };
        BodyDecoder {
            kind: kind.clone(),
            left,
            chunk: ChunkState::Size,
            done: matches!(kind, BodyKind::Length(0)),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Moves body bytes from `input` to `out`; returns how many input bytes were used.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        match self.kind {
            BodyKind::UntilClose => {
                out.extend_from_slice(input);
                Ok(input.len())
            }
            BodyKind::Length(_) => {
                let n = input
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..n]);
                self.left -= n as u64;
                self.done = self.left == 0;
                Ok(n)
            }
            BodyKind::Chunked => self.decode_chunked(input, out),
        }
    }

    fn decode_chunked(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut used = 0;
        while used < input.len() && !self.done {
            let rest = &input[used..];
            match self.chunk {
                ChunkState::Data => {
                    let n = rest
                        .len()
                        .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..n]);
                    used += n;
                    self.left -= n as u64;
                    if self.left == 0 {
                        self.chunk = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    // Only whole lines are consumed, so "\r" alone waits for "\n".
                    let Some(eol) = framing_line(rest)? else {
                        return Ok(used);
                    };
                    if !rest[..eol].iter().all(|&b| b == b'\r') || eol > 1 {
                        return Err(invalid("chunk data is not followed by CRLF"));
                    }
                    used += eol + 1;
                    self.chunk = ChunkState::Size;
                }
                ChunkState::Size => {
                    let Some(eol) = framing_line(rest)? else {
                        return Ok(used);
                    };
                    let line = std::str::from_utf8(&rest[..eol])
                        .map_err(|_| invalid("chunk size line is not ASCII"))?;
                    // Chunk extensions (";name=value") are allowed and ignored.
                    let hex = line.trim_end_matches('\r').split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(hex.trim(), 16)
                        .map_err(|_| invalid(&format!("bad chunk size {hex:?}")))?;
                    used += eol + 1;
                    if size == 0 {
                        self.chunk = ChunkState::Trailer;
                    } else {
                        self.left = size;
                        self.chunk = ChunkState::Data;
                    }
                }
                ChunkState::Trailer => {
                    let Some(eol) = framing_line(rest)? else {
                        return Ok(used);
                    };
                    used += eol + 1;
                    if rest[..eol].iter().all(|&b| b == b'\r') {
                        self.done = true;
                    }
                }
            }
        }
        Ok(used)
    }
}

/// Longest line of chunked framing (a size line with extensions, a trailer line).
const MAX_FRAMING_LINE: usize = 1024;

/// Where the framing line at the start of `bytes` ends (its LF), if it is all there.
/// A line longer than [`MAX_FRAMING_LINE`] is refused, complete or not, so that a
/// server cannot make the client buffer without bound, and where the socket split
/// the line does not decide whether it is refused.
fn framing_line(bytes: &[u8]) -> io::Result<Option<usize>> {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(eol) if eol <= MAX_FRAMING_LINE => Ok(Some(eol)),
        None if bytes.len() <= MAX_FRAMING_LINE => Ok(None),
        _ => Err(invalid("a chunked framing line is longer than 1 KiB")),
    }
}

#[cfg(test)]
#[path = "http_test.rs"]
mod tests;

#[cfg(test)]
#[path = "http_fuzz.rs"]
mod fuzz;
