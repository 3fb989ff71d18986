//! `GET /api/topology/subscribe`: Server-Sent Events of every topology change.
//!
//! Resume point: `Last-Event-ID` (what a browser's EventSource sends on reconnect)
//! wins over `?sinceVersion=`; without either, the stream starts at the current
//! version. A resume point this server has not applied yet (a client that failed
//! over to a lagging server) is waited for, boundedly, then answered 503. A server
//! still loading the state it had durably refuses subscriptions (503, retry).
//!
//! [`accept`] decides (both paths); [`handle`] answers through hyper, with the stream
//! as the response body (`notify::subscribers::open`); [`take_over`] answers a
//! subscribe that was the first request of a plain connection by writing the head
//! itself and handing the socket to the executor's fan-out writer (`notify::fanout`).

use std::rc::Rc;

use std::net::SocketAddr;

use crate::net::ready::ReadyStream;
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::query::Query;
use super::response::{self, Body};
use super::router;
use crate::executor::ExecutorContext;
use crate::net::bearer::Presented;
use crate::net::capacity::Place;
use crate::net::raw::RawSocket;
use crate::net::ConnectionGuard;
use crate::notify::fanout::{self, Handoff};
use crate::notify::feed::Feed;
use crate::notify::subscribers::{self, Full, Slot, StreamStart};
use crate::publish::frames::EventFilter;

fn resume_point(headers: &HeaderMap, query: &Query) -> Result<Option<u64>, String> {
    if let Some(value) = headers.get("last-event-id") {
        let text = value.to_str().unwrap_or("").trim();
        // An empty Last-Event-ID means "no id seen yet" (EventSource semantics).
        if text.is_empty() {
            return query.u64("sinceVersion");
        }
        return text
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("Last-Event-ID must be a topology version, got `{text}`"));
    }
    query.u64("sinceVersion")
}

/// An accepted subscription: where its stream starts, and its response headers.
pub struct Accepted {
    pub start: StreamStart,
    pub headers: HeaderMap,
}

/// Answers a subscribe through hyper: the stream is the response body.
pub async fn handle(
    req: Request<Incoming>,
    ctx: &Rc<ExecutorContext>,
    connection: Rc<ConnectionGuard>,
) -> Response<Body> {
    match accept(req.uri(), req.headers(), ctx, connection).await {
        Ok(accepted) => {
            let mut answer =
                Response::new(Body::stream(subscribers::open(ctx.clone(), accepted.start)));
            *answer.headers_mut() = accepted.headers;
            answer
        }
        Err(refused) => refused,
    }
}

/// Decides a subscription: its resume point, filter and place in the subscriber
/// counts, or the refusal to send.
pub async fn accept(
    uri: &Uri,
    request_headers: &HeaderMap,
    ctx: &Rc<ExecutorContext>,
    connection: Rc<ConnectionGuard>,
) -> Result<Accepted, Response<Body>> {
    let published = ctx.published.current();
    let fail =
        |status: StatusCode, message: &str| response::error(status, message, ctx.current_headers());
    let notifications = &ctx.shared.config.topology.notifications;
    if !notifications.enable_sse {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "SSE subscriptions are disabled (topology.notifications.enable_sse: false)",
        ));
    }
    if let Err(loading) = ctx.shared.readiness.admit(&published) {
        return Err(response::failure(&loading, ctx.headers_for(&published)));
    }
    let query = match Query::parse(uri.query(), &["sinceVersion", "eventTypes"]) {
        Ok(q) => q,
        Err(message) => return Err(fail(StatusCode::BAD_REQUEST, &message)),
    };
    let filter = match query.text("eventTypes") {
        None => EventFilter::ALL,
        Some(list) => match EventFilter::parse(list) {
            Ok(f) => f,
            Err(message) => return Err(fail(StatusCode::BAD_REQUEST, &message)),
        },
    };
    let since = match resume_point(request_headers, &query) {
        Ok(since) => since,
        Err(message) => return Err(fail(StatusCode::BAD_REQUEST, &message)),
    };
    let cursor = match since {
        None => published.version,
        Some(since) if since <= published.version => since,
        Some(since) => {
            let wait = ctx.shared.config.http.write_timeout;
            if !ctx.published.wait_until(|p| p.version >= since, wait).await {
                return Err(response::retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "this server has applied version {} only, behind the requested {since}; try another server",
                        ctx.published.current().version
                    ),
                    ctx.current_headers(),
                ));
            }
            since
        }
    };
    let slot = match Slot::take(&ctx.shared, connection.peer_addr()) {
        Ok(slot) => slot,
        Err(full) => {
            let message = match full {
                Full::Server(max) => format!(
                    "this server already serves {max} subscribers (topology.notifications.max_subscribers); try another server"
                ),
                Full::Address(max) => format!(
                    "your address already holds {max} streams (topology.notifications.max_subscribers_per_address); close one or retry later"
                ),
            };
            return Err(response::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                &message,
                ctx.current_headers(),
            ));
        }
    };
    let start = StreamStart {
        cursor,
        filter,
        presented: Presented::of(request_headers),
        connection,
        slot,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response::add_topology_headers(&mut headers, ctx.current_headers(), false);
    Ok(Accepted { start, headers })
}

/// What became of a connection whose first request was a subscribe.
pub enum TakeOver {
    /// The stream is the fan-out writer's now.
    Taken,
    /// Refused (the answer was sent, with `connection: close`), or gone.
    Closed,
}

/// Answers `req`, the first request of a plain connection and a subscribe
/// (`router::takes_socket`): accepted, the head is written by the fan-out writer,
/// which drives the socket from then on; refused, the refusal is written here and
/// the connection closed (as for any answer hyper did not write).
pub async fn take_over(
    req: Request<()>,
    ctx: &Rc<ExecutorContext>,
    mut stream: ReadyStream,
    place: Place,
    peer: Option<SocketAddr>,
) -> TakeOver {
    let connection = Rc::new(ConnectionGuard::for_peer(peer));
    let accepted = match router::subscribe(&req, ctx, connection).await {
        Ok(accepted) => accepted,
        Err(refused) => {
            let (mut parts, body) = refused.into_parts();
            let body = body.into_full().unwrap_or_default();
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            let _ = stream.write_all(&serialize(&parts, Some(&body))).await;
            let _ = stream.close().await;
            drop(place);
            return TakeOver::Closed;
        }
    };
    let Ok(socket) = RawSocket::duplicate(&stream) else {
        return TakeOver::Closed;
    };
    drop(stream);
    let (feed, opening) = Feed::open(&ctx.shared, ctx.published.current().version, accepted.start);
    let (mut head, ()) = Response::new(()).into_parts();
    head.headers = accepted.headers;
    head.headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    let handoff = Handoff {
        socket,
        head: serialize(&head, None),
        feed,
        opening,
        place,
    };
    if fanout::hand_over(handoff) {
        TakeOver::Taken
    } else {
        TakeOver::Closed
    }
}

/// A response head with a whole `body` (or none: the head of a chunked stream) as
/// HTTP/1.1 bytes, as hyper would write it.
fn serialize(parts: &http::response::Parts, body: Option<&[u8]>) -> Bytes {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_str(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    Bytes::from(out)
}
