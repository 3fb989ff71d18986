//! Raft glue: everything that touches openraft lives in this directory.
//!
//! openraft (pinned to one exact 0.10 pre-release in the workspace) is isolated here so
//! that an upgrade touches `server/src/raft/` only; the rest of the server sees the
//! types re-exported below and the topology state, never openraft's traits.
//!
//! - [`runtime`]: `GlommioRuntime`, openraft's `AsyncRuntime` on glommio. Raft runs on
//!   one glommio executor, the control executor.
//! - [`handle`]: `RaftHandle`, the facade the rest of the server uses (the Raft
//!   operations of the service, status, a watch of term/leader).
//! - [`leader`]: the one path that runs an operation on the leader (here, or
//!   forwarded once over the peer port).
//! - [`network`]: the Raft transport between topology servers (openraft's
//!   `RaftNetworkV2`), over [`peer_client`]; [`peer_server`] is the peer-port listener,
//!   [`peer_guard`] what it checks before Raft sees a message (peer secret, membership,
//!   term bounds), and [`wire`] the routes and messages both sides speak;
//!   [`lost_log`] keeps out a follower that lost entries it had acknowledged.
//! - [`membership`]: adding learners and changing voters.
//! - [`log_store`]: the durable Raft log and vote, on the `raft-log` crate.
//! - [`recovery`]: what this server held durably at start, to be applied again
//!   before it answers reads.
//! - [`restore`]: a fresh data directory seeded from a backup file.
//! - [`snapshot_store`]: the current state-machine snapshot file, replaced atomically.
//! - [`types`]: the openraft type configuration of the topology (`TopoConfig`).
//! - [`state_machine`]: `TopologyStateMachine`, the model's `TopologyState` as
//!   openraft's state machine, with file snapshots and the publication hook.

pub mod handle;
pub mod leader;
pub mod log_store;
pub mod lost_log;
pub mod membership;
pub mod network;
pub mod peer_client;
#[cfg(test)]
mod peer_fuzz;
pub mod peer_guard;
pub mod peer_server;
pub mod recovery;
pub mod restore;
pub mod runtime;
pub mod snapshot_store;
pub mod state_machine;
pub mod types;
pub mod wire;

pub use handle::{RaftHandle, RaftOptions, RaftStartError, RaftSummary, RaftWatch};
pub use log_store::LogStore;
pub use log_store::LogStoreConfig;
pub use log_store::LogStoreError;
pub use recovery::DurableFloor;
pub use runtime::GlommioRuntime;
pub use state_machine::AppliedMeta;
pub use state_machine::PublishHook;
pub use state_machine::StateMachineError;
pub use state_machine::TopoRaft;
pub use state_machine::TopologyStateMachine;
pub use types::TopoConfig;
pub use types::TopoRequest;
pub use types::TopoResponse;
