//! Write routes: parse and validate the body, turn it into one
//! [`Command`] (one change set, one version), and commit it through Raft.
//!
//! Bodies are parsed with simd-json through serde; unknown fields, wrong types and
//! malformed JSON are 400 with the offending field's path. Validation of meaning
//! (ranges, node references, migration order) belongs to the state machine, which
//! applies a change set whole or not at all.

use concord_api::{
    BatchBody, BootstrapBody, CreateShardBody, EmptyBody, MergeBody, MigrationBody, NoPayload,
    ProgressBody, PutNodeBody, SplitBody, UpdateShardBody,
};
use concord_model::{Command, Operation};
use http::{header, HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::extract::{self, parse, parse_optional, required};
use super::response::{self, Body};
use crate::executor::ExecutorContext;
use crate::net::bearer::{Grant, Scope};
use crate::net::now_ms;
use crate::service::{Operation as ServiceOp, ServiceError};

/// The write routes; path ids borrowed from the request path.
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

/// Serves a write; `grant` is the caller's credential (the router checked the write
/// scope; a batch that bootstraps needs the admin scope too).
pub async fn handle(
    route: WriteRoute<'_>,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
    grant: Grant,
) -> Response<Body> {
    write(route, req, ctx, grant)
        .await
        .unwrap_or_else(|refusal| refusal)
}

async fn write(
    route: WriteRoute<'_>,
    req: Request<Incoming>,
    ctx: &ExecutorContext,
    grant: Grant,
) -> Result<Response<Body>, Response<Body>> {
    let request = extract::check(req, ctx, &[])?;
    let expected_version = expected_version(request.headers())
        .map_err(|message| request.fail(StatusCode::BAD_REQUEST, &message))?;
    let topo = request.topo;
    let mut body = request.body().await?.to_vec();
    let ops = operations(route, &mut body)
        .map_err(|message| response::error(StatusCode::BAD_REQUEST, &message, topo))?;
    if ops
        .iter()
        .any(|op| matches!(op, Operation::Bootstrap { .. }))
    {
        extract::require(grant, Scope::Admin, topo)?;
    }
    let command = Command {
        timestamp_ms: now_ms(),
        expected_version,
        ops,
    };
    Ok(commit(command, ctx).await)
}

/// Commits `command` and answers with the new version, or the reason it was refused.
pub async fn commit(command: Command, ctx: &ExecutorContext) -> Response<Body> {
    let timeout = ctx.shared.config.http.write_timeout;
    let written = ctx.shared.service.call(ServiceOp::Write(command));
    let outcome = futures_lite::future::or(async { written.await?.written() }, async {
        glommio::timer::sleep(timeout).await;
        Err(ServiceError::write_timeout(timeout))
    })
    .await;
    match outcome {
        Ok(version) => {
            // Read-your-writes on this server: wait (briefly) until this executor serves it.
            ctx.published
                .wait_until(|p| p.version >= version, timeout)
                .await;
            let mut topo = ctx.current_headers();
            topo.version = topo.version.max(version);
            response::done("applied", version, NoPayload {}, topo)
        }
        Err(e) => response::failure(&e, ctx.current_headers()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Fuzz target: any request body on any write route is refused with a message or
    /// turned into operations that survive the JSON round trip a change set makes.
    /// `BOLERO_RANDOM_TEST_TIME_MS=120000` runs it longer.
    #[test]
    fn arbitrary_bodies_are_refused_or_become_operations() {
        let routes = [
            WriteRoute::PutNode("n1"),
            WriteRoute::DeleteNode("n1"),
            WriteRoute::CreateShard,
            WriteRoute::UpdateShard("s1"),
            WriteRoute::DeleteShard("s1"),
            WriteRoute::Split("s1"),
            WriteRoute::Merge("s1"),
            WriteRoute::StartMigration("s1"),
            WriteRoute::MigrationProgress("s1"),
            WriteRoute::CompleteMigration("s1"),
            WriteRoute::Bootstrap,
            WriteRoute::Batch,
        ];
        bolero::check!()
            .with_type::<Vec<u8>>()
            .for_each(|bytes: &Vec<u8>| {
                for route in routes {
                    match operations(route, &mut bytes.clone()) {
                        Ok(ops) => {
                            let json = serde_json::to_vec(&ops).expect("operations serialize");
                            let back: Vec<Operation> =
                                serde_json::from_slice(&json).expect("and parse back");
                            assert_eq!(back, ops);
                        }
                        Err(message) => assert!(!message.is_empty()),
                    }
                }
            });
    }

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
