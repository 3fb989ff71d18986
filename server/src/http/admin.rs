//! Administrative routes: cluster status, the backup snapshot
//! (`/api/admin/snapshot`), Prometheus metrics (`/metrics`), liveness (`/healthz`)
//! and readiness (`/readyz`).

use concord_api::ClusterAnswer;
use http::{Response, StatusCode};

use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::metrics::{self, Gauges, RefusedTotals};
use crate::service::Operation;

#[derive(Clone, Copy, Debug)]
pub enum AdminRoute {
    ClusterStatus,
    /// `GET /api/admin/snapshot`: a backup file (`concord_api::backup`).
    Snapshot,
    Metrics,
    Healthz,
    Readyz,
}

/// `GET /api/cluster/status`: Raft's view of the cluster.
pub async fn cluster_status(ctx: &ExecutorContext) -> Response<Body> {
    let published = ctx.published.current();
    let topo = ctx.headers_for(&published);
    match ctx
        .shared
        .service
        .call(Operation::Status)
        .await
        .and_then(|o| o.cluster())
    {
        Ok(cluster) => {
            let body = crate::publish::encode_ok(published.version, ClusterAnswer { cluster });
            response::json(StatusCode::OK, body, topo)
        }
        Err(e) => response::failure(&e, topo),
    }
}

/// `GET /api/admin/snapshot`: the applied state at a linearizable read point (a
/// Raft read index applied here), as a backup file. Encoded per request: backups
/// are rare, and the state at 16k shards encodes in milliseconds.
pub async fn snapshot(ctx: &ExecutorContext) -> Response<Body> {
    if let Err(loading) = ctx.shared.readiness.admit(&ctx.published.current()) {
        return response::failure(&loading, ctx.current_headers());
    }
    if let Err(answer) = super::read::wait_linearizable(ctx).await {
        return answer;
    }
    let published = ctx.published.current();
    let file = concord_api::backup::encode(&published.state);
    let mut answer = response::json(StatusCode::OK, file, ctx.headers_for(&published));
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(concord_api::backup::CONTENT_TYPE),
    );
    answer
}

pub async fn handle(route: AdminRoute, ctx: &ExecutorContext) -> Response<Body> {
    match route {
        AdminRoute::ClusterStatus => cluster_status(ctx).await,
        AdminRoute::Snapshot => snapshot(ctx).await,
        AdminRoute::Healthz => response::text(StatusCode::OK, "text/plain", "ok\n".into()),
        AdminRoute::Readyz => {
            let published = ctx.published.current();
            let leader_known = ctx.shared.raft.leader() != 0;
            match ctx.shared.readiness.not_ready(&published, leader_known) {
                None => response::text(StatusCode::OK, "text/plain", "ready\n".into()),
                Some(why) => response::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {why}\n"),
                ),
            }
        }
        AdminRoute::Metrics => {
            let published = ctx.published.current();
            let raft = &ctx.shared.raft;
            let (control_late_ticks, control_late_max_ms) = raft.tick_lateness();
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
                control_late_ticks,
                control_late_max_ms,
                followers_log_lost: raft.lost_logs(),
            };
            let mut text = metrics::render(&ctx.shared.metrics, &gauges);
            metrics::render_probes(&mut text, &ctx.shared.probes);
            let shared = &ctx.shared;
            let counted_elsewhere = RefusedTotals {
                client_connections: shared.connections.refused(),
                peer_connections: shared.peer_connections.refused(),
                operations: shared.service.refused(),
            };
            metrics::render_refusals(&mut text, counted_elsewhere, &shared.refusals);
            metrics::render_reloads(&mut text, shared.credentials.reload_counts());
            response::text(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
    }
}
