//! [`ClientOptions`]: which servers to use and how patiently.

use std::time::Duration;

use crate::error::OptionsError;
use crate::http::Endpoint;

/// How fresh the snapshot the client starts (or resynchronises) from must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Whatever the answering server has applied (any server; fastest).
    #[default]
    Applied,
    /// `?consistency=linearizable`: the server confirms a Raft read index first, so
    /// the snapshot is at least as new as every write acknowledged before the read.
    Linearizable,
}

/// Options of a [`crate::TopologyClient`]. `Default` gives everything but `servers`.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Topology servers as `host:port` (or `http://host:port`); tried in order,
    /// rotating on failure.
    pub servers: Vec<String>,
    /// Limit of one TCP connect.
    pub connect_timeout: Duration,
    /// Longest silence tolerated on a response or an event stream. The server sends
    /// a keep-alive every `heartbeat_interval` (15 s by default), so keep this above it.
    pub read_timeout: Duration,
    /// First delay after a failure; doubled per consecutive failure, with jitter.
    pub backoff_min: Duration,
    /// Largest delay between two attempts.
    pub backoff_max: Duration,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub auth_token: Option<String>,
    pub consistency: ReadConsistency,
    /// At most one refresh per this interval, however many `report_stale` calls.
    pub stale_refresh_interval: Duration,
    /// Largest response or SSE event accepted (a snapshot of a big topology).
    pub max_message_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            servers: Vec::new(),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            auth_token: None,
            consistency: ReadConsistency::Applied,
            stale_refresh_interval: Duration::from_secs(1),
            max_message_bytes: 256 << 20,
        }
    }
}

impl ClientOptions {
    /// Default options for these servers.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> ClientOptions {
        ClientOptions {
            servers: servers.into_iter().map(Into::into).collect(),
            ..ClientOptions::default()
        }
    }

    /// Checks every option; returns the parsed server list.
    pub(crate) fn validate(&self) -> Result<Vec<Endpoint>, OptionsError> {
        if self.servers.is_empty() {
            return Err(OptionsError::NoServers);
        }
        let endpoints = self
            .servers
            .iter()
            .map(|s| {
                Endpoint::parse(s).map_err(|reason| OptionsError::BadServer {
                    address: s.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let invalid = |option, reason| Err(OptionsError::Invalid { option, reason });
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be positive");
        }
        if self.read_timeout < Duration::from_millis(200) {
            return invalid("read_timeout", "must be at least 200 ms");
        }
        if self.backoff_max < self.backoff_min {
            return invalid("backoff_max", "must not be below backoff_min");
        }
        if let Some(token) = &self.auth_token {
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return invalid(
                    "auth_token",
                    "must be non-empty, without spaces or control characters",
                );
            }
        }
        if self.max_message_bytes < 4096 {
            return invalid("max_message_bytes", "must be at least 4096");
        }
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_option() {
        assert!(matches!(
            ClientOptions::default().validate(),
            Err(OptionsError::NoServers)
        ));
        let bad = ClientOptions::new(["h:1", "https://x:2"])
            .validate()
            .unwrap_err();
        assert!(bad.to_string().contains("https://x:2"), "{bad}");
        let mut o = ClientOptions::new(["h:1"]);
        o.backoff_min = Duration::from_secs(9);
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("backoff_max"));
        let mut o = ClientOptions::new(["h:1"]);
        o.auth_token = Some("a b".into());
        assert!(o.validate().unwrap_err().to_string().contains("auth_token"));
        assert_eq!(
            ClientOptions::new(["h:1", "h:2"]).validate().unwrap().len(),
            2
        );
    }
}
