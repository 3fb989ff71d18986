//! Probes over real sockets on glommio: HTTP `GET /health` (hyper's HTTP/1.1 client
//! over [`HyperIo`]) or a TCP connect, each attempt bounded by `timeout`, with
//! `retry_count` further attempts inside one check.
//!
//! Every probe opens a fresh connection and closes it: a pooled connection would hide
//! the failure a health check exists to find (a node that no longer accepts).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::net::TcpStream;
use http_body_util::Empty;

use crate::config::ProbeKind;
use crate::net::io::HyperIo;

/// The path the HTTP probe requests.
pub const HEALTH_PATH: &str = "/health";

/// Why one probe attempt failed; the message is what `lastError` shows.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {address}: {reason}")]
    Resolve { address: String, reason: String },
    #[error("connect to {address} failed: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("GET {HEALTH_PATH} on {address} answered HTTP {status}")]
    Status { address: SocketAddr, status: u16 },
    #[error("GET {HEALTH_PATH} on {address} failed: {reason}")]
    Http { address: SocketAddr, reason: String },
}

/// How one node is checked.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSettings {
    pub timeout: Duration,
    /// Further attempts after a failed one, inside the same check.
    pub retry_count: u32,
}

/// The result of one check: the outcome of its last attempt.
#[derive(Debug)]
pub struct CheckResult {
    pub result: Result<(), ProbeError>,
    pub attempts: u32,
    /// Duration of the last attempt (the passing one, when it passed).
    pub latency: Duration,
}

/// Resolves `host:port`. IP literals never leave the executor; names are resolved on
/// glommio's blocking pool, because `getaddrinfo` may block for seconds and the
/// control executor also runs Raft.
async fn resolve(address: &str) -> Result<SocketAddr, ProbeError> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let owned = address.to_string();
    let found = glommio::executor()
        .spawn_blocking(move || owned.to_socket_addrs().map(|mut a| a.next()))
        .await;
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(ProbeError::Resolve {
            address: address.to_string(),
            reason: "no address found".into(),
        }),
        Err(e) => Err(ProbeError::Resolve {
            address: address.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Checks one node: up to `1 + retry_count` attempts, stopping at the first pass.
pub async fn check(address: &str, kind: ProbeKind, settings: ProbeSettings) -> CheckResult {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let result = match resolve(address).await {
            Ok(addr) => attempt(addr, address, kind, settings.timeout).await,
            Err(e) => Err(e),
        };
        let latency = started.elapsed();
        if result.is_ok() || attempts > settings.retry_count {
            return CheckResult {
                result,
                attempts,
                latency,
            };
        }
    }
}

/// One attempt, bounded by `timeout` as a whole (connect, request and answer).
async fn attempt(
    addr: SocketAddr,
    host: &str,
    kind: ProbeKind,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let work = async {
        let stream = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| ProbeError::Connect {
                address: addr,
                source: e.into(),
            })?;
        match kind {
            ProbeKind::Tcp => Ok(()),
            ProbeKind::Http => http_get(stream, addr, host).await,
        }
    };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(ProbeError::Timeout {
            address: addr,
            timeout,
        })
    };
    // Whichever finishes first; dropping the loser closes its socket.
    futures_lite::future::or(work, expired).await
}

/// `GET /health` over `stream`; 2xx passes. The connection is driven next to the
/// request (not as a detached task) so that nothing outlives the attempt. The body is
/// not read: the status decides, and the socket closes with the attempt.
async fn http_get(stream: TcpStream, addr: SocketAddr, host: &str) -> Result<(), ProbeError> {
    let _ = stream.set_nodelay(true);
    let http_error = |e: hyper::Error| ProbeError::Http {
        address: addr,
        reason: e.to_string(),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(HyperIo(stream))
        .await
        .map_err(http_error)?;
    let request = http::Request::get(HEALTH_PATH)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "concord-topo-health")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Http {
            address: addr,
            reason: e.to_string(),
        })?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(ProbeError::Status {
                address: addr,
                status: status.as_u16(),
            })
        }
    };
    let driven = async {
        // The connection future ends when the socket does. By then hyper has either
        // delivered the answer or failed the request, so `exchange` decides.
        let _ = connection.await;
        std::future::pending::<Result<(), ProbeError>>().await
    };
    futures_lite::future::or(exchange, driven).await
}
