//! Integration tests: real `concord-topo` processes on loopback sockets, one binary,
//! one module per area. Every server picks its own free ports, so tests run in parallel.

mod api;
mod auth;
mod backup;
mod browser;
mod client;
mod cluster;
mod cluster_support;
mod ctl;
mod data_node;
mod durability;
mod fail_loudly;
mod failover;
mod fanout;
mod fault_schedule;
mod faults;
mod health;
mod health_cluster;
mod history;
mod limits;
mod linearizable;
mod memory;
mod partition;
mod peer_security;
mod pipelining;
mod reload;
mod restart;
mod sse;
mod support;
mod tls;
mod ui;
