//! Request routing: method + path → handler, plus what every request shares
//! (metrics, the request timeout, 404/405 answers).

use std::rc::Rc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::cluster::MembershipRoute;
use super::response::{self, Body};
use super::server::ConnectionGuard;
use super::{health, ops, read, sse, write};
use crate::executor::ExecutorContext;
use crate::metrics::RouteClass;

/// A matched route.
enum Route<'a> {
    Read(read::ReadRoute),
    Subscribe,
    Write(write::WriteRoute<'a>),
    /// `POST /api/topology/health`: a health round now.
    Health,
    Cluster(ops::ClusterRoute),
    Probe(ops::ProbeRoute),
}

fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, StatusCode> {
    use read::ReadRoute as R;
    use write::WriteRoute as W;
    // No route has more than six segments: split into a stack array, no allocation.
    let mut parts = [""; 7];
    let mut count = 0;
    for segment in path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
    {
        if count == parts.len() {
            return Err(StatusCode::NOT_FOUND);
        }
        parts[count] = segment;
        count += 1;
    }
    let segments = &parts[..count];
    let get = method == Method::GET || method == Method::HEAD;
    let wrong_method = Err(StatusCode::METHOD_NOT_ALLOWED);
    let found = match segments {
        ["api", "topology", tail @ ..] => match (tail, method) {
            (["snapshot"], _) if get => Route::Read(R::Snapshot),
            (["shards"], _) if get => Route::Read(R::Shards),
            (["nodes"], _) if get => Route::Read(R::Nodes),
            (["version"], _) if get => Route::Read(R::Version),
            (["events"], _) if get => Route::Read(R::Events),
            (["subscribe"], _) if get => Route::Subscribe,
            (["stats"], _) if get => Route::Read(R::Stats),
            (["snapshot" | "version" | "events" | "stats" | "subscribe"], _) => {
                return wrong_method
            }
            (["nodes", id], &Method::PUT) => Route::Write(W::PutNode(id)),
            (["nodes", id], &Method::DELETE) => Route::Write(W::DeleteNode(id)),
            (["nodes"] | ["nodes", _], _) => return wrong_method,
            (["shards"], &Method::POST) => Route::Write(W::CreateShard),
            (["shards"], _) => return wrong_method,
            (["shards", id], &Method::PUT) => Route::Write(W::UpdateShard(id)),
            (["shards", id], &Method::DELETE) => Route::Write(W::DeleteShard(id)),
            (["shards", id, "split"], &Method::POST) => Route::Write(W::Split(id)),
            (["shards", id, "merge"], &Method::POST) => Route::Write(W::Merge(id)),
            (["shards", id, "migration"], &Method::POST) => Route::Write(W::StartMigration(id)),
            (["shards", id, "migration", "progress"], &Method::POST) => {
                Route::Write(W::MigrationProgress(id))
            }
            (["shards", id, "migration", "complete"], &Method::POST) => {
                Route::Write(W::CompleteMigration(id))
            }
            (
                ["shards", _]
                | ["shards", _, "split" | "merge" | "migration"]
                | ["shards", _, "migration", "progress" | "complete"],
                _,
            ) => return wrong_method,
            (["health"], &Method::POST) => Route::Health,
            (["health"], _) => return wrong_method,
            (["bootstrap"], &Method::POST) => Route::Write(W::Bootstrap),
            (["batch"], &Method::POST) => Route::Write(W::Batch),
            (["bootstrap" | "batch"], _) => return wrong_method,
            _ => return Err(StatusCode::NOT_FOUND),
        },
        ["api", "cluster", "status"] if get => Route::Cluster(ops::ClusterRoute::Status),
        ["api", "cluster", "learners"] if method == Method::POST => {
            Route::Cluster(ops::ClusterRoute::Membership(MembershipRoute::AddLearner))
        }
        ["api", "cluster", "membership"] if method == Method::POST => Route::Cluster(
            ops::ClusterRoute::Membership(MembershipRoute::ChangeMembership),
        ),
        ["api", "cluster", "status" | "learners" | "membership"] => return wrong_method,
        ["metrics"] if get => Route::Probe(ops::ProbeRoute::Metrics),
        ["healthz"] if get => Route::Probe(ops::ProbeRoute::Healthz),
        ["readyz"] if get => Route::Probe(ops::ProbeRoute::Readyz),
        ["metrics" | "healthz" | "readyz"] => return wrong_method,
        _ => return Err(StatusCode::NOT_FOUND),
    };
    Ok(found)
}

