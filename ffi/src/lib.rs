//! ConcordKV's caching router client: keeps a local copy of the topology current
//! from the topology servers (snapshot, then SSE events applied in order, failing
//! over between servers by itself) and routes keys locally, in nanoseconds, without
//! allocating or touching the network.
//!
//! Usable as a Rust library ([`TopologyClient`]) and, through [`capi`], as the C
//! library `libconcordkv_topology` (header `include/concordkv_topology.h`).
//!
//! Code map:
//! - `client`: [`TopologyClient`], [`Route`];
//! - `table`: [`RoutingTable`], the flat per-version lookup structure;
//! - `worker`, `stream`: the client's thread (fetch, follow, resync, failover);
//! - `http`, `tls`, `sse`, `wire`: HTTP/1.1 (plain or over rustls), the SSE
//!   parser, simd-json answers;
//! - `shared`: what the thread and the callers share (table, listeners, counters);
//! - `options`, `backoff`, `error`;
//! - `capi`: the C ABI.

mod backoff;
pub mod capi;
mod client;
mod error;
#[cfg(test)]
mod fuzz_input;
/// The client's HTTP/1.1 pieces (response heads, body decoding), public for the
/// workspace's test kit; not part of the API.
#[doc(hidden)]
pub mod http;
mod options;
mod shared;
mod sse;
mod stream;
mod table;
#[doc(hidden)]
pub mod testkit;
mod tls;
mod wire;
mod worker;

pub use client::{Route, TopologyClient};
pub use concord_model::{
    key_hash, EventType, Health, ShardStatus, TopologyEvent, TopologySnapshot,
};
pub use error::{OptionsError, RouteError, WaitError};
pub use options::{ClientOptions, ReadConsistency};
pub use shared::{Change, ChangeCallback, ClientStats, ListenerId};
pub use table::{NodeRef, RouteRef, RoutingTable};

/// The SSE parser, public for fuzzing and tests of other crates.
#[doc(hidden)]
pub use sse::{SseError, SseEvent, SseParser};

#[cfg(test)]
mod tests {
    /// The thread-safety the docs promise, checked by the compiler.
    #[test]
    fn shared_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::TopologyClient>();
        send_sync::<crate::RoutingTable>();
        send_sync::<crate::capi::concordkv_client>();
    }
}
