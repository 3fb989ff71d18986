//! The `tls:` (client port) and `peer_tls:` (peer port, mutual TLS) sections, their
//! flags, and the checks that the files they name make usable rustls configurations
//! (a bad file stops the server at start, naming the key and the problem).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::net::tls::{self, Identity, PeerTls, TlsError};

/// `tls:`: HTTPS on the client port. Plain HTTP when `cert_file` is not set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the leaf certificate.
    pub key_file: Option<PathBuf>,
    /// When set, clients must present a certificate signed by this PEM CA.
    pub client_ca_file: Option<PathBuf>,
}

/// `peer_tls:`: mutual TLS between topology servers on the peer port.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PeerTlsConfig {
    /// This server's PEM certificate, presented both as server and as client: it
    /// needs an IP SAN for the address the others dial and, when it lists extended
    /// key usages, both serverAuth and clientAuth.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The cluster CA: peers must present a certificate signed by it, and the
    /// servers this one dials too.
    pub ca_file: Option<PathBuf>,
}

/// The TLS flags (each overrides its key).
#[derive(Debug, Default, clap::Args)]
pub struct TlsFlags {
    /// PEM certificate chain for HTTPS on the client port (`tls.cert_file`).
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert` (`tls.key_file`).
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (`tls.client_ca_file`).
    #[arg(long = "tls-client-ca", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM certificate for mutual TLS on the peer port (`peer_tls.cert_file`).
    #[arg(long = "peer-tls-cert", value_name = "FILE")]
    pub peer_tls_cert: Option<PathBuf>,
    /// PEM private key for `--peer-tls-cert` (`peer_tls.key_file`).
    #[arg(long = "peer-tls-key", value_name = "FILE")]
    pub peer_tls_key: Option<PathBuf>,
    /// The cluster's PEM CA for peer certificates (`peer_tls.ca_file`).
    #[arg(long = "peer-tls-ca", value_name = "FILE")]
    pub peer_tls_ca: Option<PathBuf>,
}

impl TlsFlags {
    pub fn is_empty(&self) -> bool {
        [
            &self.tls_cert,
            &self.tls_key,
            &self.tls_client_ca,
            &self.peer_tls_cert,
            &self.peer_tls_key,
            &self.peer_tls_ca,
        ]
        .iter()
        .all(|flag| flag.is_none())
    }

    /// Overrides the keys of `tls` and `peer_tls` with the flags given.
    pub fn apply(&self, tls: &mut TlsConfig, peer: &mut PeerTlsConfig) {
        let pairs = [
            (&self.tls_cert, &mut tls.cert_file),
            (&self.tls_key, &mut tls.key_file),
            (&self.tls_client_ca, &mut tls.client_ca_file),
            (&self.peer_tls_cert, &mut peer.cert_file),
            (&self.peer_tls_key, &mut peer.key_file),
            (&self.peer_tls_ca, &mut peer.ca_file),
        ];
        for (flag, key) in pairs {
            if let Some(path) = flag {
                *key = Some(path.clone());
            }
        }
    }
}

/// The configuration key a TLS error is about: the one naming the file it names
/// (the key file's key, when one file holds both and the key is what is missing).
fn named(error: TlsError, keys: &[(&str, &Path)]) -> ConfigError {
    let about_key = matches!(error, TlsError::NoKey { .. });
    let key = keys
        .iter()
        .filter(|(_, path)| *path == error.path())
        .max_by_key(|(key, _)| key.ends_with("key_file") == about_key)
        .map_or(keys[0].0, |(key, _)| *key);
    invalid(key, error.to_string())
}

/// The files of a section that must be set together, or the key that is missing.
fn both<'a>(
    section: &str,
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
    flags: (&str, &str),
) -> Result<Option<(&'a Path, &'a Path)>, ConfigError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (Some(_), None) => Err(invalid(
            &format!("{section}.key_file"),
            format!("is required with {section}.cert_file ({})", flags.1),
        )),
        (None, Some(_)) => Err(invalid(
            &format!("{section}.cert_file"),
            format!("is required with {section}.key_file ({})", flags.0),
        )),
    }
}

impl TlsConfig {
    /// The client port's rustls configuration, or `None` for plain HTTP.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
        let Some((cert_file, key_file)) = both(
            "tls",
            &self.cert_file,
            &self.key_file,
            ("--tls-cert", "--tls-key"),
        )?
        else {
            if self.client_ca_file.is_some() {
                return Err(invalid(
                    "tls.client_ca_file",
                    "needs tls.cert_file and tls.key_file (client certificates are checked only over TLS)",
                ));
            }
            return Ok(None);
        };
        let identity = Identity {
            cert_file,
            key_file,
        };
        let client_ca = self.client_ca_file.as_deref();
        let mut keys = vec![("tls.cert_file", cert_file), ("tls.key_file", key_file)];
        if let Some(ca) = client_ca {
            keys.push(("tls.client_ca_file", ca));
        }
        tls::server_config(&identity, client_ca)
            .map(Some)
            .map_err(|e| named(e, &keys))
    }
}

impl PeerTlsConfig {
    /// Both ends of peer mutual TLS, or `None` for plain HTTP between servers.
    pub fn load(&self) -> Result<Option<PeerTls>, ConfigError> {
        let files = both(
            "peer_tls",
            &self.cert_file,
            &self.key_file,
            ("--peer-tls-cert", "--peer-tls-key"),
        )?;
        let (cert_file, key_file, ca_file) = match (files, &self.ca_file) {
            (None, None) => return Ok(None),
            (Some((cert, key)), Some(ca)) => (cert, key, ca.as_path()),
            (Some(_), None) => {
                return Err(invalid(
                    "peer_tls.ca_file",
                    "is required with peer_tls.cert_file (--peer-tls-ca): peers are verified against it",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "peer_tls.cert_file",
                    "is required with peer_tls.ca_file (--peer-tls-cert, --peer-tls-key)",
                ))
            }
        };
        let identity = Identity {
            cert_file,
            key_file,
        };
        let keys = [
            ("peer_tls.cert_file", cert_file),
            ("peer_tls.key_file", key_file),
            ("peer_tls.ca_file", ca_file),
        ];
        PeerTls::load(&identity, ca_file)
            .map(Some)
            .map_err(|e| named(e, &keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(result: Result<impl std::fmt::Debug, ConfigError>) -> String {
        result.expect_err("an error").to_string()
    }

    #[test]
    fn files_that_go_together_are_required_together() {
        assert!(TlsConfig::default().server_config().unwrap().is_none());
        let cert_only = TlsConfig {
            cert_file: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(error_text(cert_only.server_config()).starts_with("tls.key_file:"));
        let ca_only = TlsConfig {
            client_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(error_text(ca_only.server_config()).starts_with("tls.client_ca_file:"));
        let no_ca = PeerTlsConfig {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ca_file: None,
        };
        assert!(error_text(no_ca.load()).starts_with("peer_tls.ca_file:"));
    }

    #[test]
    fn a_missing_file_is_named_with_its_key() {
        let missing = TlsConfig {
            cert_file: Some("/nonexistent/c.pem".into()),
            key_file: Some("/nonexistent/k.pem".into()),
            client_ca_file: None,
        };
        let text = error_text(missing.server_config());
        assert!(
            text.starts_with("tls.cert_file: cannot read /nonexistent/c.pem"),
            "{text}"
        );
    }

    #[test]
    fn flags_override_their_keys() {
        let flags = TlsFlags {
            tls_cert: Some("flag.pem".into()),
            peer_tls_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        let mut tls = TlsConfig {
            cert_file: Some("yaml.pem".into()),
            key_file: Some("yaml.key".into()),
            client_ca_file: None,
        };
        let mut peer = PeerTlsConfig::default();
        flags.apply(&mut tls, &mut peer);
        assert_eq!(tls.cert_file, Some("flag.pem".into()));
        assert_eq!(tls.key_file, Some("yaml.key".into()));
        assert_eq!(peer.ca_file, Some("ca.pem".into()));
        assert!(!flags.is_empty());
        assert!(TlsFlags::default().is_empty());
    }
}
