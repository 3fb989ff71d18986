//! The client side of the peer transport: HTTP/1.1 calls to the other topology
//! servers over pooled keep-alive connections, each call bounded by a deadline and
//! its answer by a size limit.
//!
//! Lives on the control executor (with Raft); nothing here is `Send`. A connection
//! carries one request at a time (HTTP/1.1 without pipelining), so a slow snapshot
//! transfer on one connection must not hold up heartbeats: every concurrent call to
//! a peer takes its own connection from the peer's idle list or opens one, and puts
//! it back when the exchange completed cleanly. In steady state that is one
//! connection per peer per openraft stream (replication, heartbeats, votes), reused
//! for every RPC; an error or a deadline drops the connection, and the next call
//! reconnects. With `peer_tls:` configured every connection is mutual TLS: the
//! peer's certificate must be signed by the cluster CA and name the peer's IP.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire;
use crate::config::LiveCredentials;
use crate::net::io::HyperIo;
use crate::net::tls;

/// Idle connections kept per peer; more concurrent calls than this open and close.
const MAX_IDLE_PER_PEER: usize = 4;

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer address `{addr}` is not an IP:PORT address")]
    BadAddress { addr: String },
    #[error("cannot connect to peer {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("peer {addr} did not answer {path} within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        path: &'static str,
        timeout: Duration,
    },
    #[error("peer {addr}, {path}: {source}")]
    Http {
        addr: SocketAddr,
        path: &'static str,
        source: hyper::Error,
    },
    #[error("peer {addr} answered {path} with {status}: {message}")]
    Status {
        addr: SocketAddr,
        path: &'static str,
        status: StatusCode,
        message: String,
    },
    #[error("peer {addr}: the answer to {path} exceeds {limit} bytes")]
    TooLarge {
        addr: SocketAddr,
        path: &'static str,
        limit: usize,
    },
    #[error("the request to {path} cannot be encoded: {source}")]
    Encode {
        path: &'static str,
        source: postcard::Error,
    },
    #[error("peer {addr}: the answer to {path} cannot be decoded: {source}")]
    Decode {
        addr: SocketAddr,
        path: &'static str,
        source: postcard::Error,
    },
}

impl PeerError {
    /// True when the request certainly did not reach the peer's Raft: nothing was sent,
    /// or the peer refused it with an HTTP status before decoding it.
    pub fn not_delivered(&self) -> bool {
        matches!(
            self,
            PeerError::BadAddress { .. }
                | PeerError::Connect { .. }
                | PeerError::Encode { .. }
                | PeerError::Status { .. }
        )
    }
}

/// One keep-alive HTTP/1.1 connection to a peer. Dropping it cancels its driver task,
/// which closes the socket.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    _driver: glommio::Task<()>,
}

/// Keep-alive connections to every peer, shared by all peer calls of this server.
pub struct PeerPool {
    node_id: u64,
    /// The peer secret presented (absent only in an `insecure` cluster) and mutual
    /// TLS to every peer (when configured), as in force: read per request and per
    /// connection, so a reload applies to the next of each.
    credentials: Arc<LiveCredentials>,
    /// Largest answer body accepted.
    max_body: usize,
    idle: RefCell<HashMap<SocketAddr, Vec<Connection>>>,
}

impl PeerPool {
    pub fn new(node_id: u64, credentials: Arc<LiveCredentials>, max_body: usize) -> PeerPool {
        PeerPool {
            node_id,
            credentials,
            max_body,
            idle: RefCell::new(HashMap::new()),
        }
    }

