//! Membership routes: `POST /api/cluster/learners` and `POST /api/cluster/membership`.
//!
//! They need the admin scope (checked by the router). Strict JSON
//! bodies (unknown fields and wrong types are 400 naming the field), and nothing
//! half-applied. The leader decides membership; a follower answers 421 Misdirected
//! Request naming the leader rather than forwarding, so the operator knows which
//! server acted.

use concord_api::{AddLearnerBody, ClusterAnswer, MembershipBody};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::extract;
use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::service::Operation;

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
    change(route, req, ctx)
        .await
        .unwrap_or_else(|refusal| refusal)
}

async fn change(
    route: MembershipRoute,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Result<Response<Body>, Response<Body>> {
    let request = extract::check(req, ctx, &[])?;
    let topo = request.topo;
    let (operation, message) = match route {
        MembershipRoute::AddLearner => {
            let b: AddLearnerBody = request.json().await?;
            let message = if b.wait {
                "learner added and caught up"
            } else {
                "learner added"
            };
            let operation = Operation::AddLearner {
                node_id: b.node_id,
                address: b.address,
                wait: b.wait,
            };
            (operation, message)
        }
        MembershipRoute::ChangeMembership => {
            let b: MembershipBody = request.json().await?;
            let voters = b
                .voters()
                .map_err(|message| response::error(StatusCode::BAD_REQUEST, &message, topo))?;
            (Operation::ChangeMembership { voters }, "membership changed")
        }
    };
    let answer = match ctx
        .shared
        .service
        .call(operation)
        .await
        .and_then(|o| o.cluster())
    {
        Ok(cluster) => response::done(message, topo.version, ClusterAnswer { cluster }, topo),
        Err(e) => response::failure(&e, topo),
    };
    Ok(answer)
}
