//! Request routing: method + path → handler, plus what every request shares
//! (the credential's scope, metrics, the request timeout, 404/405 answers).
//!
//! Scopes: reads, SSE and cluster status need `read`; topology writes and health
//! rounds `write`; membership changes and bootstrap `admin`; `/healthz`, `/readyz`,
//! `/metrics` and the dashboard's static files (`/ui`) none (probes and scrapers
//! carry no token, and they reveal no topology).
//!
//! Paths are matched by `matchit` (a radix tree, matching on the borrowed path without
//! allocating); each path holds the methods it allows, so a known path asked with
//! another method is 405 and an unknown one 404. Leading and trailing slashes are
//! ignored.

use std::rc::Rc;
use std::sync::LazyLock;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::admin::{self, AdminRoute};
use super::membership::{self, MembershipRoute};
use super::read::{self, ReadRoute};
use super::response::{self, Body};
use super::write::{self, WriteRoute};
use super::{extract, health_round, sse, ui};
use crate::executor::ExecutorContext;
use crate::metrics::RouteClass;
use crate::net::bearer::Scope;
use crate::net::ConnectionGuard;

/// A matched route; write routes borrow their id from the path.
enum Route<'a> {
    Read(ReadRoute),
    Subscribe,
    Write(WriteRoute<'a>),
    /// `POST /api/topology/health`: a health round now.
    HealthRound,
    Membership(MembershipRoute),
    Admin(AdminRoute),
    /// The dashboard's asset of this index (`None`: no such file).
    Ui(Option<usize>),
}

/// What a path serves for one method; write routes are built from the path's `{id}`.
#[derive(Clone, Copy)]
enum Endpoint {
    Read(ReadRoute),
    Subscribe,
    Write(for<'a> fn(&'a str) -> WriteRoute<'a>),
    HealthRound,
    Membership(MembershipRoute),
    Admin(AdminRoute),
    Ui,
}

/// Which requests an endpoint answers: `Get` also answers HEAD.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Put,
    Post,
    Delete,
}

impl Verb {
    fn admits(self, method: &Method) -> bool {
        match self {
            Verb::Get => method == Method::GET || method == Method::HEAD,
            Verb::Put => method == Method::PUT,
            Verb::Post => method == Method::POST,
            Verb::Delete => method == Method::DELETE,
        }
    }
}

