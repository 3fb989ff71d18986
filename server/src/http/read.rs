//! Read routes: answered by any server from its executor's published state.
//!
//! Parameterless bodies come pre-encoded with the publication; parameterised ones
//! (one shard, one node, the delta since a version) are encoded once per version per
//! executor through the body cache, within its byte budget; a page of `/events` is
//! encoded per request. `?consistency=linearizable` first waits for a Raft read
//! index to be applied here. Nothing is answered before the state this server had
//! durably is applied again (`Readiness::admit`: 503 "loading" until then).

use std::sync::Arc;

use concord_api::{EventsPage, OneNode, OneShard, Stats};
use concord_model::HistoryError;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::query::Query;
use super::response::{self, Body, ReadAnswer};
use crate::executor::{CacheBudget, ExecutorContext};
use crate::publish::{encode_ok, Encoded, Published};
use crate::service::Operation;

/// The read routes.
#[derive(Clone, Copy, Debug)]
pub enum ReadRoute {
    Snapshot,
    Shards,
    Nodes,
    Version,
    Events,
    Stats,
}

impl ReadRoute {
    fn allowed_params(self) -> &'static [&'static str] {
        match self {
            ReadRoute::Snapshot => &["since", "consistency"],
            ReadRoute::Shards => &["shardId", "consistency"],
            ReadRoute::Nodes => &["nodeId", "consistency"],
            ReadRoute::Version | ReadRoute::Stats => &["consistency"],
            ReadRoute::Events => &["sinceVersion", "limit", "consistency"],
        }
    }
}

/// Largest `limit` accepted on `/events`.
pub const MAX_EVENTS_LIMIT: u64 = 1000;
const DEFAULT_EVENTS_LIMIT: u64 = 100;

/// A 4xx/5xx answer with the published version in its headers.
fn fail(ctx: &ExecutorContext, status: StatusCode, message: &str) -> Response<Body> {
    let published = ctx.published.current();
    response::error(status, message, ctx.headers_for(&published))
}

pub async fn handle(
    route: ReadRoute,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Response<Body> {
    if let Err(loading) = ctx.shared.readiness.admit(&ctx.published.current()) {
        return response::failure(&loading, ctx.current_headers());
    }
    let query = match Query::parse(req.uri().query(), route.allowed_params()) {
        Ok(q) => q,
        Err(message) => return fail(ctx, StatusCode::BAD_REQUEST, &message),
    };
    match query.linearizable() {
        Err(message) => return fail(ctx, StatusCode::BAD_REQUEST, &message),
        Ok(true) => {
            if let Err(answer) = wait_linearizable(ctx).await {
                return answer;
            }
        }
        Ok(false) => {}
    }
    let published = ctx.published.current();
    let answer = ReadAnswer {
        topo: ctx.headers_for(&published),
        request_headers: req.headers(),
        cache_control: &ctx.shared.cache_control,
        allow_gzip: ctx.shared.config.topology.cache.compression,
    };
    let result = match route {
        ReadRoute::Snapshot => snapshot(&query, &published, ctx, &answer),
        ReadRoute::Shards => one_or_all(&query, "shardId", &published, ctx, &answer),
        ReadRoute::Nodes => one_or_all(&query, "nodeId", &published, ctx, &answer),
        ReadRoute::Version => Ok(response::read_ok(&answer, &published.version_body)),
        ReadRoute::Events => events(&query, &published, &answer),
        ReadRoute::Stats => Ok(stats(&published, ctx, &answer)),
    };
    result.unwrap_or_else(|(status, message)| fail(ctx, status, &message))
}

type ReadResult = Result<Response<Body>, (StatusCode, String)>;

/// Confirms leadership through Raft and waits until this executor has applied the read index.
pub(super) async fn wait_linearizable(ctx: &ExecutorContext) -> Result<(), Response<Body>> {
    #[cfg(debug_assertions)]
    if crate::debug_break::is(crate::debug_break::Break::StaleLinearizableReads) {
        return Ok(());
    }
    let timeout = ctx.shared.config.http.write_timeout;
    let outcome = ctx.shared.service.call(Operation::ReadIndex).await;
    let index = outcome
        .and_then(|o| o.read_index())
        .map_err(|e| response::failure(&e, ctx.current_headers()))?;
    if ctx
        .published
        .wait_until(|p| p.applied_index >= index, timeout)
        .await
    {
        Ok(())
    } else {
        Err(fail(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("read index {index} was not applied here within {timeout:?}"),
        ))
    }
}

fn cached(
    ctx: &ExecutorContext,
    published: &Published,
    key: String,
    encode: impl FnOnce() -> Vec<u8>,
) -> std::rc::Rc<Encoded> {
    let cache = &ctx.shared.config.topology.cache;
    let budget = CacheBudget {
        entries: cache.max_entries,
        bytes: cache.max_bytes,
    };
    ctx.cache
        .borrow_mut()
        .get_or_encode(published.version, key, budget, encode)
}

fn snapshot(
    query: &Query,
    published: &Arc<Published>,
    ctx: &ExecutorContext,
    answer: &ReadAnswer<'_>,
) -> ReadResult {
    let Some(since) = query.u64("since").map_err(bad_request)? else {
        return Ok(response::read_ok(answer, published.snapshot_body()));
    };
    if since > published.version {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "since={since} is ahead of this server's version {}; retry or ask another server",
                published.version
            ),
        ));
    }
    // Every event after `since` is needed; the history is bounded, so is this.
    match published.state.history().since(since, usize::MAX) {
        Ok(events) => {
            let body = cached(ctx, published, format!("delta/{since}"), || {
                encode_ok(
                    published.version,
                    EventsPage {
                        since_version: since,
                        events: &events,
                        has_more: false,
                    },
                )
            });
            Ok(response::read_ok(answer, &body))
        }
        // Older than the history: the whole map is the only correct answer.
        Err(HistoryError::Compacted { .. }) => {
            Ok(response::read_ok(answer, published.snapshot_body()))
        }
    }
}

