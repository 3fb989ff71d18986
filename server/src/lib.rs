//! concord-topo: the ConcordKV topology service.
//!
//! Code map, by layer (a module imports only from its own layer or below, and
//! `http` only from `process`; `tests/layers.rs` checks it):
//! - 0 `net`: hyper on glommio, listeners, bounded body reads, bearer tokens, clock,
//!   gzip; `config`: YAML + command line → one validated `Config`; `metrics`:
//!   counters and histograms in Prometheus text.
//! - 1 `publish`: applied state (and Raft's term/leader) → one immutable
//!   `Published` per version, on every executor, with its SSE frames; `service`: the
//!   boundary between serving executors and the control executor (operations,
//!   outcomes, `ServiceError`).
//! - 2 `raft`: everything openraft (runtime on glommio, log store, state machine,
//!   peer transport, the one forward-to-leader path); `executor`: per-executor
//!   context and what executors share.
//! - 3 `dispatch`: the control executor's side of the service; `node_health`: the
//!   leader's data-node health monitor; `notify`: SSE subscribers (lag and
//!   leader-loss rules, the subscriber count).
//! - 4 `http`: the client HTTP/1.1 front (routes, handlers, responses).
//! - 5 `process`: wires it all together and runs the executors; `restore`: the
//!   `concord-topo restore` command line (a data directory seeded from a backup).
//!
//! Debug builds only: `debug_break` (layer 0), faults a test switches on to show
//! that the suite's checks fail on a broken server.

pub mod config;
#[cfg(debug_assertions)]
pub mod debug_break;
pub mod dispatch;
pub mod executor;
pub mod http;
pub mod metrics;
pub mod net;
pub mod node_health;
pub mod notify;
pub mod process;
pub mod publish;
pub mod raft;
pub mod restore;
pub mod service;
