//! Integration tests: real `concord-topo` processes on loopback sockets, one binary,
//! one module per area. Every server picks its own free ports, so tests run in parallel.

mod api;
mod client;
mod cluster;
mod cluster_support;
mod ctl;
mod data_node;
mod durability;
mod failover;
mod health;
mod health_cluster;
mod history;
mod linearizable;
mod partition;
mod proxy;
mod sse;
mod support;
