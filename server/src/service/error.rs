//! [`ServiceError`]: why an operation of the service boundary failed, with its retry
//! advice. The same value is answered to the HTTP front and travels over the peer
//! port (postcard) when the leader ran a forwarded operation, so there is no second,
//! "remote" error type to keep in step.

use std::time::Duration;

use concord_model::{ApplyError, ApplyErrorKind};
use serde::{Deserialize, Serialize};

/// What kind of failure, which decides the HTTP status (in one place, in `http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request is wrong; nothing was changed.
    BadRequest,
    /// What the request names does not exist.
    NotFound,
    /// Valid, but not in the current state (or not now); nothing was changed.
    Conflict,
    /// This server is not the leader and the operation is one the leader runs: the
    /// service forwards it. Never leaves the service unconverted.
    NotLeaderHere,
    /// No leader can run it now (an election, an unreachable leader).
    NoLeader,
    /// Only the leader decides this, and it is never forwarded: ask node `leader`.
    NotLeader { leader: u64 },
    /// No answer in time; the outcome is unknown.
    Timeout,
    /// Raft or the control executor cannot serve (shutting down, storage fault, lost quorum).
    Unavailable,
}

/// Why an operation failed: its kind, a message a user can act on, and whether
/// retrying shortly is advised (HTTP `Retry-After: 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry: bool,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ServiceError {
        ServiceError {
            kind,
            message: message.into(),
            retry: false,
        }
    }

    /// The same error, advising (or not) a retry.
    pub fn retry(mut self, retry: bool) -> ServiceError {
        self.retry = retry;
        self
    }

    /// The state machine refused the change set whole.
    pub fn rejected(e: &ApplyError) -> ServiceError {
        let kind = match e.kind() {
            ApplyErrorKind::BadRequest => ErrorKind::BadRequest,
            ApplyErrorKind::NotFound => ErrorKind::NotFound,
            ApplyErrorKind::Conflict | ApplyErrorKind::PreconditionFailed => ErrorKind::Conflict,
        };
        ServiceError::new(kind, e.to_string())
    }

    /// Not the leader here; `message` is what the caller sees if no leader can be asked.
    pub fn not_leader_here(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::NotLeaderHere, message).retry(true)
    }

    pub fn no_leader(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::NoLeader, message).retry(true)
    }

    pub fn unavailable(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Unavailable, message)
    }

    /// A queue is full: nothing was done, retrying shortly is advised.
    pub fn busy(message: impl Into<String>) -> ServiceError {
        ServiceError::unavailable(message).retry(true)
    }

    /// A write not committed within `timeout`: it may still commit, so no retry advice.
    pub fn write_timeout(timeout: Duration) -> ServiceError {
        ServiceError::new(
            ErrorKind::Timeout,
            format!("the write was not committed within {timeout:?}; its outcome is unknown"),
        )
    }

    /// The control executor is gone (the process is stopping).
    pub fn stopped() -> ServiceError {
        ServiceError::unavailable("raft is unavailable: control executor stopped")
    }

    /// A "not the leader here" that cannot be forwarded becomes "no leader".
    pub fn unforwarded(self) -> ServiceError {
        if self.kind == ErrorKind::NotLeaderHere {
            ServiceError {
                kind: ErrorKind::NoLeader,
                ..self
            }
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_crosses_the_peer_port_whole() {
        let e = ServiceError::new(ErrorKind::NotLeader { leader: 3 }, "ask node 3").retry(true);
        let bytes = postcard::to_stdvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<ServiceError>(&bytes).unwrap(), e);
        assert_eq!(
            ServiceError::not_leader_here("x").unforwarded().kind,
            ErrorKind::NoLeader
        );
    }
}
