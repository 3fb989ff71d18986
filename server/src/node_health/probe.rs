//! Probes over real sockets on glommio: HTTP `GET /health` (hyper's HTTP/1.1 client
//! over [`HyperIo`]) or a TCP connect, each attempt bounded by `timeout`, with
//! `retry_count` further attempts inside one check.
//!
//! Every probe opens a fresh connection and closes it: a pooled connection would hide
//! the failure a health check exists to find (a node that no longer accepts).
//!
//! Registered addresses come from clients, so a probe only goes where
//! `topology.health_check.allowed_targets` allows, checked on the resolved address
//! (a name cannot point it elsewhere); and [`ProbeError::class`] is the one place
//! that turns an error into the generic text the topology records (`lastError`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::net::TcpStream;
use http_body_util::Empty;

use crate::config::ProbeKind;
use crate::net::allow::AllowList;
use crate::net::io::HyperIo;

/// The path the HTTP probe requests.
pub const HEALTH_PATH: &str = "/health";

/// Why one probe attempt failed; the message (with addresses and OS errors) goes to a
/// health round's caller and the log, never into the topology.
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
    #[error("{address}: {NOT_ALLOWED}")]
    NotAllowed { address: SocketAddr },
}

/// What `lastError` says of a node the allow-list keeps the probes away from.
pub const NOT_ALLOWED: &str = "address not allowed by health_check.allowed_targets";

impl ProbeError {
    /// The kind of failure without addresses, OS messages or peer answers: what the
    /// topology records as `lastError`, whoever may read it.
    pub fn class(&self) -> String {
        match self {
            ProbeError::Resolve { .. } => "cannot resolve".into(),
            ProbeError::Connect { source, .. } => match source.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => "timeout".into(),
                _ => "connection failed".into(),
            },
            ProbeError::Timeout { .. } => "timeout".into(),
            ProbeError::Status { status, .. } => format!("http status {status}"),
            ProbeError::Http { .. } => "http error".into(),
            ProbeError::NotAllowed { .. } => NOT_ALLOWED.into(),
        }
    }
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

/// Checks one node: up to `1 + retry_count` attempts, stopping at the first pass;
/// none at all when `allowed` does not allow its resolved address.
pub async fn check(
    address: &str,
    kind: ProbeKind,
    settings: ProbeSettings,
    allowed: &AllowList,
) -> CheckResult {
    let mut attempts = 0;
    loop {
        let started = Instant::now();
        let result = match resolve(address).await {
            Ok(addr) if !allowed.permits(addr) => {
                return CheckResult {
                    result: Err(ProbeError::NotAllowed { address: addr }),
                    attempts,
                    latency: started.elapsed(),
                };
            }
            Ok(addr) => {
                attempts += 1;
                attempt(addr, address, kind, settings.timeout).await
            }
            Err(e) => {
                attempts += 1;
                Err(e)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_name_the_kind_of_failure_and_nothing_else() {
        let address: SocketAddr = "10.1.2.3:9001".parse().unwrap();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases = [
            (
                ProbeError::Connect {
                    address,
                    source: refused,
                },
                "connection refused",
            ),
            (
                ProbeError::Timeout {
                    address,
                    timeout: Duration::from_millis(100),
                },
                "timeout",
            ),
            (
                ProbeError::Status {
                    address,
                    status: 503,
                },
                "http status 503",
            ),
            (
                ProbeError::Http {
                    address,
                    reason: "connection closed before message completed".into(),
                },
                "http error",
            ),
            (
                ProbeError::Resolve {
                    address: "db.internal:9001".into(),
                    reason: "no address found".into(),
                },
                "cannot resolve",
            ),
            (ProbeError::NotAllowed { address }, NOT_ALLOWED),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class);
            assert!(!error.class().contains("10.1.2.3"), "{error}");
        }
        let not_allowed = ProbeError::NotAllowed { address }.to_string();
        assert!(not_allowed.ends_with(NOT_ALLOWED), "{not_allowed}");
    }
}
