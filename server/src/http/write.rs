//! Write routes: authenticate, parse and validate the body, turn it into one
//! [`Command`] (one change set, one version), and commit it through Raft.
//!
//! Bodies are parsed with simd-json through serde; unknown fields, wrong types and
//! malformed JSON are 400 with the offending field's path. Validation of meaning
//! (ranges, node references, migration order) belongs to the state machine, which
//! applies a change set whole or not at all.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use concord_model::{
    ApplyErrorKind, Command, HashPoint, KeyRange, NodeSpec, Operation, ShardStatus,
};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::query::Query;
use super::response::{self, Body};
use crate::control::WriteError;
use crate::executor::ExecutorContext;

/// The write routes of design §4; path ids borrowed from the request path.
#[derive(Clone, Copy, Debug)]
pub enum WriteRoute<'a> {
    PutNode(&'a str),
    DeleteNode(&'a str),
    CreateShard,
    UpdateShard(&'a str),
    DeleteShard(&'a str),
    Split(&'a str),
    Merge(&'a str),
    StartMigration(&'a str),
    MigrationProgress(&'a str),
    CompleteMigration(&'a str),
    Bootstrap,
    Batch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PutNodeBody {
    address: String,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateShardBody {
    shard_id: String,
    key_range: KeyRange,
    primary_node: String,
    #[serde(default)]
    replica_nodes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateShardBody {
    primary_node: Option<String>,
    replica_nodes: Option<Vec<String>>,
    status: Option<ShardStatus>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SplitBody {
    at: Option<HashPoint>,
    new_shard_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    with: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationBody {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressBody {
    percent: u8,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BootstrapBody {
    nodes: Vec<NodeSpec>,
    shard_count: u32,
    replication_factor: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    operations: Vec<Operation>,
}

#[derive(Serialize)]
struct WriteAnswer<'a> {
    success: bool,
    message: &'a str,
    version: u64,
}

/// Parses a JSON body with simd-json; errors name the field path.
pub(super) fn parse<T: DeserializeOwned>(body: &mut [u8]) -> Result<T, String> {
    let mut de = simd_json::Deserializer::from_slice(body)
        .map_err(|e| format!("malformed JSON body: {e}"))?;
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid body: {}", e.inner())
        } else {
            format!("invalid body: field `{path}`: {}", e.inner())
        }
    })
}

/// Like [`parse`], but an empty body means `T::default()`.
fn parse_optional<T: DeserializeOwned + Default>(body: &mut [u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

pub(crate) fn required(body: &mut [u8]) -> Result<&mut [u8], String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Err("the request body is empty; a JSON object is required".into())
    } else {
        Ok(body)
    }
}

/// The operations of one route's body.
fn operations(route: WriteRoute<'_>, body: &mut [u8]) -> Result<Vec<Operation>, String> {
    let id = |s: &str| s.to_string();
    let op = match route {
        WriteRoute::PutNode(node_id) => {
            let b: PutNodeBody = parse(required(body)?)?;
            Operation::RegisterNode {
                node_id: id(node_id),
                address: b.address,
                labels: b.labels,
            }
        }
        WriteRoute::DeleteNode(node_id) => {
            parse_optional::<EmptyBody>(body)?;
            Operation::RemoveNode {
                node_id: id(node_id),
            }
        }
        WriteRoute::CreateShard => {
            let b: CreateShardBody = parse(required(body)?)?;
            Operation::CreateShard {
                shard_id: b.shard_id,
                key_range: b.key_range,
                primary_node: b.primary_node,
                replica_nodes: b.replica_nodes,
            }
        }
        WriteRoute::UpdateShard(shard_id) => {
            let b: UpdateShardBody = parse(required(body)?)?;
            Operation::UpdateShard {
                shard_id: id(shard_id),
                primary_node: b.primary_node,
                replica_nodes: b.replica_nodes,
                status: b.status,
            }
        }
        WriteRoute::DeleteShard(shard_id) => {
            parse_optional::<EmptyBody>(body)?;
            Operation::RemoveShard {
                shard_id: id(shard_id),
            }
        }
        WriteRoute::Split(shard_id) => {
            let b: SplitBody = parse_optional(body)?;
            Operation::SplitShard {
                shard_id: id(shard_id),
                at: b.at,
                new_shard_id: b.new_shard_id,
            }
        }
        WriteRoute::Merge(shard_id) => {
            let b: MergeBody = parse(required(body)?)?;
            Operation::MergeShards {
                shard_id: id(shard_id),
                with: b.with,
            }
        }
        WriteRoute::StartMigration(shard_id) => {
            let b: MigrationBody = parse(required(body)?)?;
            Operation::StartMigration {
                shard_id: id(shard_id),
                from: b.from,
                to: b.to,
            }
        }
        WriteRoute::MigrationProgress(shard_id) => {
            let b: ProgressBody = parse(required(body)?)?;
            Operation::MigrationProgress {
                shard_id: id(shard_id),
                percent: b.percent,
            }
        }
        WriteRoute::CompleteMigration(shard_id) => {
            parse_optional::<EmptyBody>(body)?;
            Operation::CompleteMigration {
                shard_id: id(shard_id),
            }
        }
        WriteRoute::Bootstrap => {
            let b: BootstrapBody = parse(required(body)?)?;
            Operation::Bootstrap {
                nodes: b.nodes,
                shard_count: b.shard_count,
                replication_factor: b.replication_factor,
            }
        }
        WriteRoute::Batch => {
            let b: BatchBody = parse(required(body)?)?;
            return Ok(b.operations);
        }
    };
    Ok(vec![op])
}

/// `If-Match: "<version>"` (or a bare number) → the compare-and-set version.
fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| "If-Match must be ASCII".to_string())?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_matches('"')
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("If-Match must be a topology version such as \"42\", got `{text}`"))
}

/// The 401 to answer when the request lacks the configured token; `None` when it
/// may proceed. `what` starts the message, e.g. "writes need an".
pub fn unauthorized(
    headers: &HeaderMap,
    ctx: &ExecutorContext,
    topo: response::TopologyHeaders,
    what: &str,
) -> Option<Response<Body>> {
    if authorized(headers, ctx.shared.config.auth_token.as_deref()) {
        return None;
    }
    let mut answer = response::error(
        StatusCode::UNAUTHORIZED,
        &format!("{what} `Authorization: Bearer <token>` header with the configured token"),
        topo,
    );
    answer
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(answer)
}

/// True when no token is configured, or the request carries `Bearer <token>`.
pub(crate) fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison: the token is a secret.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(super) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds the limit of {limit} bytes"),
        )),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {e}"),
        )),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn handle(
    route: WriteRoute<'_>,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
) -> Response<Body> {
    let published = ctx.published.current();
    let topo = ctx.headers_for(&published);
    let fail = |status: StatusCode, message: &str| response::error(status, message, topo);

    if let Some(answer) = unauthorized(req.headers(), ctx, topo, "writes need an") {
        return answer;
    }
    if let Err(message) = Query::parse(req.uri().query(), &[]) {
        return fail(StatusCode::BAD_REQUEST, &message);
    }
    let expected_version = match expected_version(req.headers()) {
        Ok(v) => v,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let mut body = match read_body(req, ctx.shared.config.http.max_body_bytes).await {
        Ok(body) => body.to_vec(),
        Err((status, message)) => return fail(status, &message),
    };
    let ops = match operations(route, &mut body) {
        Ok(ops) => ops,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let command = Command {
        timestamp_ms: now_ms(),
        expected_version,
        ops,
    };
    commit(command, ctx).await
}

/// Commits `command` and answers with the new version, or the reason it was refused.
pub async fn commit(command: Command, ctx: &ExecutorContext) -> Response<Body> {
    let timeout = ctx.shared.config.http.write_timeout;
    let outcome = futures_lite::future::or(ctx.shared.control.write(command), async {
        glommio::timer::sleep(timeout).await;
        Err(WriteError::Timeout(timeout))
    })
    .await;
    let published = ctx.published.current();
    let topo = ctx.headers_for(&published);
    match outcome {
        Ok(ok) => {
            // Read-your-writes on this server: wait (briefly) until this executor serves it.
            let version = ok.version;
            ctx.published
                .wait_until(|p| p.version >= version, timeout)
                .await;
            let published = ctx.published.current();
            let body = serde_json::to_vec(&WriteAnswer {
                success: true,
                message: "applied",
                version,
            })
            .expect("write answers serialize");
            let mut topo = ctx.headers_for(&published);
            topo.version = topo.version.max(version);
            response::json(StatusCode::OK, body, topo)
        }
        Err(WriteError::Rejected(e)) => {
            let status = match e.kind() {
                ApplyErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                ApplyErrorKind::NotFound => StatusCode::NOT_FOUND,
                ApplyErrorKind::Conflict | ApplyErrorKind::PreconditionFailed => {
                    StatusCode::CONFLICT
                }
            };
            response::error(status, &e.to_string(), topo)
        }
        Err(e @ (WriteError::NoLeader | WriteError::ForwardTo { .. })) => {
            let mut answer = response::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), topo);
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            answer
        }
        Err(e @ (WriteError::Timeout(_) | WriteError::Unavailable(_))) => {
            response::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), topo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(expected_version(&h), Ok(None));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"12\""));
        assert_eq!(expected_version(&h), Ok(Some(12)));
        h.insert(header::IF_MATCH, HeaderValue::from_static("12"));
        assert_eq!(expected_version(&h), Ok(Some(12)));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(expected_version(&h), Ok(None));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"v1\""));
        assert!(expected_version(&h).unwrap_err().contains("If-Match"));
    }

    #[test]
    fn bearer_token_checks() {
        let mut h = HeaderMap::new();
        assert!(authorized(&h, None));
        assert!(!authorized(&h, Some("s3cret")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&h, Some("s3cret")));
        assert!(!authorized(&h, Some("s3cret2")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&h, Some("s3cret")));
    }

    #[test]
    fn bodies_name_the_bad_field() {
        let err =
            operations(WriteRoute::PutNode("n1"), &mut br#"{"address":7}"#.to_vec()).unwrap_err();
        assert!(err.contains("address"), "{err}");
        let err = operations(
            WriteRoute::PutNode("n1"),
            &mut br#"{"address":"a:1","colour":"red"}"#.to_vec(),
        )
        .unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = operations(WriteRoute::Merge("s1"), &mut b"{not json".to_vec()).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let err = operations(WriteRoute::Merge("s1"), &mut Vec::new()).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = operations(
            WriteRoute::MigrationProgress("s1"),
            &mut br#"{"percent":300}"#.to_vec(),
        )
        .unwrap_err();
        assert!(err.contains("percent"), "{err}");
        assert!(operations(WriteRoute::Split("s1"), &mut Vec::new()).is_ok());
        assert!(operations(WriteRoute::DeleteNode("n1"), &mut b"{\"x\":1}".to_vec()).is_err());
    }
}
