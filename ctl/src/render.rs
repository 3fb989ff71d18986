//! Output: the server's JSON answer as is (`-o json`) or aligned human tables.

use std::io::Write as _;

use concord_api::{ClusterStatus, NodeStatus, ShardInfo};
use serde_json::Value;
use tabwriter::TabWriter;

use crate::cli::Output;

/// Prints `json` for `-o json`, else runs `table` (which prints the human form).
pub fn emit(output: Output, json: &Value, table: impl FnOnce()) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(json).expect("JSON values print")
        ),
        Output::Table => table(),
    }
}

/// Prints rows under a header with columns aligned; cells must hold no tab.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let mut tw = TabWriter::new(Vec::new()).padding(2);
    let _ = writeln!(tw, "{}", header.join("\t"));
    for row in rows {
        let _ = writeln!(tw, "{}", row.join("\t"));
    }
    let out = tw.into_inner().unwrap_or_default();
    print!("{}", String::from_utf8_lossy(&out));
}

/// `key: value` lines, aligned.
pub fn fields(pairs: &[(&str, String)]) {
    table(
        &["FIELD", "VALUE"],
        pairs.iter().map(|(k, v)| vec![k.to_string(), v.clone()]),
    );
}

pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn shards(list: &[ShardInfo]) {
    table(
        &[
            "SHARD",
            "RANGE",
            "PRIMARY",
            "REPLICAS",
            "STATUS",
            "EPOCH",
            "MIGRATION",
        ],
        list.iter().map(|s| {
            vec![
                s.shard_id.clone(),
                s.key_range.to_string(),
                s.primary_node.clone(),
                s.replica_nodes.join(","),
                s.status.to_string(),
                s.epoch.to_string(),
                or_dash(
                    s.migration
                        .as_ref()
                        .map(|m| format!("{}->{} {}%", m.from, m.to, m.percent)),
                ),
            ]
        }),
    );
}

pub fn nodes(list: &[NodeStatus]) {
    table(
        &["NODE", "ADDRESS", "HEALTH", "FAILURES", "SHARDS", "LABELS"],
        list.iter().map(|n| {
            let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                n.node_id.clone(),
                n.address.clone(),
                n.health.to_string(),
                n.failure_count.to_string(),
                n.shards.len().to_string(),
                labels.join(","),
            ]
        }),
    );
}

/// The cluster summary and its members.
pub fn cluster(status: &ClusterStatus, version: u64, config_hash: &str) {
    fields(&[
        (
            "answered by",
            format!("node {} ({})", status.node_id, status.state),
        ),
        (
            "leader",
            or_dash(status.leader.map(|l| format!("node {l}"))),
        ),
        ("term", status.term.to_string()),
        ("committed", or_dash(status.committed_index)),
        ("applied", or_dash(status.applied_index)),
        ("version", version.to_string()),
        ("config hash", config_hash.to_string()),
    ]);
    println!();
    table(
        &["MEMBER", "PEER ADDRESS", "ROLE", "MATCHED", "LEADER"],
        status.members.iter().map(|m| {
            vec![
                m.node_id.to_string(),
                m.address.clone(),
                format!("{:?}", m.role).to_lowercase(),
                or_dash(m.matched_index),
                if status.leader == Some(m.node_id) {
                    "*"
                } else {
                    ""
                }
                .to_string(),
            ]
        }),
    );
}
