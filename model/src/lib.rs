//! ConcordKV topology model: the wire types of the topology API and the pure,
//! deterministic state machine over them, shared by the server (its Raft state
//! machine) and the client library (which replays the server's events).
//!
//! Pure: no I/O, no clock (timestamps come in with each [`Command`]), no randomness,
//! no floats. The same commands give the same state, versions and `configHash` on
//! every machine.
//!
//! Code map:
//! - `hash`: [`key_hash`] and [`HashPoint`] (hex wire form);
//! - `types`: shards, nodes, key ranges, the snapshot;
//! - `event`, `command`, `error`: events, change sets, errors;
//! - `validate`: id / address / label / placement rules;
//! - `state`: [`TopologyState`], `apply` and `apply_events`;
//! - `stage`, `ops`, `shard_ops`, `replay`: one change set in progress;
//! - `partition`: the range index and the no-gap/no-overlap invariant;
//! - `digest`: the configHash; `history`: the bounded event ring;
//! - `codec`: binary-format safety of the JSON-shaped types.

mod codec;
mod command;
mod digest;
mod error;
mod event;
mod hash;
mod history;
mod ops;
mod partition;
mod replay;
pub mod sample;
mod shard_ops;
mod stage;
mod state;
mod types;
mod validate;

#[cfg(test)]
mod testutil;

pub use command::{Command, HealthUpdate, NodeSpec, Operation};
pub use error::{
    ApplyError, ApplyErrorKind, ApplyEventsError, EntityKind, HistoryError, SnapshotError,
};
pub use event::{EntityValue, EventType, ParseEventTypeError, TopologyEvent};
pub use hash::{key_hash, HashPoint, ParseHashPointError, HASH_FUNCTION};
pub use history::EventHistory;
pub use ops::MAX_BOOTSTRAP_SHARDS;
pub use state::{next_timestamp, TopologyState, MAX_TIMESTAMP_LEAD_MS};
pub use types::{
    Health, KeyRange, Migration, NodeMap, NodeStatus, ShardInfo, ShardMap, ShardStatus,
    TopologySnapshot,
};
pub use validate::{check_address, check_id, MAX_ERROR_LEN, MAX_ID_LEN};

/// The persistent-map crate of [`ShardMap`] and [`NodeMap`], re-exported so users
/// need not depend on the same version themselves.
pub use imbl;