    /// Encodes `request`, POSTs it to `path` on the peer at `addr`, decodes the answer;
    /// the whole call is bounded by `timeout`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let addr: SocketAddr = addr.parse().map_err(|_| PeerError::BadAddress {
            addr: addr.to_string(),
        })?;
        let body = wire::encode(request).map_err(|source| PeerError::Encode { path, source })?;
        let exchange = self.exchange(addr, path, body);
        let answer = futures_lite::future::or(exchange, async {
            glommio::timer::sleep(timeout).await;
            // The connection in use is dropped with the exchange future: its state
            // (a half-sent request, an answer still coming) is unknown.
            Err(PeerError::Timeout {
                addr,
                path,
                timeout,
            })
        })
        .await?;
        wire::decode(&answer).map_err(|source| PeerError::Decode { addr, path, source })
    }

    async fn exchange(
        &self,
        addr: SocketAddr,
        path: &'static str,
        body: Bytes,
    ) -> Result<Bytes, PeerError> {
        let mut request = self.request(addr, path, body);
        let (connection, response) = loop {
            let (mut connection, fresh) = match self.take_idle(addr) {
                Some(c) => (c, false),
                None => (self.connect(addr).await?, true),
            };
            if let Err(source) = connection.sender.ready().await {
                if fresh {
                    return Err(PeerError::Http { addr, path, source });
                }
                // Closed while idle (the peer restarted or timed it out): nothing was
                // sent on it; try the next idle one or a fresh connection.
                continue;
            }
            match connection.sender.try_send_request(request).await {
                Ok(response) => break (connection, response),
                Err(mut e) => match e.take_message() {
                    // Not sent: safe to try again on another connection, even for a
                    // forwarded write, because the peer never saw it.
                    Some(unsent) if !fresh => request = unsent,
                    _ => {
                        return Err(PeerError::Http {
                            addr,
                            path,
                            source: e.into_error(),
                        })
                    }
                },
            }
        };
        let status = response.status();
        let collected = Limited::new(response.into_body(), self.max_body)
            .collect()
            .await;
        let bytes = match collected {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(PeerError::TooLarge {
                    addr,
                    path,
                    limit: self.max_body,
                })
            }
            Err(e) => {
                let source = match e.downcast::<hyper::Error>() {
                    Ok(h) => *h,
                    Err(other) => {
                        return Err(PeerError::Status {
                            addr,
                            path,
                            status,
                            message: other.to_string(),
                        })
                    }
                };
                return Err(PeerError::Http { addr, path, source });
            }
        };
        // The exchange completed cleanly: the connection can carry the next request.
        if !connection.sender.is_closed() {
            self.put_idle(addr, connection);
        }
        if status != StatusCode::OK {
            return Err(PeerError::Status {
                addr,
                path,
                status,
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            });
        }
        Ok(bytes)
    }

    fn request(&self, addr: SocketAddr, path: &'static str, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(path);
        let headers = request.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
            headers.insert(header::HOST, host);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(wire::CONTENT_TYPE),
        );
        headers.insert(wire::FROM_HEADER, HeaderValue::from(self.node_id));
        if let Some(auth) = self
            .credentials
            .peer_secret()
            .and_then(|s| s.authorization().cloned())
        {
            headers.insert(header::AUTHORIZATION, auth);
        }
        request
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Connection> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some(connection) = list.pop() {
            if !connection.sender.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, addr: SocketAddr, connection: Connection) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_PEER {
            list.push(connection);
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Connection, PeerError> {
        let stream =
            glommio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| PeerError::Connect {
                    addr,
                    source: e.into(),
                })?;
        let _ = stream.set_nodelay(true);
        match self.credentials.peer_tls() {
            None => Self::start_http(addr, stream).await,
            Some(peer_tls) => {
                // A refused certificate (either side's) sent no request either.
                let stream = tls::connect(&peer_tls.client, addr.ip(), stream)
                    .await
                    .map_err(|source| PeerError::Connect { addr, source })?;
                Self::start_http(addr, stream).await
            }
        }
    }

    /// Starts HTTP/1.1 on a connected stream and its driver task.
    async fn start_http<S>(addr: SocketAddr, stream: S) -> Result<Connection, PeerError>
    where
        S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
    {
        // A failed handshake sent nothing: report it as a connection failure.
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(HyperIo(stream))
            .await
            .map_err(|e| PeerError::Connect {
                addr,
                source: std::io::Error::other(e),
            })?;
        let driver = glommio::spawn_local(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %addr, error = %e, "peer connection ended");
            }
        });
        Ok(Connection {
            sender,
            _driver: driver,
        })
    }
}
