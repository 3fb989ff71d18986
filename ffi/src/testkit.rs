//! Sample topologies for this crate's tests and benchmarks (not part of the API).

use topology_model::{Command, NodeSpec, Operation, ShardStatus, TopologyEvent, TopologyState};

/// `nodes` data nodes and `shards` shards (replication factor 3, or fewer nodes),
/// bootstrapped in one change set: version 1.
pub fn bootstrap_state(nodes: u32, shards: u32) -> TopologyState {
    let mut state = TopologyState::new(0);
    let specs = (0..nodes)
        .map(|i| NodeSpec {
            node_id: format!("node-{i:04}"),
            address: format!("10.0.{}.{}:7000", i / 250, i % 250),
        })
        .collect();
    state
        .apply(&Command::single(
            1,
            Operation::Bootstrap {
                nodes: specs,
                shard_count: shards,
                replication_factor: 3.min(nodes),
            },
        ))
        .expect("bootstrap applies");
    state
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
