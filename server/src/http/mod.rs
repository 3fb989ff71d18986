//! The client HTTP front: hyper 1.x HTTP/1.1 on glommio, one listener per executor.
//!
//! Code map: `server` accepts and drives connections; `router` matches routes and
//! applies per-request policy (timeout, metrics); `extract` checks and parses the
//! requests that change something; `read`, `write`, `membership`, `health_round`,
//! `sse` and `admin` (cluster status, metrics, liveness, readiness) are the handlers;
//! `ui` serves the dashboard's static files;
//! `response` builds every answer (and maps service errors to statuses); `body` is the
//! response body type; `query` parses query strings.

// Handlers return their refusals as the answer itself (`Result<_, Response<Body>>`),
// made once per refused request; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod admin;
pub mod body;
mod extract;
mod health_round;
mod membership;
mod query;
pub mod read;
pub mod response;
mod router;
pub mod server;
pub mod sse;
mod ui;
pub mod write;
