//! `POST /api/topology/health[?nodeId=ID]`: runs a health round now on the leader
//! (every data node, or one) and answers each node's result and state.
//!
//! It commits like a write (the round's transitions become one version), so it takes
//! the write routes' bearer token. Only the leader probes: on a follower the service
//! forwards the round to the leader and answers with the leader's report (503 when
//! no leader is reachable).

use concord_api::HealthRoundResults;
use concord_model::check_id;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::extract;
use super::query::Query;
use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::service::Operation;

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
    round(req, ctx).await.unwrap_or_else(|refusal| refusal)
}

async fn round(
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Result<Response<Body>, Response<Body>> {
    let request = extract::check(req, ctx, &["nodeId"])?;
    let only =
        node_filter(&request.query).map_err(|m| request.fail(StatusCode::BAD_REQUEST, &m))?;
    if let Some(id) = &only {
        if ctx.published.current().state.node(id).is_none() {
            return Err(request.fail(
                StatusCode::NOT_FOUND,
                &format!("no data node {id:?} is registered"),
            ));
        }
    }
    let topo = request.topo;
    if !empty_body(&request.body().await?) {
        return Err(response::error(
            StatusCode::BAD_REQUEST,
            "this route takes no body (use `?nodeId=` to check one node)",
            topo,
        ));
    }
    let outcome = ctx
        .shared
        .service
        .call(Operation::HealthRound { only })
        .await;
    let report = match outcome.and_then(|o| o.health_round()) {
        Ok(report) => report,
        Err(e) => return Ok(response::failure(&e, topo)),
    };
    // Read-your-writes on this server, as the write routes do.
    let timeout = ctx.shared.config.http.write_timeout;
    ctx.published
        .wait_until(|p| p.version >= report.version, timeout)
        .await;
    let message = format!(
        "checked {} node(s): {} failed, {} updated",
        report.results.len(),
        report.results.iter().filter(|r| !r.passed).count(),
        report.updated
    );
    let mut topo = ctx.current_headers();
    topo.version = topo.version.max(report.version);
    let results = HealthRoundResults {
        results: &report.results,
    };
    Ok(response::done(&message, report.version, results, topo))
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