impl Route<'_> {
    /// The route without its borrow of the path, when it has none (every route but
    /// the writes, whose ids point into the path).
    fn detached(self) -> Option<Route<'static>> {
        match self {
            Route::Read(r) => Some(Route::Read(r)),
            Route::Subscribe => Some(Route::Subscribe),
            Route::Health => Some(Route::Health),
            Route::Cluster(c) => Some(Route::Cluster(c)),
            Route::Probe(p) => Some(Route::Probe(p)),
            Route::Write(_) => None,
        }
    }
}

/// Serves one request; never panics on client input, always answers.
pub async fn handle(
    req: Request<Incoming>,
    ctx: Rc<ExecutorContext>,
    connection: Rc<ConnectionGuard>,
) -> Response<Body> {
    let started = Instant::now();
    // Reads (the hot path) match on the borrowed path; only routes that keep a borrow
    // of it (writes) or report it (404/405) copy it, so the request can move on.
    let path_copy: String;
    let matched = match route(req.method(), req.uri().path()).map(Route::detached) {
        Ok(Some(found)) => Ok(found),
        _ => {
            path_copy = req.uri().path().to_string();
            route(req.method(), &path_copy)
        }
    };
    let class = match &matched {
        Ok(Route::Read(_)) => RouteClass::Read,
        Ok(Route::Subscribe) => RouteClass::Subscribe,
        Ok(Route::Write(_) | Route::Health) => RouteClass::Write,
        Ok(Route::Cluster(_)) => RouteClass::Cluster,
        Ok(Route::Probe(_)) => RouteClass::Probe,
        Err(_) => RouteClass::Other,
    };
    let timeout = ctx.shared.config.http.request_timeout;
    let plain_read = matches!(matched, Ok(Route::Read(_)) | Ok(Route::Probe(_)))
        && !req.uri().query().is_some_and(|q| q.contains("consistency"));
    let work = async {
        match matched {
            Ok(Route::Read(r)) => read::handle(r, req, &ctx).await,
            Ok(Route::Subscribe) => sse::handle(req, &ctx, connection).await,
            Ok(Route::Write(w)) => write::handle(w, req, &ctx).await,
            Ok(Route::Health) => health::handle(req, &ctx).await,
            Ok(Route::Cluster(c)) => ops::cluster(c, req, &ctx).await,
            Ok(Route::Probe(p)) => ops::probe(p, &ctx),
            Err(status) => {
                let published = ctx.published.current();
                let path = req.uri().path();
                let message = if status == StatusCode::NOT_FOUND {
                    format!("no route for {path}")
                } else {
                    format!("method {} is not allowed on {path}", req.method())
                };
                response::error(status, &message, ctx.headers_for(&published))
            }
        }
    };
    let timed_out = async {
        glommio::timer::sleep(timeout).await;
        let published = ctx.published.current();
        response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the request was not answered within {timeout:?}"),
            ctx.headers_for(&published),
        )
    };
    // Plain reads answer from memory without waiting on anything: no timer for them.
    let response = if !plain_read {
        futures_lite::future::or(work, timed_out).await
    } else {
        work.await
    };
    ctx.metrics
        .record(class, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(method: Method, path: &str) -> Result<(), StatusCode> {
        route(&method, path).map(|_| ())
    }

    #[test]
    fn known_routes_match_and_others_get_404_or_405() {
        assert!(status_of(Method::GET, "/api/topology/snapshot").is_ok());
        assert!(status_of(Method::HEAD, "/api/topology/version").is_ok());
        assert!(status_of(Method::PUT, "/api/topology/nodes/n1").is_ok());
        assert!(status_of(Method::POST, "/api/topology/shards/s1/migration/complete").is_ok());
        assert!(status_of(Method::GET, "/api/cluster/status").is_ok());
        assert!(status_of(Method::POST, "/api/topology/health").is_ok());
        assert_eq!(
            status_of(Method::GET, "/api/topology/health"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert!(status_of(Method::POST, "/api/cluster/learners").is_ok());
        assert!(status_of(Method::POST, "/api/cluster/membership").is_ok());
        assert_eq!(
            status_of(Method::GET, "/api/cluster/membership"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(status_of(Method::GET, "/nope"), Err(StatusCode::NOT_FOUND));
        assert_eq!(
            status_of(Method::GET, "/api/topology/nodes/n1/x"),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status_of(Method::POST, "/api/topology/snapshot"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status_of(Method::GET, "/api/topology/shards/s1/split"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status_of(Method::PATCH, "/api/topology/nodes/n1"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
    }
}
