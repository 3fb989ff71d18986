//! Sample topologies for this crate's tests and benchmarks (not part of the API).

use concord_model::{Command, Operation, ShardStatus, TopologyEvent, TopologyState};

/// `nodes` data nodes and `shards` shards (replication factor 3, or fewer nodes),
/// bootstrapped in one change set: version 1. No history: clients keep none.
pub fn bootstrap_state(nodes: u32, shards: u32) -> TopologyState {
    concord_model::sample::bootstrapped(nodes, shards, 0)
}

/// Applies one single-shard change (a status toggle) and returns its events.
pub fn toggle_shard(state: &mut TopologyState, shard_id: &str) -> Vec<TopologyEvent> {
    let status = match state.shard(shard_id).map(|s| s.status) {
        Some(ShardStatus::Readonly) => ShardStatus::Active,
        _ => ShardStatus::Readonly,
    };
    state
        .apply(&Command::single(
            state.timestamp() + 1,
            Operation::UpdateShard {
                shard_id: shard_id.to_string(),
                primary_node: None,
                replica_nodes: None,
                status: Some(status),
            },
        ))
        .expect("status change applies")
}

/// The server's answer to `GET /api/topology/snapshot` for `state`.
pub fn snapshot_body(state: &TopologyState) -> String {
    let snapshot = serde_json::to_string(&state.to_snapshot()).unwrap();
    format!(
        r#"{{"success":true,"message":"ok","version":{},"snapshot":{snapshot}}}"#,
        state.version()
    )
}

/// A one-purpose loopback server for tests and benches: answers the snapshot of
/// `state`, and holds any other request (the SSE stream) open for 30 s. Returns its
/// address.
pub fn serve_snapshot(state: TopologyState) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let body = snapshot_body(&state);
            std::thread::spawn(move || {
                let head = read_request_head(&mut stream).unwrap_or_default();
                if head.starts_with("GET /api/topology/snapshot") {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                } else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hi\n\n",
                    );
                }
                std::thread::sleep(std::time::Duration::from_secs(30));
            });
        }
    });
    addr
}

/// Sets one node's health (as the health monitor does) and returns the events.
pub fn set_health(
    state: &mut TopologyState,
    node_id: &str,
    health: concord_model::Health,
) -> Vec<TopologyEvent> {
    state
        .apply(&Command::single(
            state.timestamp() + 1,
            Operation::SetHealth {
                updates: vec![concord_model::HealthUpdate {
                    node_id: node_id.to_string(),
                    health,
                    failure_count: 0,
                    last_seen: state.timestamp() + 1,
                    last_error: None,
                }],
            },
        ))
        .expect("health update applies")
}

/// Reads one request head (up to the empty line) byte by byte, so that nothing after
/// it is consumed; `None` when the connection ends first or the head is not UTF-8.
pub fn read_request_head(stream: &mut (impl std::io::Read + ?Sized)) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}
