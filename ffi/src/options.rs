//! [`ClientOptions`]: which servers to use and how patiently.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::OptionsError;
use crate::http::Endpoint;
use crate::tls;

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
    /// Topology servers as `host:port`, `http://host:port` or `https://host[:port]`
    /// (port 443 by default; needs `ca_file`); tried in order, rotating on failure.
    pub servers: Vec<String>,
    /// Limit of one TCP connect, and separately of one TLS handshake.
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
    /// PEM file of the CA certificate(s) that verify `https://` servers. Required
    /// by any `https://` server: the platform's trusted roots are never used.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to servers that require client
    /// certificates; set together with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
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
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
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
        let tls = |option, reason| Err(OptionsError::Tls { option, reason });
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return tls(
                "client_cert_file",
                "goes with client_key_file: set both or neither",
            );
        }
        if self.ca_file.is_none() {
            if let Some((address, _)) = self.servers.iter().zip(&endpoints).find(|(_, e)| e.tls) {
                return Err(OptionsError::NoCaFile {
                    address: address.clone(),
                });
            }
            if self.client_cert_file.is_some() {
                return tls(
                    "client_cert_file",
                    "is only presented over https://, which needs ca_file too",
                );
            }
        }
        Ok(endpoints)
    }

    /// Reads the TLS files (when `ca_file` is set, so a bad file shows at once)
    /// into the configuration all `https://` connections share.
    pub(crate) fn tls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, OptionsError> {
        let Some(ca_file) = self.ca_file.as_deref() else {
            return Ok(None);
        };
        let identity = self
            .client_cert_file
            .as_deref()
            .zip(self.client_key_file.as_deref())
            .map(|(cert_file, key_file)| tls::Identity {
                cert_file,
                key_file,
            });
        tls::client_config(ca_file, identity).map(Some)
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
