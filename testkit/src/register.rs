//! One client operation on the version register (a data node write, optionally with
//! `If-Match`, or a read of the version), classified the way a history needs it:
//! applied or read at a version, a CAS conflict, certainly without effect, or unknown.
//! Shared by the cluster history tests and the soak.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http::{request_within, Response};

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// 200 with this version.
    Version(u64),
    Conflict,
    /// Never reached the server (connection refused): certainly no effect.
    Refused,
    /// Timeout, reset, 503 or another 5xx: may or may not have applied.
    Unknown,
    /// Another 4xx (or a 200 without a version): certainly no effect, and a client bug.
    Unexpected(Response),
}

/// Sends `method path` (a `PUT` carries a data node body) with `If-Match: "<v>"` when
/// `if_match` is set; `limit` on each read and write.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    if_match: Option<u64>,
    limit: Duration,
) -> Outcome {
    let body: &[u8] = if method == "PUT" {
        br#"{"address":"127.0.0.1:1"}"#
    } else {
        b""
    };
    send_body(addr, method, path, body, if_match, limit)
}

/// [`send`] with a JSON body of the caller's.
pub fn send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    if_match: Option<u64>,
    limit: Duration,
) -> Outcome {
    let tag = if_match.map(|v| format!("\"{v}\""));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(tag) = &tag {
        headers.push(("If-Match", tag.as_str()));
    }
    match request_within(addr, method, path, &headers, body, limit) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
        Err(_) => Outcome::Unknown,
        Ok(r) if r.status == 200 => match r.try_json().and_then(|j| j["version"].as_u64()) {
            Some(v) => Outcome::Version(v),
            None => Outcome::Unexpected(r),
        },
        Ok(r) if r.status == 409 && if_match.is_some() => Outcome::Conflict,
        Ok(r) if r.status >= 500 => Outcome::Unknown,
        Ok(r) => Outcome::Unexpected(r),
    }
}

/// The body of `POST /api/topology/bootstrap` for `nodes` data nodes (`dn-0000`, ...)
/// and `shards` shards, replicated three times (fewer with fewer nodes).
pub fn bootstrap_body(nodes: usize, shards: usize) -> String {
    let specs: Vec<String> = (0..nodes)
        .map(|i| {
            format!(
                r#"{{"nodeId":"dn-{i:04}","address":"10.1.{}.{}:7000"}}"#,
                i / 250,
                i % 250
            )
        })
        .collect();
    format!(
        r#"{{"nodes":[{}],"shardCount":{shards},"replicationFactor":{}}}"#,
        specs.join(","),
        3.min(nodes)
    )
}
