//! `GET /api/topology/subscribe`: Server-Sent Events of every topology change.
//!
//! Resume point: `Last-Event-ID` (what a browser's EventSource sends on reconnect)
//! wins over `?sinceVersion=`; without either, the stream starts at the current
//! version. A resume point this server has not applied yet (a client that failed
//! over to a lagging server) is waited for, boundedly, then answered 503. A server
//! still loading the state it had durably refuses subscriptions (503, retry).

use std::rc::Rc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::query::Query;
use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::net::ConnectionGuard;
use crate::notify::subscribers::{self, Full, Slot, StreamStart};
use crate::publish::frames::EventFilter;

fn resume_point(req: &Request<Incoming>, query: &Query) -> Result<Option<u64>, String> {
    if let Some(value) = req.headers().get("last-event-id") {
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

pub async fn handle(
    req: Request<Incoming>,
    ctx: &Rc<ExecutorContext>,
    connection: Rc<ConnectionGuard>,
) -> Response<Body> {
    let published = ctx.published.current();
    let fail =
        |status: StatusCode, message: &str| response::error(status, message, ctx.current_headers());
    let notifications = &ctx.shared.config.topology.notifications;
    if !notifications.enable_sse {
        return fail(
            StatusCode::NOT_FOUND,
            "SSE subscriptions are disabled (topology.notifications.enable_sse: false)",
        );
    }
    if let Err(loading) = ctx.shared.readiness.admit(&published) {
        return response::failure(&loading, ctx.headers_for(&published));
    }
    let query = match Query::parse(req.uri().query(), &["sinceVersion", "eventTypes"]) {
        Ok(q) => q,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let filter = match query.text("eventTypes") {
        None => EventFilter::ALL,
        Some(list) => match EventFilter::parse(list) {
            Ok(f) => f,
            Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
        },
    };
    let since = match resume_point(&req, &query) {
        Ok(since) => since,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let cursor = match since {
        None => published.version,
        Some(since) if since <= published.version => since,
        Some(since) => {
            let wait = ctx.shared.config.http.write_timeout;
            if !ctx.published.wait_until(|p| p.version >= since, wait).await {
                return response::retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "this server has applied version {} only, behind the requested {since}; try another server",
                        ctx.published.current().version
                    ),
                    ctx.current_headers(),
                );
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
            return response::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                &message,
                ctx.current_headers(),
            );
        }
    };
    let stream = subscribers::open(
        ctx.clone(),
        StreamStart {
            cursor,
            filter,
            connection,
            slot,
        },
    );
    let mut answer = Response::new(Body::stream(stream));
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response::add_topology_headers(headers, ctx.current_headers(), false);
    answer
}
