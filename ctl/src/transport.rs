//! Requests to the topology servers named by `--endpoints`, with failover: a server
//! that refuses the connection, times out, or answers 503 with `Retry-After` hands
//! the request to the next one. Built on the client library's blocking HTTP/1.1
//! connection (`concordkv_topology::http`), one connection per request; `https://`
//! endpoints with the TLS configuration of `--cacert` (and `--cert`/`--key`).

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concordkv_topology::http::{parse_head, BodyDecoder, BodyKind, Conn, Endpoint, Head, Read};

use crate::error::{CtlError, Result};

/// Largest answer body accepted (a snapshot of a large map fits comfortably).
const MAX_BODY: usize = 64 << 20;

/// One request: method, path with query, optional JSON body, optional `If-Match`.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub target: String,
    pub body: Option<Vec<u8>>,
    pub if_match: Option<u64>,
}

impl Request {
    pub fn get(target: impl Into<String>) -> Request {
        Request {
            method: "GET",
            target: target.into(),
            body: None,
            if_match: None,
        }
    }

    /// A write with a JSON body (`serde_json` never fails on the API's types).
    pub fn write(
        method: &'static str,
        target: impl Into<String>,
        body: &impl serde::Serialize,
    ) -> Request {
        Request {
            method,
            target: target.into(),
            body: Some(serde_json::to_vec(body).expect("request bodies serialize")),
            if_match: None,
        }
    }

    /// Only reads may be repeated on another server after an answer was lost: a
    /// write that was sent may have been applied.
    fn repeatable(&self) -> bool {
        self.method == "GET"
    }
}

/// A complete answer from one server.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// Seconds from `Retry-After`, when the server sent one.
    pub retry_after: Option<u64>,
    /// Index into the endpoints of the server that answered.
    pub endpoint: usize,
}

impl Reply {
    /// A 503 that asks to be tried again (elsewhere or later).
    fn retry_elsewhere(&self) -> bool {
        self.status == 503 && self.retry_after.is_some()
    }
}

/// Why one server gave no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// Not connected, or connected but nothing sent: always safe to try the next.
    Connect(io::Error),
    /// The request went out and no complete answer came back.
    Lost(io::Error),
}

/// The response head of an opened exchange, with what [`Head`] does not keep.
pub struct Opened {
    pub conn: Conn,
    pub head: Head,
    pub retry_after: Option<u64>,
    /// `X-Topology-Version`: the version the server had applied when it answered.
    pub version: Option<u64>,
}

/// The TLS configuration every `https://` connection shares.
pub type TlsConfig = Arc<concordkv_topology::http::TlsClientConfig>;

/// The servers, the credentials and the time allowed.
pub struct Transport {
    pub endpoints: Vec<Endpoint>,
    token: Option<String>,
    tls: Option<TlsConfig>,
    pub timeout: Duration,
    /// The endpoint to try first: the last one that answered.
    preferred: Cell<usize>,
}

impl Transport {
    pub fn new(
        endpoints: Vec<Endpoint>,
        token: Option<String>,
        timeout: Duration,
        tls: Option<TlsConfig>,
    ) -> Transport {
        Transport {
            endpoints,
            token,
            tls,
            timeout,
            preferred: Cell::new(0),
        }
    }