fn one_or_all(
    query: &Query,
    param: &'static str,
    published: &Arc<Published>,
    ctx: &ExecutorContext,
    answer: &ReadAnswer<'_>,
) -> ReadResult {
    let shards = param == "shardId";
    let Some(id) = query.text(param) else {
        let all = if shards {
            published.shards_body()
        } else {
            published.nodes_body()
        };
        return Ok(response::read_ok(answer, all));
    };
    let state = &published.state;
    let found = if shards {
        state.shard(id).map(|s| {
            cached(ctx, published, format!("shard/{id}"), || {
                encode_ok(published.version, OneShard { shard: s })
            })
        })
    } else {
        state.node(id).map(|n| {
            cached(ctx, published, format!("node/{id}"), || {
                encode_ok(published.version, OneNode { node: n })
            })
        })
    };
    match found {
        Some(body) => Ok(response::read_ok(answer, &body)),
        None => Err((
            StatusCode::NOT_FOUND,
            format!(
                "{} `{id}` does not exist at version {}",
                if shards { "shard" } else { "node" },
                published.version
            ),
        )),
    }
}

fn bad_request(message: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message)
}

fn events(query: &Query, published: &Arc<Published>, answer: &ReadAnswer<'_>) -> ReadResult {
    let since = query.u64("sinceVersion").map_err(bad_request)?.unwrap_or(0);
    let limit = query
        .u64("limit")
        .map_err(bad_request)?
        .unwrap_or(DEFAULT_EVENTS_LIMIT);
    if limit == 0 || limit > MAX_EVENTS_LIMIT {
        return Err(bad_request(format!(
            "query parameter `limit` must be between 1 and {MAX_EVENTS_LIMIT}, got {limit}"
        )));
    }
    if since > published.version {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "sinceVersion={since} is ahead of this server's version {}; retry or ask another server",
                published.version
            ),
        ));
    }
    let history = published.state.history();
    // `since` returns whole change sets only (never splits a version), so its answer
    // is shown as it is; more remain when it stops short of the latest version.
    let shown = history.since(since, limit as usize).map_err(|e| match e {
        HistoryError::Compacted { oldest_available } => (
            StatusCode::GONE,
            format!(
                "events after version {since} are no longer held; the oldest available version is {oldest_available}: fetch the snapshot"
            ),
        ),
    })?;
    let has_more = shown.last().map_or(since < history.latest_version(), |e| {
        e.version < history.latest_version()
    });
    // Not cached: a page of the history is one client's walk through it, and every
    // (since, limit) pair would be an entry of its own.
    let body = Encoded::new(encode_ok(
        published.version,
        EventsPage {
            since_version: since,
            events: &shown,
            has_more,
        },
    ));
    Ok(response::read_ok(answer, &body))
}

fn stats(
    published: &Arc<Published>,
    ctx: &ExecutorContext,
    answer: &ReadAnswer<'_>,
) -> Response<Body> {
    let state = &published.state;
    let mut shards_by_status = std::collections::BTreeMap::new();
    for shard in state.shards() {
        *shards_by_status
            .entry(shard.status.as_str().to_string())
            .or_insert(0) += 1;
    }
    let mut nodes_by_health = std::collections::BTreeMap::new();
    for node in state.nodes() {
        *nodes_by_health
            .entry(node.health.as_str().to_string())
            .or_insert(0) += 1;
    }
    let raft = &ctx.shared.raft;
    // Raft fields change without a new version, so stats are encoded per request.
    let body = Encoded::new(encode_ok(
        published.version,
        Stats {
            shards: state.shard_count(),
            nodes: state.node_count(),
            shards_by_status,
            nodes_by_health,
            history_oldest_version: state.history().oldest_version(),
            config_hash: state.config_hash().to_string(),
            raft_term: raft.term(),
            raft_leader: raft.leader(),
            is_leader: raft.is_leader(),
            applied_index: published.applied_index,
            executors: ctx.shared.metrics.len(),
            health_monitor: ctx.shared.probes.summary(),
        },
    ));
    let mut response = response::read_ok(answer, &body);
    // Not cacheable by version: the Raft part moves on its own.
    response.headers_mut().remove(http::header::ETAG);
    response
}