/// Every route: path (without its leading slash) → the methods it allows.
fn routes() -> Vec<(&'static str, Vec<(Verb, Endpoint)>)> {
    use Endpoint as E;
    use ReadRoute as R;
    use Verb::{Delete, Get, Post, Put};
    vec![
        ("api/topology/snapshot", vec![(Get, E::Read(R::Snapshot))]),
        (
            "api/topology/shards",
            vec![
                (Get, E::Read(R::Shards)),
                (Post, E::Write(|_| WriteRoute::CreateShard)),
            ],
        ),
        ("api/topology/nodes", vec![(Get, E::Read(R::Nodes))]),
        ("api/topology/version", vec![(Get, E::Read(R::Version))]),
        ("api/topology/events", vec![(Get, E::Read(R::Events))]),
        ("api/topology/stats", vec![(Get, E::Read(R::Stats))]),
        ("api/topology/subscribe", vec![(Get, E::Subscribe)]),
        (
            "api/topology/nodes/{id}",
            vec![
                (Put, E::Write(|id| WriteRoute::PutNode(id))),
                (Delete, E::Write(|id| WriteRoute::DeleteNode(id))),
            ],
        ),
        (
            "api/topology/shards/{id}",
            vec![
                (Put, E::Write(|id| WriteRoute::UpdateShard(id))),
                (Delete, E::Write(|id| WriteRoute::DeleteShard(id))),
            ],
        ),
        (
            "api/topology/shards/{id}/split",
            vec![(Post, E::Write(|id| WriteRoute::Split(id)))],
        ),
        (
            "api/topology/shards/{id}/merge",
            vec![(Post, E::Write(|id| WriteRoute::Merge(id)))],
        ),
        (
            "api/topology/shards/{id}/migration",
            vec![(Post, E::Write(|id| WriteRoute::StartMigration(id)))],
        ),
        (
            "api/topology/shards/{id}/migration/progress",
            vec![(Post, E::Write(|id| WriteRoute::MigrationProgress(id)))],
        ),
        (
            "api/topology/shards/{id}/migration/complete",
            vec![(Post, E::Write(|id| WriteRoute::CompleteMigration(id)))],
        ),
        ("api/topology/health", vec![(Post, E::HealthRound)]),
        (
            "api/topology/bootstrap",
            vec![(Post, E::Write(|_| WriteRoute::Bootstrap))],
        ),
        (
            "api/topology/batch",
            vec![(Post, E::Write(|_| WriteRoute::Batch))],
        ),
        (
            "api/cluster/status",
            vec![(Get, E::Admin(AdminRoute::ClusterStatus))],
        ),
        (
            "api/admin/snapshot",
            vec![(Get, E::Admin(AdminRoute::Snapshot))],
        ),
        (
            "api/cluster/learners",
            vec![(Post, E::Membership(MembershipRoute::AddLearner))],
        ),
        (
            "api/cluster/membership",
            vec![(Post, E::Membership(MembershipRoute::ChangeMembership))],
        ),
        ("metrics", vec![(Get, E::Admin(AdminRoute::Metrics))]),
        ("healthz", vec![(Get, E::Admin(AdminRoute::Healthz))]),
        ("readyz", vec![(Get, E::Admin(AdminRoute::Readyz))]),
        ("ui", vec![(Get, E::Ui)]),
        ("ui/{*file}", vec![(Get, E::Ui)]),
    ]
}

static ROUTER: LazyLock<matchit::Router<Vec<(Verb, Endpoint)>>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, methods) in routes() {
        router
            .insert(path, methods)
            .expect("route paths are distinct");
    }
    router
});

/// The route of `method` on `path`; 404 for an unknown path, 405 for a known path
/// asked with a method it does not take.
fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, StatusCode> {
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let matched = ROUTER.at(path).map_err(|_| StatusCode::NOT_FOUND)?;
    let endpoint = matched
        .value
        .iter()
        .find(|(verb, _)| verb.admits(method))
        .map(|(_, endpoint)| *endpoint)
        .ok_or(StatusCode::METHOD_NOT_ALLOWED)?;
    Ok(match endpoint {
        Endpoint::Read(r) => Route::Read(r),
        Endpoint::Subscribe => Route::Subscribe,
        Endpoint::Write(build) => Route::Write(build(matched.params.get("id").unwrap_or(""))),
        Endpoint::HealthRound => Route::HealthRound,
        Endpoint::Membership(m) => Route::Membership(m),
        Endpoint::Admin(a) => Route::Admin(a),
        Endpoint::Ui => Route::Ui(ui::asset_index(matched.params.get("file"))),
    })
}

