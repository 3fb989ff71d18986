//! Topology reads and writes: one request (or two, for `status`) per command, the
//! answer shown as a table or as the server's JSON.

use std::collections::BTreeMap;

use concord_api::{
    BatchBody, BootstrapBody, ClusterAnswer, EmptyBody, EventsPage, HealthRoundResults, MergeBody,
    MigrationBody, NoPayload, NodeList, NodeSpec, OneNode, OneShard, ProgressBody, PutNodeBody,
    ShardList, SplitBody, UpdateShardBody, VersionInfo,
};
use concord_model::{check_id, HashPoint};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::answer::{call, Answer};
use crate::cli::{Cli, Command, HealthCommand, NodeCommand, Output, ShardCommand, SnapshotCommand};
use crate::error::{CtlError, Result};
use crate::render::{self, emit, or_dash};
use crate::transport::{Request, Transport};

pub fn run(cli: &Cli, t: &Transport) -> Result<()> {
    let out = cli.output;
    match &cli.command {
        Command::Status => status(t, out),
        Command::Shards { id: None } => {
            show(t, out, "/api/topology/shards".into(), |a: &ShardList| {
                render::shards(&a.shards)
            })
        }
        Command::Shards { id: Some(id) } => {
            let target = format!("/api/topology/shards?shardId={}", valid(id)?);
            show(t, out, target, |a: &OneShard| {
                render::shards(std::slice::from_ref(&a.shard))
            })
        }
        Command::Nodes { id: None } => {
            show(t, out, "/api/topology/nodes".into(), |a: &NodeList| {
                render::nodes(&a.nodes)
            })
        }
        Command::Nodes { id: Some(id) } => {
            let target = format!("/api/topology/nodes?nodeId={}", valid(id)?);
            show(t, out, target, |a: &OneNode| {
                render::nodes(std::slice::from_ref(&a.node))
            })
        }
        Command::Node(cmd) => node(cli, t, cmd),
        Command::Shard(cmd) => shard(cli, t, cmd),
        Command::Bootstrap {
            nodes,
            shards,
            replication,
        } => {
            let nodes = nodes
                .iter()
                .map(|spec| match spec.split_once('=') {
                    Some((id, address)) => Ok(NodeSpec {
                        node_id: id.trim().to_string(),
                        address: address.trim().to_string(),
                    }),
                    None => Err(CtlError::Usage(format!(
                        "--nodes {spec:?}: expected id=address"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            let body = BootstrapBody {
                nodes,
                shard_count: *shards,
                replication_factor: *replication,
            };
            write(
                cli,
                t,
                Request::write("POST", "/api/topology/bootstrap", &body),
            )
        }
        Command::Batch { file } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
            let body: BatchBody = serde_json::from_str(&text).map_err(|e| {
                CtlError::Usage(format!(
                    "{}: not a batch ({{\"operations\": [...]}}): {e}",
                    file.display()
                ))
            })?;
            write(cli, t, Request::write("POST", "/api/topology/batch", &body))
        }
        Command::Members(cmd) => crate::members::run(cli, t, cmd),
        Command::Snapshot(SnapshotCommand::Save { file }) => crate::backup::save(t, out, file),
        Command::Snapshot(SnapshotCommand::Inspect { file }) => crate::backup::inspect(out, file),
        Command::Watch(args) => crate::watch::run(t, args, out),
        Command::Health(HealthCommand::Run { node }) => health_round(cli, t, node.as_deref()),
        Command::Events { since, limit } => {
            let mut target = format!("/api/topology/events?sinceVersion={since}");
            if let Some(limit) = limit {
                target.push_str(&format!("&limit={limit}"));
            }
            let a: Answer<EventsPage> = call(t, &Request::get(target))?;
            emit(out, &a.json, || {
                for event in &a.envelope.payload.events {
                    println!("{}", crate::watch::event_line(event));
                }
                if a.envelope.payload.has_more {
                    println!(
                        "(more events follow; ask again with --since {})",
                        last_version(&a)
                    );
                }
            });
            Ok(())
        }
    }
}

/// A read: `-o json` prints the answer, else `table` renders its payload.
fn show<T: DeserializeOwned>(
    t: &Transport,
    out: Output,
    target: String,
    table: impl FnOnce(&T),
) -> Result<()> {
    let a: Answer<T> = call(t, &Request::get(target))?;
    emit(out, &a.json, || table(&a.envelope.payload));
    Ok(())
}

fn last_version(a: &Answer<EventsPage>) -> u64 {
    a.envelope
        .payload
        .events
        .last()
        .map_or(a.envelope.payload.since_version, |e| e.version)
}

/// An id checked against the service's rules, so it can go into a URL as is.
fn valid(id: &str) -> Result<&str> {
    check_id(id).map_err(|why| CtlError::Usage(format!("id {id:?} {why}")))?;
    Ok(id)
}

fn status(t: &Transport, out: Output) -> Result<()> {
    let cluster: Answer<ClusterAnswer> = call(t, &Request::get("/api/cluster/status"))?;
    let version: Answer<VersionInfo<'static>> = call(t, &Request::get("/api/topology/version"))?;
    let combined = json!({
        "cluster": cluster.json["cluster"],
        "version": version.envelope.version,
        "configHash": version.envelope.payload.config_hash,
    });
    emit(out, &combined, || {
        render::cluster(
            &cluster.envelope.payload.cluster,
            version.envelope.version,
            &version.envelope.payload.config_hash,
        )
    });
    Ok(())
}

fn node(cli: &Cli, t: &Transport, cmd: &NodeCommand) -> Result<()> {
    match cmd {
        NodeCommand::Put {
            id,
            address,
            labels,
        } => {
            let labels = labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => Err(CtlError::Usage(format!(
                        "--label {l:?}: expected key=value"
                    ))),
                })
                .collect::<Result<BTreeMap<_, _>>>()?;
            let body = PutNodeBody {
                address: address.clone(),
                labels: (!labels.is_empty()).then_some(labels),
            };
            let target = format!("/api/topology/nodes/{}", valid(id)?);
            write(cli, t, Request::write("PUT", target, &body))
        }
        NodeCommand::Remove { id } => {
            let target = format!("/api/topology/nodes/{}", valid(id)?);
            write(cli, t, Request::write("DELETE", target, &EmptyBody {}))
        }
    }
}

fn shard(cli: &Cli, t: &Transport, cmd: &ShardCommand) -> Result<()> {
    let path = |id: &str, action: &str| -> Result<String> {
        Ok(format!("/api/topology/shards/{}{action}", valid(id)?))
    };
    let req = match cmd {
        ShardCommand::Split { id, at, new_id } => {
            let at = at
                .as_deref()
                .map(HashPoint::parse_hex)
                .transpose()
                .map_err(|e| CtlError::Usage(format!("--at: {e}")))?;
            let body = SplitBody {
                at,
                new_shard_id: new_id.clone(),
            };
            Request::write("POST", path(id, "/split")?, &body)
        }
        ShardCommand::Merge { id, with } => {
            let body = MergeBody { with: with.clone() };
            Request::write("POST", path(id, "/merge")?, &body)
        }
        ShardCommand::Move {
            id,
            primary,
            replicas,
        } => {
            let body = UpdateShardBody {
                primary_node: Some(primary.clone()),
                replica_nodes: replicas.clone(),
                status: None,
            };
            Request::write("PUT", path(id, "")?, &body)
        }
        ShardCommand::Migrate { id, from, to } => {
            let body = MigrationBody {
                from: from.clone(),
                to: to.clone(),
            };
            Request::write("POST", path(id, "/migration")?, &body)
        }
        ShardCommand::Progress { id, percent } => {
            let body = ProgressBody { percent: *percent };
            Request::write("POST", path(id, "/migration/progress")?, &body)
        }
        ShardCommand::Complete { id } => {
            Request::write("POST", path(id, "/migration/complete")?, &EmptyBody {})
        }
    };
    write(cli, t, req)
}

/// Sends a topology write (with `--if-match`) and reports the version it committed.
fn write(cli: &Cli, t: &Transport, mut req: Request) -> Result<()> {
    req.if_match = cli.if_match;
    let a: Answer<NoPayload> = call(t, &req)?;
    emit(cli.output, &a.json, || {
        println!("{}: version {}", a.envelope.message, a.envelope.version)
    });
    Ok(())
}

fn health_round(cli: &Cli, t: &Transport, node: Option<&str>) -> Result<()> {
    let mut target = "/api/topology/health".to_string();
    if let Some(node) = node {
        target.push_str(&format!("?nodeId={}", valid(node)?));
    }
    let a: Answer<HealthRoundResults> = call(t, &Request::write("POST", target, &EmptyBody {}))?;
    emit(cli.output, &a.json, || {
        println!("{}: version {}", a.envelope.message, a.envelope.version);
        render::table(
            &[
                "NODE", "PROBE", "PASSED", "HEALTH", "WAS", "FAILURES", "ERROR",
            ],
            a.envelope.payload.results.iter().map(|r| {
                vec![
                    r.node_id.clone(),
                    r.probe.clone(),
                    r.passed.to_string(),
                    r.health.to_string(),
                    r.previous_health.to_string(),
                    r.failure_count.to_string(),
                    or_dash(r.error.clone()),
                ]
            }),
        );
    });
    Ok(())
}
