//! The model's errors: why a change set was refused ([`ApplyError`], with its HTTP
//! classification), why a client could not apply events, why a snapshot is not a
//! valid topology, and why the event history cannot answer.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Shard,
    Node,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Shard => "shard",
            EntityKind::Node => "node",
        })
    }
}

/// How a refusal maps onto HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApplyErrorKind {
    /// 400: the request itself is malformed or names something impossible.
    BadRequest,
    /// 404: the entity the request addresses does not exist.
    NotFound,
    /// 409: valid, but not in the topology's current state.
    Conflict,
    /// The `If-Match` version is not the current one. Answered 409, not the RFC's
    /// A failed `If-Match` compare-and-set; the HTTP API answers it 409, like a conflict.
    PreconditionFailed,
}

impl ApplyErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ApplyErrorKind::BadRequest => 400,
            ApplyErrorKind::NotFound => 404,
            ApplyErrorKind::Conflict | ApplyErrorKind::PreconditionFailed => 409,
        }
    }
}

/// Why a change set was refused. Nothing of a refused change set is applied.
/// It is the Raft response of a refused command, so it is serde (and binary-safe).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    /// The input is malformed. `field` is a path such as `ops[2].keyRange`, and
    /// `message` starts with it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The entity the operation addresses (by its own id) does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound { kind: EntityKind, id: String },
    /// Well-formed, but refused in the current state (shard ranges would not cover
    /// the space, a node still holds shards, a migration step out of order, ...).
    #[error("{message}")]
    Conflict { message: String },
    /// `expected_version` (compare-and-set) is not the current version.
    #[error("version mismatch: expected version {expected}, the topology is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
}

impl ApplyError {
    /// An `Invalid` whose message is `"{field}: {detail}"`.
    pub fn invalid(field: impl Into<String>, detail: impl fmt::Display) -> ApplyError {
        let field = field.into();
        let message = format!("{field}: {detail}");
        ApplyError::Invalid { field, message }
    }

    pub fn not_found(kind: EntityKind, id: impl Into<String>) -> ApplyError {
        ApplyError::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApplyError {
        ApplyError::Conflict {
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ApplyErrorKind {
        match self {
            ApplyError::Invalid { .. } => ApplyErrorKind::BadRequest,
            ApplyError::NotFound { .. } => ApplyErrorKind::NotFound,
            ApplyError::Conflict { .. } => ApplyErrorKind::Conflict,
            ApplyError::VersionMismatch { .. } => ApplyErrorKind::PreconditionFailed,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
    }
}

/// Why a client could not apply the events of one version. Either way the local
/// copy is unchanged and the client should resynchronise from a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyEventsError {
    /// Events were lost: the next version to apply is `expected`.
    #[error("version gap: expected version {expected}, received {received}")]
    Gap { expected: u64, received: u64 },
    /// The events do not describe a valid topology from the local one.
    #[error("events of version {version} do not apply: {message}")]
    Inconsistent { version: u64, message: String },
}

/// Why a snapshot (or a serialized state) is not a valid topology.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("unsupported hashFunction {found:?}; expected \"sha256-be64\"")]
    UnsupportedHashFunction { found: String },
    /// `message` starts with the path of the offending field.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error(
        "configHash mismatch: the snapshot says {expected:?}, its content hashes to {actual:?}"
    )]
    HashMismatch { expected: String, actual: String },
}

impl SnapshotError {
    pub(crate) fn invalid(field: impl Into<String>, detail: impl fmt::Display) -> SnapshotError {
        let field = field.into();
        let message = format!("{field}: {detail}");
        SnapshotError::Invalid { field, message }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The events asked for were evicted. `since(oldest_available - 1, _)` is the
    /// earliest query that can still be answered; older ones need the snapshot.
    #[error("events are held from version {oldest_available} on; older ones were compacted")]
    Compacted { oldest_available: u64 },
}
