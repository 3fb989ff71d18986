//! Open-loop HTTP load on glommio: requests leave on a fixed schedule whatever the
//! server's pace, over keep-alive connections (pipelined when the server lags), and
//! each latency is measured from the request's *intended* send time, so queueing
//! behind a slow response counts (no coordinated omission).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use hdrhistogram::Histogram;

/// What to send and how.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    /// One complete request (`GET ... HTTP/1.1\r\n...\r\n\r\n`).
    pub request: Vec<u8>,
    pub rate: u64,
    pub duration: Duration,
    pub connections: usize,
    /// Speak TLS with this configuration (the server's name is its IP address).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What came back.
#[derive(Debug)]
pub struct LoadResult {
    pub latency_us: Histogram<u64>,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// A request's intended send time, queued until its response arrives.
type Pending = Rc<RefCell<VecDeque<Instant>>>;

struct Shared {
    hist: RefCell<Histogram<u64>>,
    completed: RefCell<u64>,
    errors: RefCell<u64>,
}

/// Requests still unanswered on one connection before the run is declared overloaded.
const MAX_IN_FLIGHT: usize = 20_000;

/// Runs `spec` on a fresh glommio executor (blocking the calling thread).
pub fn run(spec: LoadSpec) -> LoadResult {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move { run_async(spec).await })
        .expect("a glommio executor for the load generator")
        .join()
        .expect("the load generator finished")
}

async fn run_async(spec: LoadSpec) -> LoadResult {
    let shared = Rc::new(Shared {
        hist: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
        completed: RefCell::new(0),
        errors: RefCell::new(0),
    });
    let request: Rc<[u8]> = spec.request.clone().into();
    let total = (spec.rate as f64 * spec.duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / spec.rate as f64);
    let mut streams = Vec::new();
    for _ in 0..spec.connections {
        let stream = TcpStream::connect(spec.addr)
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).ok();
        streams.push(stream);
    }
    let plan = Rc::new(Plan {
        start: Instant::now() + Duration::from_millis(50),
        interval,
        total,
        conns: spec.connections as u64,
        request,
    });
    let mut tasks = Vec::new();
    for (c, stream) in streams.into_iter().enumerate() {
        let shared = shared.clone();
        match &spec.tls {
            None => tasks.extend(drive(stream, c as u64, plan.clone(), shared)),
            Some(config) => {
                // Handshakes before the schedule starts: the run measures requests.
                let name = rustls::pki_types::ServerName::IpAddress(spec.addr.ip().into());
                let stream = futures_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .expect("a TLS handshake with the server");
                tasks.extend(drive(stream, c as u64, plan.clone(), shared));
            }
        }
    }
    let start = plan.start;
    for task in tasks {
        task.await;
    }
    let elapsed = start.elapsed();
    let latency_us = shared.hist.borrow().clone();
    let completed = *shared.completed.borrow();
    let errors = *shared.errors.borrow();
    LoadResult {
        latency_us,
        sent: total,
        completed,
        errors,
        elapsed,
    }
}

/// The schedule every connection follows.
struct Plan {
    start: Instant,
    interval: Duration,
    total: u64,
    conns: u64,
    request: Rc<[u8]>,
}

/// Connection `c`'s writer (its share of the schedule) and reader (latencies).
fn drive<S>(stream: S, c: u64, plan: Rc<Plan>, shared: Rc<Shared>) -> [glommio::Task<()>; 2]
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (start, interval, total, conns) = (plan.start, plan.interval, plan.total, plan.conns);
    let request = plan.request.clone();
    let pending: Pending = Rc::default();
    let (reader, writer) = futures_lite::io::split(stream);
    let pending_w = pending.clone();
    let writer_task = glommio::spawn_local(async move {
        let mut writer = writer;
        let mut k = c;
        while k < total {
            let intended = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if intended > now + Duration::from_micros(200) {
                glommio::timer::sleep(intended - now).await;
            }
            if pending_w.borrow().len() >= MAX_IN_FLIGHT {
                // Overloaded: the reader counts every unsent request as an error.
                break;
            }
            pending_w.borrow_mut().push_back(intended);
            if writer.write_all(&request).await.is_err() {
                break;
            }
            k += conns;
        }
        let _ = writer.flush().await;
    });
    let reader_task = glommio::spawn_local(async move {
        let mut reader = reader;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut expected = (total + conns - 1 - c) / conns;
        while expected > 0 {
            let n = match futures_lite::future::or(
                async { reader.read(&mut chunk).await.ok() },
                async {
                    glommio::timer::sleep(Duration::from_secs(10)).await;
                    None
                },
            )
            .await
            {
                Some(0) | None => break,
                Some(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut consumed = 0;
            while let Some((status, len)) = parse_response(&buf[consumed..]) {
                consumed += len;
                let intended = pending.borrow_mut().pop_front();
                if let Some(intended) = intended {
                    let us = intended.elapsed().as_micros().max(1) as u64;
                    let _ = shared.hist.borrow_mut().record(us.min(60_000_000));
                }
                if status >= 400 {
                    *shared.errors.borrow_mut() += 1;
                } else {
                    *shared.completed.borrow_mut() += 1;
                }
                expected -= 1;
            }
            buf.drain(..consumed);
        }
        *shared.errors.borrow_mut() += expected;
    });
    [writer_task, reader_task]
}

/// A TLS client configuration trusting the certificates of the PEM file `ca`.
pub fn tls_config(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("a readable CA file") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A keep-alive GET for `path`, with `extra` header lines (each ending in CRLF).
pub fn get_request(addr: SocketAddr, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").into_bytes()
}

/// Parses one complete response at the start of `buf`: (status, total length).
///
/// Its own minimal parser because it is on the measured hot path (every response of
/// the load, on the generator's core): it allocates nothing and reads only the status
/// and `Content-Length`. The test kit's `parse_response` builds header strings and a
/// body copy per response, which would be measured as the server's latency.
pub fn parse_response(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..head_end];
    let status = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    let mut length = 0usize;
    for line in head.split(|b| *b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            length = std::str::from_utf8(&line[15..]).ok()?.trim().parse().ok()?;
        }
    }
    (buf.len() >= head_end + length).then_some((status, head_end + length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_responses_only() {
        let one =
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1 304 Not Modified\r\n\r\n";
        assert_eq!(parse_response(one), Some((200, 41)));
        assert_eq!(parse_response(&one[41..]), Some((304, 29)));
        assert_eq!(parse_response(&one[..40]), None);
    }
}
