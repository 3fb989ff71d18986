//! Integration tests: real `concord-topo` processes on loopback sockets, one binary,
//! one module per area. Every server picks its own free ports, so tests run in parallel.

mod api;
mod data_node;
mod durability;
mod health;
mod sse;
mod sse_client;
mod support;
