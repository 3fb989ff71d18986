//! Membership routes: `POST /api/cluster/learners` and `POST /api/cluster/membership`.
//!
//! Same rules as the topology writes: the bearer token when configured, strict JSON
//! bodies (unknown fields and wrong types are 400 naming the field), and nothing
//! half-applied. The leader decides membership; a follower answers 421 Misdirected
//! Request naming the leader rather than forwarding, so the operator knows which
//! server acted.

use std::collections::BTreeSet;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::query::Query;
use super::response::{self, Body};
use super::write::{parse, read_body, required, unauthorized};
use crate::control::{ClusterStatus, MembershipError};
use crate::executor::ExecutorContext;

/// `{"nodeId": 4, "address": "10.0.0.4:7071", "wait": true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddLearnerBody {
    node_id: u64,
    /// The new server's (advertised) peer address.
    address: String,
    /// Answer only once the learner has caught up with the leader's log.
    #[serde(default)]
    wait: bool,
}

/// `{"members": [1, 2, 4]}`: the voters after the change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    members: Vec<u64>,
}

#[derive(Serialize)]
struct Answer<'a> {
    success: bool,
    message: &'a str,
    version: u64,
    cluster: ClusterStatus,
}

/// Which membership route.
#[derive(Clone, Copy, Debug)]
pub enum MembershipRoute {
    AddLearner,
    ChangeMembership,
}

pub async fn handle(
    route: MembershipRoute,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Response<Body> {
    let published = ctx.published.current();
    let topo = ctx.headers_for(&published);
    let fail = |status: StatusCode, message: &str| response::error(status, message, topo);

    if let Some(answer) = unauthorized(req.headers(), ctx, topo, "membership changes need an") {
        return answer;
    }
    if let Err(message) = Query::parse(req.uri().query(), &[]) {
        return fail(StatusCode::BAD_REQUEST, &message);
    }
    let mut body = match read_body(req, ctx.shared.config.http.max_body_bytes).await {
        Ok(body) => body.to_vec(),
        Err((status, message)) => return fail(status, &message),
    };
    if let Err(message) = required(&mut body) {
        return fail(StatusCode::BAD_REQUEST, &message);
    }
    let control = &ctx.shared.control;
    let (outcome, message) = match route {
        MembershipRoute::AddLearner => {
            let b: AddLearnerBody = match parse(&mut body) {
                Ok(b) => b,
                Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
            };
            let message = if b.wait {
                "learner added and caught up"
            } else {
                "learner added"
            };
            (
                control.add_learner(b.node_id, b.address, b.wait).await,
                message,
            )
        }
        MembershipRoute::ChangeMembership => {
            let b: MembershipBody = match parse(&mut body) {
                Ok(b) => b,
                Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
            };
            let voters: BTreeSet<u64> = b.members.iter().copied().collect();
            if voters.len() != b.members.len() {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "invalid body: field `members`: a node id is listed twice",
                );
            }
            (
                control.change_membership(voters).await,
                "membership changed",
            )
        }
    };
    match outcome {
        Ok(cluster) => {
            let body = serde_json::to_vec(&Answer {
                success: true,
                message,
                version: published.version,
                cluster,
            })
            .expect("cluster answers serialize");
            response::json(StatusCode::OK, body, topo)
        }
        Err(e) => {
            let status = status_of(&e);
            let mut answer = fail(status, &e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            answer
        }
    }
}

fn status_of(e: &MembershipError) -> StatusCode {
    match e {
        MembershipError::Invalid(_) => StatusCode::BAD_REQUEST,
        MembershipError::Conflict(_) => StatusCode::CONFLICT,
        MembershipError::NotLeader {
            leader_id: Some(_), ..
        } => StatusCode::MISDIRECTED_REQUEST,
        MembershipError::NotLeader {
            leader_id: None, ..
        }
        | MembershipError::Timeout(_)
        | MembershipError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
