//! The server side of the peer transport: the peer-port listener, on the control
//! executor where Raft lives (openraft is `!Send` here), serving the routes of
//! [`super::wire`] with hyper's HTTP/1.1 over the same glommio adapters as the
//! client API.
//!
//! A request without the peer secret is refused first; every body is read whole under
//! `raft.max_message_bytes`, within `raft.snapshot_timeout`, before it is decoded; a
//! body that is too large, too slow or undecodable, or that [`super::peer_guard`]
//! refuses (a caller that is not a member, a term out of range), is answered with an
//! HTTP status and never reaches Raft. Heads must arrive within
//! `http.header_read_timeout`, and at most `raft.max_peer_connections` connections
//! are open at once (past it, 503 and close). The
//! serving executors never come here: a slow or dead peer costs this executor a
//! task and a socket, not a client request. With `peer_tls:` configured a connection
//! must complete mutual TLS (a client certificate signed by the cluster CA) within
//! the keep-alive timeout before a request is read; the bearer token is checked on
//! top of it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::{TcpListener, TcpStream};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::handle::RaftHandle;
use super::peer_guard::{self, PeerMessage, Refusal};
use super::types::TopoConfig;
use super::wire;
use crate::config::LiveCredentials;
use crate::net;
use crate::net::capacity::Capacity;
use crate::net::conn::{self, ConnectionTimeouts};
use crate::net::tls;
use crate::service::{Answer, LeaderSide, Operation, ServiceError, FORWARD_ROUTES};

/// What the peer listener enforces.
#[derive(Clone)]
pub struct PeerServerOptions {
    /// As in force (a reload replaces them): mutual TLS (`peer_tls:`), under which
    /// every connection must present a certificate signed by the cluster CA before
    /// any request is read; and the peer secret every request must carry as
    /// `Authorization: Bearer <secret>` (absent only in an `insecure` cluster).
    pub credentials: Arc<LiveCredentials>,
    /// Largest request body accepted (snapshots included).
    pub max_message_bytes: usize,
    /// Time allowed for a whole request body to arrive (a snapshot's must, too).
    pub body_timeout: Duration,
    /// Idle keep-alive and request-head limits.
    pub timeouts: ConnectionTimeouts,
    /// Peer connections open at once.
    pub connections: Arc<Capacity>,
    /// Runs the operations followers forward (set by the process wiring).
    pub leader: Option<Rc<dyn LeaderSide>>,
}

impl PeerServerOptions {
    pub fn from_config(
        config: &crate::config::Config,
        credentials: Arc<LiveCredentials>,
    ) -> PeerServerOptions {
        PeerServerOptions {
            max_message_bytes: config.raft.max_message_bytes,
            credentials,
            body_timeout: config.raft.snapshot_timeout,
            timeouts: ConnectionTimeouts {
                idle: config.http.keepalive_timeout,
                head: config.http.header_read_timeout,
            },
            connections: Capacity::new(config.raft.max_peer_connections),
            leader: None,
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
    let refusal = conn::refusal(
        "text/plain; charset=utf-8",
        b"too many peer connections are open (raft.max_peer_connections); retry",
    );
    conn::accept_loop(
        listener,
        options.connections.clone(),
        refusal,
        |stream: TcpStream, place| {
            let (node, options) = (node.clone(), options.clone());
            async move {
                let _place = place;
                let timeouts = options.timeouts;
                let peer = stream.peer_addr().ok();
                let handler_options = options.clone();
                let handler = move |req, _connection| {
                    let (node, options) = (node.clone(), handler_options.clone());
                    async move { handle(req, &node, &options).await }
                };
                match options.credentials.peer_tls() {
                    None => {
                        conn::serve_http1(stream, Default::default(), peer, timeouts, None, handler)
                            .await
                    }
                    Some(peer_tls) => {
                        let deadline = timeouts.idle.min(timeouts.head);
                        match tls::accept(&peer_tls.server, stream, deadline).await {
                            Ok(stream) => {
                                conn::serve_http1(
                                    stream,
                                    Default::default(),
                                    peer,
                                    timeouts,
                                    None,
                                    handler,
                                )
                                .await
                            }
                            // Most often a certificate from another CA, or none at all.
                            Err(e) => tracing::warn!(error = %e, "peer TLS handshake refused"),
                        }
                    }
                }
            }
        },
    )
    .await;
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

fn decoded<T: DeserializeOwned>(body: &[u8], path: &str) -> Result<T, Refusal> {
    wire::decode(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body of {path} is not a valid peer message: {e}"),
        )
    })
}

async fn read_body(req: Request<Incoming>, options: &PeerServerOptions) -> Result<Bytes, Refusal> {
    net::read_body(
        req.into_body(),
        options.max_message_bytes,
        options.body_timeout,
    )
    .await
    .map_err(|e| match e {
        net::BodyError::TooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("peer messages are limited to {limit} bytes (raft.max_message_bytes)"),
        ),
        net::BodyError::TimedOut { after } => (
            StatusCode::REQUEST_TIMEOUT,
            format!("the peer message did not arrive within {after:?} (raft.snapshot_timeout)"),
        ),
        e @ net::BodyError::Unreadable(_) => (StatusCode::BAD_REQUEST, e.to_string()),
    })
}

