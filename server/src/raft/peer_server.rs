//! The server side of the peer transport: the peer-port listener, on the control
//! executor where Raft lives (openraft is `!Send` here), serving the routes of
//! [`super::wire`] with hyper's HTTP/1.1 over the same glommio adapters as the
//! client API.
//!
//! Every body is read whole under `raft.max_message_bytes` before it is decoded;
//! a body that is too large, undecodable, or lacks the cluster's bearer token (when
//! one is configured) is refused with an HTTP status and never reaches Raft. The
//! serving executors never come here: a slow or dead peer costs this executor a
//! task and a socket, not a client request. With `peer_tls:` configured a connection
//! must complete mutual TLS (a client certificate signed by the cluster CA) within
//! the keep-alive timeout before a request is read; the bearer token is checked on
//! top of it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpListener;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use openraft::raft::AppendEntriesResponse;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::handle::RaftHandle;
use super::wire;
use crate::net;
use crate::net::io::{GlommioTimer, HyperIo};
use crate::net::tls;
use crate::service::{Answer, LeaderSide, Operation, ServiceError, FORWARD_ROUTES};

/// What the peer listener enforces.
#[derive(Clone)]
pub struct PeerServerOptions {
    /// Mutual TLS (`peer_tls:`): every connection must present a certificate signed
    /// by the cluster CA before any request is read. Set by the process wiring.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest request body accepted (snapshots included).
    pub max_message_bytes: usize,
    /// When set, every peer request must carry `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// How long an idle peer connection is kept open.
    pub keepalive_timeout: Duration,
    /// Runs the operations followers forward (set by the process wiring).
    pub leader: Option<Rc<dyn LeaderSide>>,
}

impl PeerServerOptions {
    pub fn from_config(config: &crate::config::Config) -> PeerServerOptions {
        PeerServerOptions {
            max_message_bytes: config.raft.max_message_bytes,
            auth_token: config.auth_token.clone(),
            keepalive_timeout: config.http.keepalive_timeout,
            leader: None,
            tls: None,
        }
    }
}

/// Binds the peer address: one executor serves it, and a second process must not
/// share it.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    net::listen(addr, net::Sharing::Exclusive)
}

/// Serves peer connections until the executor stops.
pub async fn serve(listener: TcpListener, node: Rc<RaftHandle>, options: PeerServerOptions) {
    let options = Rc::new(options);
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let options = options.clone();
        glommio::spawn_local(async move {
            match &options.tls {
                None => serve_connection(stream, node, options).await,
                Some(config) => {
                    match tls::accept(config, stream, options.keepalive_timeout).await {
                        Ok(stream) => serve_connection(stream, node, options).await,
                        // Most often a certificate from another CA, or none at all.
                        Err(e) => tracing::warn!(error = %e, "peer TLS handshake refused"),
                    }
                }
            }
        })
        .detach();
    }
}

/// Serves one peer connection (a socket, or mutual TLS over one).
async fn serve_connection<S>(stream: S, node: Rc<RaftHandle>, options: Rc<PeerServerOptions>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let service_options = options.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let node = node.clone();
        let options = service_options.clone();
        async move { Ok::<_, Infallible>(handle(req, &node, &options).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(GlommioTimer)
        .header_read_timeout(options.keepalive_timeout)
        .keep_alive(true)
        .serve_connection(HyperIo(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "peer connection ended with an error");
    }
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn binary<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match wire::encode(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(bytes));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(wire::CONTENT_TYPE),
            );
            response
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
        ),
    }
}

/// A refusal before Raft saw the request: status and one-line reason.
type Refusal = (StatusCode, String);

fn decoded<T: DeserializeOwned>(body: &[u8], path: &str) -> Result<T, Refusal> {
    wire::decode(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body of {path} is not a valid peer message: {e}"),
        )
    })
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Refusal> {
    net::read_body(req.into_body(), limit)
        .await
        .map_err(|e| match e {
            net::BodyError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("peer messages are limited to {limit} bytes (raft.max_message_bytes)"),
            ),
            e @ net::BodyError::Unreadable(_) => (StatusCode::BAD_REQUEST, e.to_string()),
        })
}

async fn handle(
    req: Request<Incoming>,
    node: &RaftHandle,
    options: &PeerServerOptions,
) -> Response<Full<Bytes>> {
    if !net::authorized(req.headers(), options.auth_token.as_deref()) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "peer requests need the cluster's bearer token (auth_token must be the same on every server)",
        );
    }
    let path = req.uri().path().to_string();
    let raft_routes = [
        wire::APPEND,
        wire::VOTE,
        wire::PRE_VOTE,
        wire::SNAPSHOT,
        wire::TRANSFER_LEADER,
    ];
    if !raft_routes.contains(&path.as_str()) && !FORWARD_ROUTES.contains(&path.as_str()) {
        return plain(StatusCode::NOT_FOUND, format!("no peer route {path}"));
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, format!("{path} takes POST"));
    }
    let answer = match read_body(req, options.max_message_bytes).await {
        Ok(body) => dispatch(&path, &body, node, options).await,
        Err(refusal) => Err(refusal),
    };
    answer.unwrap_or_else(|(status, message)| plain(status, message))
}

/// Decodes the body for `path`, hands it to Raft, encodes the answer.
async fn dispatch(
    path: &str,
    body: &[u8],
    node: &RaftHandle,
    options: &PeerServerOptions,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let raft = node.raft();
    let answer = match path {
        wire::APPEND => {
            let rpc = decoded(body, path)?;
            let answer = raft.append_entries(rpc).await;
            if answer
                .as_ref()
                .is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote(_)))
            {
                node.note_leader_contact();
            }
            binary(&answer.map_err(|e| e.to_string()))
        }
        wire::VOTE => {
            let rpc = decoded(body, path)?;
            binary(&raft.vote(rpc).await.map_err(|e| e.to_string()))
        }
        wire::PRE_VOTE => {
            let rpc = decoded(body, path)?;
            binary(&raft.pre_vote(rpc).await.map_err(|e| e.to_string()))
        }
        wire::SNAPSHOT => {
            let request: wire::SnapshotRequest = decoded(body, path)?;
            let snapshot = super::types::Snapshot {
                meta: request.meta,
                snapshot: request.data,
            };
            let result = raft.install_full_snapshot(request.vote, snapshot).await;
            binary(&result.map_err(|e| e.to_string()))
        }
        wire::TRANSFER_LEADER => {
            let request = decoded(body, path)?;
            let result = raft.handle_transfer_leader(request).await;
            binary(&result.map_err(|e| e.to_string()))
        }
        forwarded if FORWARD_ROUTES.contains(&forwarded) => {
            let operation: Operation = decoded(body, path)?;
            if operation.forward_route() != Some(path) {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("the body of {path} is not a valid peer message: another operation"),
                ));
            }
            let answer: Answer = match &options.leader {
                // Run here or refused; never forwarded on.
                Some(leader) => leader
                    .run_here(operation)
                    .await
                    .map_err(ServiceError::unforwarded),
                None => Err(ServiceError::no_leader(
                    "the server the request was forwarded to serves no forwarded operations",
                )),
            };
            binary(&answer)
        }
        _ => return Err((StatusCode::NOT_FOUND, format!("no peer route {path}"))),
    };
    Ok(answer)
}