    /// Endpoint indexes in the order to try them: the preferred one, then the rest.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.endpoints.len();
        let first = self.preferred.get();
        (0..n).map(move |i| (first + i) % n)
    }

    pub fn prefer(&self, endpoint: usize) {
        self.preferred.set(endpoint);
    }

    /// Sends `req` to the servers in turn until one answers with something other
    /// than "retry elsewhere". Rounds of 503s repeat, after `Retry-After`, until
    /// `timeout` has passed; then the last 503 is the answer.
    pub fn call(&self, req: &Request) -> Result<Reply> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut busy: Option<Reply> = None;
            let mut failures = Vec::new();
            for i in self.order() {
                match self.exchange(i, req) {
                    Ok(reply) if reply.retry_elsewhere() => busy = Some(reply),
                    Ok(reply) => {
                        self.prefer(i);
                        return Ok(reply);
                    }
                    Err(NoAnswer::Lost(e)) if !req.repeatable() => {
                        return Err(CtlError::Unreachable(format!(
                            "{}: {e} (the request was sent: check whether it was applied before repeating it)",
                            self.endpoints[i].authority
                        )))
                    }
                    Err(NoAnswer::Connect(e) | NoAnswer::Lost(e)) => {
                        failures.push(format!("{}: {e}", self.endpoints[i].authority));
                    }
                }
            }
            let Some(reply) = busy else {
                return Err(CtlError::Unreachable(failures.join("; ")));
            };
            let pause = Duration::from_secs(reply.retry_after.unwrap_or(1).clamp(1, 5));
            if Instant::now() + pause >= deadline {
                return Ok(reply);
            }
            std::thread::sleep(pause);
        }
    }

    /// One request to one server, read to the end of its answer.
    pub fn exchange(&self, endpoint: usize, req: &Request) -> std::result::Result<Reply, NoAnswer> {
        let mut headers = vec![("Accept", "application/json"), ("Connection", "close")];
        if req.body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let tag = req.if_match.map(|v| format!("\"{v}\""));
        if let Some(tag) = &tag {
            headers.push(("If-Match", tag));
        }
        let opened = self.open(
            endpoint,
            req.method,
            &req.target,
            req.body.as_deref(),
            &headers,
        )?;
        self.finish(endpoint, opened).map_err(NoAnswer::Lost)
    }

    /// Reads the rest of an opened exchange: the complete answer.
    pub fn finish(&self, endpoint: usize, mut opened: Opened) -> io::Result<Reply> {
        let body = self.read_body(&mut opened)?;
        Ok(Reply {
            status: opened.head.status,
            body,
            retry_after: opened.retry_after,
            endpoint,
        })
    }

    /// Connects, sends a request (with the bearer token) and reads the response head.
    pub fn open(
        &self,
        endpoint: usize,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> std::result::Result<Opened, NoAnswer> {
        let ep = &self.endpoints[endpoint];
        let mut conn =
            Conn::connect(ep, self.timeout, self.tls.as_ref()).map_err(NoAnswer::Connect)?;
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        let body = body.or((method != "GET").then_some(&[][..]));
        conn.send_request(ep, method, target, &all, body)
            .map_err(NoAnswer::Connect)?;
        let mut idle_since = Instant::now();
        loop {
            let (mut retry_after, mut version) = (None, None);
            let parsed = parse_head(conn.pending(), |name, value| {
                if name.eq_ignore_ascii_case("retry-after") {
                    retry_after = value.parse().ok();
                } else if name.eq_ignore_ascii_case("x-topology-version") {
                    version = value.parse().ok();
                }
            })
            .map_err(NoAnswer::Lost)?;
            if let Some((head, n)) = parsed {
                conn.consume(n);
                return Ok(Opened {
                    conn,
                    head,
                    retry_after,
                    version,
                });
            }
            if self
                .wait(&mut conn, &mut idle_since)
                .map_err(NoAnswer::Lost)?
                == Read::Eof
            {
                return Err(NoAnswer::Lost(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without answering",
                )));
            }
        }
    }

    fn read_body(&self, opened: &mut Opened) -> io::Result<Vec<u8>> {
        let Opened { conn, head, .. } = opened;
        let mut decoder = BodyDecoder::new(&head.body);
        let mut body = Vec::new();
        let mut idle_since = Instant::now();
        loop {
            let used = decoder.decode(conn.pending(), &mut body)?;
            conn.consume(used);
            if decoder.is_done() {
                return Ok(body);
            }
            if body.len() > MAX_BODY {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the answer is larger than 64 MiB",
                ));
            }
            if self.wait(conn, &mut idle_since)? == Read::Eof {
                if head.body == BodyKind::UntilClose {
                    return Ok(body);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection mid-answer",
                ));
            }
        }
    }

    /// Waits one tick for bytes; an error once nothing came for `timeout`.
    pub fn wait(&self, conn: &mut Conn, idle_since: &mut Instant) -> io::Result<Read> {
        wait_within(conn, idle_since, self.timeout)
    }
}

/// Waits one tick for bytes; an error once nothing came for `limit`.
pub fn wait_within(conn: &mut Conn, idle_since: &mut Instant, limit: Duration) -> io::Result<Read> {
    let got = conn.fill()?;
    match got {
        Read::Data => *idle_since = Instant::now(),
        Read::Idle if idle_since.elapsed() >= limit => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing received for {}", humantime::format_duration(limit)),
            ))
        }
        Read::Idle | Read::Eof => {}
    }
    Ok(got)
}
