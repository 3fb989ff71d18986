//! Sample topologies at any scale, for tests and benchmarks of every crate (the same
//! layout everywhere, so numbers compare): nodes `node-0000`.., shards bootstrapped
//! with replication factor 3 (or fewer nodes) in one change set, version 1.

use crate::{Command, NodeSpec, Operation, TopologyState};

/// `nodes` data nodes and `shards` shards, keeping `event_buffer_size` events of history.
pub fn bootstrapped(nodes: u32, shards: u32, event_buffer_size: usize) -> TopologyState {
    let mut state = TopologyState::new(event_buffer_size);
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
        .expect("a sample bootstrap is valid");
    state
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_topologies_partition_the_space() {
        let state = super::bootstrapped(5, 40, 100);
        assert_eq!(state.version(), 1);
        assert_eq!((state.node_count(), state.shard_count()), (5, 40));
        assert!(state.shard_for_hash(0).is_some() && state.shard_for_hash(u64::MAX).is_some());
        assert_eq!(state.shard("shard-0000").unwrap().replica_nodes.len(), 2);
    }
}
