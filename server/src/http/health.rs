//! `POST /api/topology/health[?nodeId=ID]`: runs a health round now on the leader
//! (every data node, or one) and answers each node's result and state.
//!
//! It commits like a write (the round's transitions become one version), so it takes
//! the write routes' bearer token. Only the leader probes: a follower asks the leader
//! over the peer port and answers with the leader's report (503 naming the leader when
//! none is reachable).

use concord_model::check_id;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::query::Query;
use super::response::{self, Body};
use super::write::{read_body, unauthorized};
use crate::executor::ExecutorContext;
use crate::health::{HealthRoundError, NodeResult};

#[derive(Serialize)]
struct HealthAnswer<'a> {
    success: bool,
    message: &'a str,
    version: u64,
    results: &'a [NodeResult],
}

/// The `nodeId` filter, checked: a malformed id is 400 naming the parameter.
fn node_filter(query: &Query) -> Result<Option<String>, String> {
    match query.text("nodeId") {
        None => Ok(None),
        Some(id) => check_id(id)
            .map(|()| Some(id.to_string()))
            .map_err(|why| format!("query parameter `nodeId` {why}")),
    }
}

/// The body must be empty (or an empty JSON object): the route takes its input from
/// the query string, and silently ignoring a body would hide a client's mistake.
fn empty_body(body: &[u8]) -> bool {
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    text.is_empty() || text == b"{}"
}

pub async fn handle(req: Request<Incoming>, ctx: &ExecutorContext) -> Response<Body> {
    let published = ctx.published.current();
    let topo = ctx.headers_for(&published);
    let fail = |status: StatusCode, message: &str| response::error(status, message, topo);

    if let Some(answer) = unauthorized(req.headers(), ctx, topo, "this route needs an") {
        return answer;
    }
    let only = match Query::parse(req.uri().query(), &["nodeId"]).and_then(|q| node_filter(&q)) {
        Ok(only) => only,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    if let Some(id) = &only {
        if published.state.node(id).is_none() {
            return fail(
                StatusCode::NOT_FOUND,
                &HealthRoundError::UnknownNode(id.clone()).to_string(),
            );
        }
    }
    match read_body(req, ctx.shared.config.http.max_body_bytes).await {
        Ok(body) if empty_body(&body) => {}
        Ok(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "this route takes no body (use `?nodeId=` to check one node)",
            )
        }
        Err((status, message)) => return fail(status, &message),
    }

    match ctx.shared.control.health_round(only).await {
        Ok(report) => {
            // Read-your-writes on this server, as the write routes do.
            let timeout = ctx.shared.config.http.write_timeout;
            ctx.published
                .wait_until(|p| p.version >= report.version, timeout)
                .await;
            let published = ctx.published.current();
            let message = format!(
                "checked {} node(s): {} failed, {} updated",
                report.results.len(),
                report.results.iter().filter(|r| !r.passed).count(),
                report.updated
            );
            let body = serde_json::to_vec(&HealthAnswer {
                success: true,
                message: &message,
                version: report.version,
                results: &report.results,
            })
            .expect("health answers serialize");
            let mut topo = ctx.headers_for(&published);
            topo.version = topo.version.max(report.version);
            response::json(StatusCode::OK, body, topo)
        }
        Err(e @ HealthRoundError::UnknownNode(_)) => fail(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ HealthRoundError::Disabled) => fail(StatusCode::CONFLICT, &e.to_string()),
        Err(
            e @ (HealthRoundError::NotLeader { .. }
            | HealthRoundError::Commit(_)
            | HealthRoundError::Stopped
            | HealthRoundError::Forward { .. }),
        ) => {
            let mut answer = fail(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_filter_is_checked() {
        let q = Query::parse(Some("nodeId=node-1"), &["nodeId"]).unwrap();
        assert_eq!(node_filter(&q).unwrap().as_deref(), Some("node-1"));
        let q = Query::parse(None, &["nodeId"]).unwrap();
        assert_eq!(node_filter(&q).unwrap(), None);
        for bad in ["nodeId=", "nodeId=a%2Fb", "nodeId=a%20b"] {
            let q = Query::parse(Some(bad), &["nodeId"]).unwrap();
            assert!(node_filter(&q).unwrap_err().contains("nodeId"), "{bad}");
        }
        assert!(Query::parse(Some("node=a"), &["nodeId"])
            .unwrap_err()
            .contains("node"));
    }

    #[test]
    fn only_an_empty_body_is_accepted() {
        assert!(empty_body(b""));
        assert!(empty_body(b" {\n} "));
        assert!(!empty_body(br#"{"nodeId":"a"}"#));
    }
}
