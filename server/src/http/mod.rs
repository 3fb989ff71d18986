//! The HTTP front: hyper 1.x HTTP/1.1 on glommio, one listener per executor.
//!
//! Code map: `server` accepts and drives connections; `router` matches routes and
//! applies per-request policy (timeout, metrics); `read`, `write`, `ops` and
//! `cluster` (membership changes) are the handlers; `response` builds every
//! answer; `query` parses query strings; `io`
//! adapts glommio sockets and timers to hyper.

pub mod body;
mod cluster;
mod health;
pub mod io;
mod ops;
mod query;
pub mod read;
pub mod response;
mod router;
pub mod server;
pub mod sse;
pub mod write;
