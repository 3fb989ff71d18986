//! Raft glue: everything that touches openraft lives in this directory.
//!
//! openraft (pinned to one exact 0.10 pre-release in the workspace) is isolated here so
//! that an upgrade touches `server/src/raft/` only; the rest of the server sees the
//! types re-exported below and the topology state, never openraft's traits.
//!
//! - [`runtime`]: `GlommioRuntime`, openraft's `AsyncRuntime` on glommio. Raft runs on
//!   one glommio executor, the control executor.
//! - [`log_store`]: the durable Raft log and vote, on the `raft-log` crate.

pub mod log_store;
pub mod runtime;

pub use log_store::LogStore;
pub use log_store::LogStoreConfig;
pub use log_store::LogStoreError;
pub use runtime::GlommioRuntime;