impl Route<'_> {
    /// The route without its borrow of the path, when it has none (every route but
    /// the writes, whose ids point into the path).
    fn detached(self) -> Option<Route<'static>> {
        match self {
            Route::Read(r) => Some(Route::Read(r)),
            Route::Subscribe => Some(Route::Subscribe),
            Route::HealthRound => Some(Route::HealthRound),
            Route::Membership(m) => Some(Route::Membership(m)),
            Route::Admin(a) => Some(Route::Admin(a)),
            Route::Ui(asset) => Some(Route::Ui(asset)),
            Route::Write(_) => None,
        }
    }

    fn class(&self) -> RouteClass {
        match self {
            Route::Read(_) => RouteClass::Read,
            Route::Subscribe => RouteClass::Subscribe,
            Route::Write(_) | Route::HealthRound => RouteClass::Write,
            Route::Membership(_)
            | Route::Admin(AdminRoute::ClusterStatus | AdminRoute::Snapshot) => RouteClass::Cluster,
            Route::Admin(_) => RouteClass::Probe,
            Route::Ui(_) => RouteClass::Other,
        }
    }

    /// The scope a request needs on this route; `None`: open to anyone.
    fn scope(&self) -> Option<Scope> {
        match self {
            Route::Read(_) | Route::Subscribe | Route::Admin(AdminRoute::ClusterStatus) => {
                Some(Scope::Read)
            }
            Route::Write(WriteRoute::Bootstrap)
            | Route::Membership(_)
            | Route::Admin(AdminRoute::Snapshot) => Some(Scope::Admin),
            Route::Write(_) | Route::HealthRound => Some(Scope::Write),
            Route::Admin(AdminRoute::Metrics | AdminRoute::Healthz | AdminRoute::Readyz)
            | Route::Ui(_) => None,
        }
    }

    /// Answered from memory without waiting on anything (no request timer needed).
    fn answered_from_memory(&self) -> bool {
        matches!(
            self,
            Route::Read(_)
                | Route::Ui(_)
                | Route::Admin(AdminRoute::Metrics | AdminRoute::Healthz | AdminRoute::Readyz)
        )
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
    let class = matched.as_ref().map_or(RouteClass::Other, Route::class);
    let plain_read = matched.as_ref().is_ok_and(Route::answered_from_memory)
        && !req.uri().query().is_some_and(|q| q.contains("consistency"));
    let needed = matched.as_ref().ok().and_then(Route::scope);
    let grant = ctx
        .shared
        .credentials
        .client()
        .grant_for(req.headers(), needed);
    let refused = match needed {
        Some(needed) => extract::require(grant, needed, ctx.current_headers()).err(),
        None => None,
    };
    if let Some(refusal) = refused {
        ctx.metrics
            .record(class, refusal.status().as_u16(), started.elapsed());
        return refusal;
    }
    let work = async {
        match matched {
            Ok(Route::Read(r)) => read::handle(r, req, &ctx).await,
            Ok(Route::Subscribe) => sse::handle(req, &ctx, connection).await,
            Ok(Route::Write(w)) => write::handle(w, req, &ctx, grant).await,
            Ok(Route::HealthRound) => health_round::handle(req, &ctx).await,
            Ok(Route::Membership(m)) => membership::handle(m, req, &ctx).await,
            Ok(Route::Admin(a)) => admin::handle(a, &ctx).await,
            Ok(Route::Ui(asset)) => ui::handle(asset, req.headers(), ctx.current_headers()),
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
    // Plain reads answer from memory without waiting on anything: no timer for them.
    let response = if !plain_read {
        futures_lite::future::or(work, timed_out(&ctx)).await
    } else {
        work.await
    };
    ctx.metrics
        .record(class, response.status().as_u16(), started.elapsed());
    response
}

/// The answer of a request not answered within `http.request_timeout`, once it ran out.
async fn timed_out(ctx: &ExecutorContext) -> Response<Body> {
    let timeout = ctx.shared.config.http.request_timeout;
    glommio::timer::sleep(timeout).await;
    let published = ctx.published.current();
    response::error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the request was not answered within {timeout:?}"),
        ctx.headers_for(&published),
    )
}

/// True when `req` (a head read ahead of hyper, `net::head`) may take its socket from
/// hyper: a GET subscribe over HTTP/1.1 without a body. Anything else stays with hyper.
pub fn takes_socket(req: &Request<()>) -> bool {
    let headers = req.headers();
    req.method() == Method::GET
        && req.version() == http::Version::HTTP_11
        && matches!(route(req.method(), req.uri().path()), Ok(Route::Subscribe))
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|length| length == "0")
}

