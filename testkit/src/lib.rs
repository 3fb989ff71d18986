//! Test support shared by `concord-tests` (integration tests) and `concord-perf` (the
//! load harness), so that neither keeps a private HTTP client, SSE parser, port
//! allocator or process spawner.
//!
//! Code map:
//! - [`http`]: one blocking HTTP/1.1 exchange per connection, byte-exact raw requests
//!   for malformed-input tests, chunked bodies (decoded by the client library's code);
//! - [`sse`]: an SSE reader, sans-IO ([`sse::SseDecoder`]) and blocking
//!   ([`sse::SseClient`]), on the client library's SSE parser;
//! - [`linearizability`]: a recorded history of the version register, checked by
//!   stateright's linearizability tester;
//! - [`observations`]: rules for plain (follower) reads and SSE subscriptions;
//! - [`ports`]: free loopback ports below the ephemeral range;
//! - [`register`]: one write, CAS or version read, classified for a history; the
//!   bootstrap body of a large topology;
//! - [`process`]: `concord-topo` processes (find the binary, spawn, wait, kill);
//! - [`proxy`]: a TCP proxy per peer port that cuts links between servers (partitions);
//! - [`wait`]: bounded polling.

pub mod http;
pub mod linearizability;
pub mod observations;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod register;
pub mod sse;
pub mod wait;

pub use http::{request, try_request, Response};
pub use ports::{free_addr, free_port, loopback};
pub use process::{server_binary, Stderr, TopoProcess};
pub use sse::{SseClient, SseDecoder, SseEvent};
pub use wait::{eventually, poll_until, wait_for};
