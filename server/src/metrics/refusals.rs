//! What the server turned away because a limit was reached: connections past a
//! port's cap, SSE streams past the server's or an address's cap, and operations past
//! the control executor's queue. Counted where the limit is enforced, exposed here.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::exposition::{encode_into, encode_scalars, Scalar};

/// Refusals counted outside the connection limits (which count their own).
#[derive(Debug, Default)]
pub struct Refusals {
    sse_server: AtomicU64,
    sse_address: AtomicU64,
    operations: AtomicU64,
}

impl Refusals {
    /// A stream refused by `topology.notifications.max_subscribers`.
    pub fn sse_server_full(&self) {
        self.sse_server.fetch_add(1, Relaxed);
    }

    /// A stream refused by `topology.notifications.max_subscribers_per_address`.
    pub fn sse_address_full(&self) {
        self.sse_address.fetch_add(1, Relaxed);
    }

    /// A health round refused because the leader's queue of rounds was full.
    pub fn operation_refused(&self) {
        self.operations.fetch_add(1, Relaxed);
    }
}

/// Refusals counted by the limits themselves, read at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefusedTotals {
    pub client_connections: u64,
    pub peer_connections: u64,
    /// By `raft.max_pending_operations` (health rounds refused are in [`Refusals`]).
    pub operations: u64,
}

/// Appends the refusal counters to a `/metrics` answer.
pub fn render_refusals(out: &mut String, connections: RefusedTotals, counted: &Refusals) {
    encode_into(
        out,
        RefusalCollector {
            connections,
            sse_server: counted.sse_server.load(Relaxed),
            sse_address: counted.sse_address.load(Relaxed),
            operations: connections.operations + counted.operations.load(Relaxed),
        },
    );
}

#[derive(Debug)]
struct RefusalCollector {
    connections: RefusedTotals,
    sse_server: u64,
    sse_address: u64,
    operations: u64,
}

impl Collector for RefusalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_scalars(
            &mut encoder,
            &[
                Scalar::counter(
                    "concord_http_connections_refused_total",
                    "Client connections answered 503 and closed (http.max_connections).",
                    self.connections.client_connections,
                ),
                Scalar::counter(
                    "concord_peer_connections_refused_total",
                    "Peer connections answered 503 and closed (raft.max_peer_connections).",
                    self.connections.peer_connections,
                ),
                Scalar::counter(
                    "concord_sse_refused_total",
                    "SSE streams refused: the server's limit was reached.",
                    self.sse_server,
                ),
                Scalar::counter(
                    "concord_sse_refused_per_address_total",
                    "SSE streams refused: the client address's limit was reached.",
                    self.sse_address,
                ),
                Scalar::counter(
                    "concord_operations_refused_total",
                    "Writes, rounds and membership changes refused: the queue was full.",
                    self.operations,
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_rendered_as_counters() {
        let counted = Refusals::default();
        counted.sse_address_full();
        counted.operation_refused();
        counted.operation_refused();
        let mut text = String::new();
        let connections = RefusedTotals {
            client_connections: 3,
            peer_connections: 1,
            operations: 1,
        };
        render_refusals(&mut text, connections, &counted);
        for line in [
            "concord_http_connections_refused_total 3",
            "concord_peer_connections_refused_total 1",
            "concord_sse_refused_total 0",
            "concord_sse_refused_per_address_total 1",
            "concord_operations_refused_total 3",
            "# TYPE concord_operations_refused_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
