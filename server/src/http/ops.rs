//! Operational routes: cluster status, Prometheus metrics, liveness and readiness.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::metrics::{self, Gauges};

#[derive(Clone, Copy, Debug)]
pub enum ClusterRoute {
    Status,
    Membership(super::cluster::MembershipRoute),
}

#[derive(Clone, Copy, Debug)]
pub enum ProbeRoute {
    Metrics,
    Healthz,
    Readyz,
}

pub async fn cluster(
    route: ClusterRoute,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Response<Body> {
    match route {
        ClusterRoute::Membership(m) => super::cluster::handle(m, req, ctx).await,
        ClusterRoute::Status => {
            let published = ctx.published.current();
            let topo = ctx.headers_for(&published);
            match ctx.shared.control.status().await {
                Some(status) => {
                    let body = crate::publish::encode_ok(
                        published.version,
                        ClusterPayload { cluster: status },
                    );
                    response::json(StatusCode::OK, body, topo)
                }
                None => response::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the control executor is not running",
                    topo,
                ),
            }
        }
    }
}

#[derive(serde::Serialize)]
struct ClusterPayload {
    cluster: crate::control::ClusterStatus,
}

pub fn probe(route: ProbeRoute, ctx: &ExecutorContext) -> Response<Body> {
    match route {
        ProbeRoute::Healthz => response::text(StatusCode::OK, "text/plain", "ok\n".into()),
        ProbeRoute::Readyz => {
            let ready = ctx.shared.ready.load(std::sync::atomic::Ordering::Relaxed)
                && ctx.shared.raft.leader() != 0;
            if ready {
                response::text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                response::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: no Raft leader known or no state published yet\n".into(),
                )
            }
        }
        ProbeRoute::Metrics => {
            let published = ctx.published.current();
            let raft = &ctx.shared.raft;
            let gauges = Gauges {
                version: published.version,
                term: raft.term(),
                leader: raft.leader(),
                is_leader: raft.is_leader(),
                applied_index: raft.applied_index(),
                shards: published.state.shard_count(),
                nodes: published.state.node_count(),
                executors: ctx.shared.metrics.len(),
                sse_subscribers: ctx
                    .shared
                    .sse_subscribers
                    .load(std::sync::atomic::Ordering::Relaxed),
            };
            let mut text = metrics::render(&ctx.shared.metrics, &gauges);
            metrics::render_probes(&mut text, &ctx.shared.probes);
            response::text(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
    }
}
