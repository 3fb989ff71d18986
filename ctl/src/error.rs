//! What can go wrong in one `ctl` invocation, and the exit code each outcome maps to.
//! Scripts rely on the codes: 0 ok, 1 refused by the server, 2 usage, 3 unreachable.

/// A failed invocation; its `Display` is the one line printed to stderr.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A server answered and refused (or failed) the request: its own message.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// The command line or an input file is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// No endpoint answered (every one refused the connection or timed out).
    #[error("no server answered: {0}")]
    Unreachable(String),
}

impl CtlError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Refused { .. } => 1,
            CtlError::Usage(_) => 2,
            CtlError::Unreachable(_) => 3,
        }
    }

    /// A refusal that did not come from an HTTP status (e.g. an unreadable answer).
    pub fn refused(message: impl Into<String>) -> CtlError {
        CtlError::Refused {
            status: 0,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CtlError>;