/// A subscribe taking its socket (`takes_socket`): the scope check, the metrics and
/// the request timeout of [`handle`], then `sse::accept`.
pub async fn subscribe(
    req: &Request<()>,
    ctx: &Rc<ExecutorContext>,
    connection: Rc<ConnectionGuard>,
) -> Result<sse::Accepted, Response<Body>> {
    let started = Instant::now();
    // The credentials in force now (a reload may have rotated tokens out), as in
    // `handle`; never the ones the configuration started with.
    let grant = ctx
        .shared
        .credentials
        .client()
        .grant_for(req.headers(), Some(Scope::Read));
    let decided = match extract::require(grant, Scope::Read, ctx.current_headers()) {
        Err(refusal) => Err(refusal),
        Ok(()) => {
            let accept = sse::accept(req.uri(), req.headers(), ctx, connection);
            futures_lite::future::or(accept, async { Err(timed_out(ctx).await) }).await
        }
    };
    let status = decided
        .as_ref()
        .map_or_else(|r| r.status(), |_| StatusCode::OK);
    ctx.metrics
        .record(RouteClass::Subscribe, status.as_u16(), started.elapsed());
    decided
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target: any method and path (what hyper hands over from a request line) is
    /// matched or refused with 404/405, and any query string is parsed or refused with a
    /// message; nothing panics. `BOLERO_RANDOM_TEST_TIME_MS` runs it longer.
    #[test]
    fn arbitrary_request_lines_are_routed_or_refused() {
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ];
        bolero::check!()
            .with_type::<(u8, String, String)>()
            .for_each(|(m, path, query): &(u8, String, String)| {
                let method = &methods[usize::from(*m) % methods.len()];
                for path in [path.as_str(), &format!("/api/topology/{path}")] {
                    if let Err(status) = route(method, path) {
                        assert!(
                            status == StatusCode::NOT_FOUND
                                || status == StatusCode::METHOD_NOT_ALLOWED,
                            "{status}"
                        );
                    }
                }
                let allowed = ["shardId", "nodeId", "sinceVersion", "limit", "consistency"];
                if let Err(message) = super::super::query::Query::parse(Some(query), &allowed) {
                    assert!(!message.is_empty());
                }
            });
    }

    fn status_of(method: Method, path: &str) -> Result<(), StatusCode> {
        route(&method, path).map(|_| ())
    }

    #[test]
    fn every_route_needs_its_scope_and_only_probes_are_open() {
        use Method as M;
        let (read, write, admin) = (Some(Scope::Read), Some(Scope::Write), Some(Scope::Admin));
        let cases = [
            (M::GET, "/api/topology/snapshot", read),
            (M::GET, "/api/topology/subscribe", read),
            (M::GET, "/api/cluster/status", read),
            (M::PUT, "/api/topology/nodes/n1", write),
            (M::POST, "/api/topology/batch", write),
            (M::POST, "/api/topology/health", write),
            (M::POST, "/api/topology/bootstrap", admin),
            (M::POST, "/api/cluster/learners", admin),
            (M::POST, "/api/cluster/membership", admin),
            (M::GET, "/api/admin/snapshot", admin),
            (M::GET, "/healthz", None),
            (M::GET, "/readyz", None),
            (M::GET, "/metrics", None),
            (M::GET, "/ui", None),
            (M::GET, "/ui/app.js", None),
        ];
        for (method, path, needed) in cases {
            let found = route(&method, path).map(|r| r.scope());
            assert_eq!(found, Ok(needed), "{method} {path}");
        }
    }

    #[test]
    fn known_routes_match_and_others_get_404_or_405() {
        assert!(status_of(Method::GET, "/api/topology/snapshot/").is_ok());
        assert!(matches!(
            route(&Method::PUT, "/api/topology/nodes/n1"),
            Ok(Route::Write(WriteRoute::PutNode("n1")))
        ));
        assert!(matches!(
            route(&Method::POST, "/api/topology/shards/s1/migration/progress"),
            Ok(Route::Write(WriteRoute::MigrationProgress("s1")))
        ));
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
        assert!(matches!(
            route(&Method::GET, "/ui/"),
            Ok(Route::Ui(Some(0)))
        ));
        assert!(matches!(
            route(&Method::GET, "/ui/x.js"),
            Ok(Route::Ui(None))
        ));
        assert_eq!(
            status_of(Method::POST, "/ui"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
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
