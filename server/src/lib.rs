//! concord-topo: the ConcordKV topology service.
//!
//! Code map (see ARCHITECTURE.md for the whole picture):
//! - `config`: YAML + command line → one validated `Config`.
//! - `raft`: everything openraft (runtime on glommio, log store, state machine, network).
//! - `control`: the channel from serving executors to the control executor.
//! - `publish`: applied state → one immutable `Published` per version, on every executor.
//! - `executor`: per-executor context and what executors share.
//! - `http`: the HTTP/1.1 front (hyper on glommio).
//! - `health`: the leader's data-node health monitor (probes, thresholds, commits).
//! - `notify`: SSE frames and the subscribers of each executor.
//! - `metrics`: counters and histograms in Prometheus text.
//! - `node`: wires it all together and runs the executors.

pub mod config;
pub mod control;
pub mod executor;
pub mod health;
pub mod http;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod publish;
pub mod raft;
