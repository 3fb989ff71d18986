//! The client's errors: bad options, why a key has no route, why waiting for the
//! topology gave up, and why one exchange with a topology server failed (the text of
//! the last one is kept for `last_error`).

use std::io;
use std::path::PathBuf;

use concord_model::{ApplyEventsError, SnapshotError};

use crate::sse::SseError;
use crate::wire::WireError;

/// Why [`crate::ClientOptions`] were refused.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("no topology server given: add at least one host:port")]
    NoServers,
    #[error("server address {address:?}: {reason}")]
    BadServer { address: String, reason: String },
    #[error("option {option}: {reason}")]
    Invalid {
        option: &'static str,
        reason: &'static str,
    },
    #[error(
        "server address {address:?} is https:// but ca_file is not set: set it to the PEM \
         file of the CA that signed the servers' certificates (the system's trusted roots \
         are not used)"
    )]
    NoCaFile { address: String },
    #[error("{option} {}: {reason}", path.display())]
    TlsFile {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("option {option}: {reason}")]
    Tls {
        option: &'static str,
        reason: &'static str,
    },
    #[error("could not start the client's thread: {0}")]
    Thread(#[source] io::Error),
}

/// Why a key could not be routed. Routing never waits for the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the key is empty")]
    EmptyKey,
    #[error("no topology yet: the client has not received a snapshot from any server")]
    NotReady,
    #[error("the topology has no shards")]
    NoShards,
}

/// Why waiting for a topology version gave up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// Some server answered, but the wanted version did not arrive in time.
    #[error("timed out waiting for the topology (last error: {last_error})")]
    Timeout { last_error: String },
    /// No server could be reached at all so far.
    #[error("no topology server could be reached (last error: {last_error})")]
    Unreachable { last_error: String },
}

/// Why one exchange with a topology server failed; the client then rotates to the
/// next server (or, for a gap, resynchronises first).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("no data for {0:?} (read timeout)")]
    Idle(std::time::Duration),
    #[error("the connection closed mid-response")]
    Closed,
    #[error("{path} answered {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("{0}")]
    Sse(#[from] SseError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the snapshot is not a valid topology: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Apply(#[from] ApplyEventsError),
    #[error("the server is at version {server}, behind this client's {local}")]
    Behind { server: u64, local: u64 },
    #[error("the client is shutting down")]
    Stopped,
}