async fn handle(
    req: Request<Incoming>,
    node: &RaftHandle,
    options: &PeerServerOptions,
) -> Response<Full<Bytes>> {
    let secret = options.credentials.peer_secret();
    if let Err((status, message)) = peer_guard::authenticate(req.headers(), secret.as_deref()) {
        return plain(status, message);
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
    let caller = peer_guard::caller(req.headers());
    let answer = match read_body(req, options).await {
        Ok(body) => dispatch(&path, &body, caller, node, options).await,
        Err(refusal) => Err(refusal),
    };
    answer.unwrap_or_else(|(status, message)| plain(status, message))
}

/// Decodes the body for `path`, checks its caller and content, hands it to Raft,
/// encodes the answer.
async fn dispatch(
    path: &str,
    body: &[u8],
    caller: Result<u64, Refusal>,
    node: &RaftHandle,
    options: &PeerServerOptions,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let raft = node.raft();
    // Each message is decoded before its caller is judged: an unreadable body is a
    // 400 whoever sends it.
    let view = node.local_view();
    let checked = |message: &dyn PeerMessage| -> Result<(), Refusal> {
        let caller = caller.clone()?;
        peer_guard::member(caller, &view, Some(message))?;
        message.check(caller)
    };
    let answer = match path {
        wire::APPEND => {
            let rpc: AppendEntriesRequest<TopoConfig> = decoded(body, path)?;
            checked(&rpc)?;
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
            let rpc: VoteRequest<TopoConfig> = decoded(body, path)?;
            checked(&rpc)?;
            binary(&raft.vote(rpc).await.map_err(|e| e.to_string()))
        }
        wire::PRE_VOTE => {
            let rpc: VoteRequest<TopoConfig> = decoded(body, path)?;
            checked(&rpc)?;
            binary(&raft.pre_vote(rpc).await.map_err(|e| e.to_string()))
        }
        wire::SNAPSHOT => {
            let request: wire::SnapshotRequest = decoded(body, path)?;
            checked(&request)?;
            let snapshot = super::types::Snapshot {
                meta: request.meta,
                snapshot: request.data,
            };
            let result = raft.install_full_snapshot(request.vote, snapshot).await;
            binary(&result.map_err(|e| e.to_string()))
        }
        wire::TRANSFER_LEADER => {
            let request: TransferLeaderRequest<TopoConfig> = decoded(body, path)?;
            checked(&request)?;
            peer_guard::from_leader(caller.clone()?, view.leader)?;
            let result = raft.handle_transfer_leader(request).await;
            binary(&result.map_err(|e| e.to_string()))
        }
        forwarded if FORWARD_ROUTES.contains(&forwarded) => {
            let operation: Operation = decoded(body, path)?;
            peer_guard::member(caller.clone()?, &view, None)?;
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
