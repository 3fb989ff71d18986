//! The peer secret: what topology servers present to each other on the peer port.
//!
//! Where it comes from, first match wins: the `CONCORD_PEER_SECRET` environment
//! variable, the file named by `auth.peer_secret_file` (one secret per line, blank and
//! `#` lines ignored: the first is presented, any is accepted, which is how a secret is
//! rotated without downtime), or, for a single server with neither, a secret generated
//! once into `<data_dir>/peer-secret` (mode 0600) so that no peer port ever accepts an
//! unauthenticated request.
//!
//! Secrets are visible ASCII of at least [`MIN_SECRET_LEN`] characters. They are kept
//! as SHA-256 digests and compared with `subtle`'s constant-time equality, so neither
//! the content nor the length of a secret leaks through timing.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::net::bearer::TokenSet;
use rand::TryRng;

use super::{invalid, Config, ConfigError};

/// Environment variable holding the peer secret (wins over `auth.peer_secret_file`).
pub const PEER_SECRET_ENV: &str = "CONCORD_PEER_SECRET";
/// Shortest secret accepted from a file or the environment.
pub const MIN_SECRET_LEN: usize = super::auth::MIN_TOKEN_LEN;
/// The generated secret of a single server, under its data directory.
pub const GENERATED_FILE: &str = "peer-secret";

/// The secrets this server accepts on the peer port, and the one it presents.
#[derive(Clone)]
pub struct PeerSecret {
    presented: String,
    /// `Bearer <presented>`, marked sensitive, for every outgoing peer request.
    authorization: Option<http::HeaderValue>,
    accepted: TokenSet,
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerSecret({} accepted, redacted)", self.accepted.len())
    }
}

impl PeerSecret {
    /// Parses secrets, one per line; `key` names their source in errors.
    pub fn from_lines(key: &str, text: &str) -> Result<PeerSecret, ConfigError> {
        PeerSecret::parse(key, "the peer secret", text)
    }

    /// Like [`PeerSecret::from_lines`]; `source` says where the text came from.
    fn parse(key: &str, source: &str, text: &str) -> Result<PeerSecret, ConfigError> {
        let secrets = super::auth::credential_lines(key, source, "secret", text)?;
        // Visible ASCII (checked above) is always a valid header value.
        let authorization = http::HeaderValue::from_str(&format!("Bearer {}", secrets[0]))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Ok(PeerSecret {
            presented: secrets[0].to_string(),
            authorization,
            accepted: TokenSet::new(secrets),
        })
    }

    /// The secret this server sends to its peers.
    pub fn presented(&self) -> &str {
        &self.presented
    }

    /// The `Authorization` header carrying [`PeerSecret::presented`].
    pub fn authorization(&self) -> Option<&http::HeaderValue> {
        self.authorization.as_ref()
    }

    /// True when `given` is one of the accepted secrets (constant time: digests of one
    /// length, every one compared).
    pub fn accepts(&self, given: &str) -> bool {
        self.accepted.contains(given)
    }

    /// The secret in `<data_dir>/peer-secret`, generated (32 random bytes, hex) when the
    /// file does not exist yet.
    pub fn generated(data_dir: &Path) -> Result<PeerSecret, GenerateError> {
        let path = data_dir.join(GENERATED_FILE);
        let failed = |source| GenerateError {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return PeerSecret::from_lines(&path.display().to_string(), &text).map_err(|e| {
                    failed(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let mut bytes = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| failed(std::io::Error::other(e.to_string())))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &secret).map_err(failed)?;
        tracing::info!(path = %path.display(), "generated this server's peer secret");
        PeerSecret::from_lines(GENERATED_FILE, &secret)
            .map_err(|e| failed(std::io::Error::other(e.to_string())))
    }
}

/// Why the generated peer secret could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("peer secret {path}: {source}")]
pub struct GenerateError {
    path: PathBuf,
    source: std::io::Error,
}

/// Creates `path` readable by its owner only, with `secret` and a newline.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

/// The peer secret the configuration names (environment, then file), if any.
pub(super) fn configured_peer_secret(config: &Config) -> Result<Option<PeerSecret>, ConfigError> {
    let secret = match std::env::var(PEER_SECRET_ENV) {
        Ok(value) if !value.is_empty() => Some(PeerSecret::from_lines(PEER_SECRET_ENV, &value)?),
        _ => match &config.auth.peer_secret_file {
            Some(_) => Some(peer_secret_of_file(config)?),
            None => None,
        },
    };
    if let Some(secret) = &secret {
        differs_from_client_token(secret, config)?;
    }
    Ok(secret)
}

/// The secrets of `auth.peer_secret_file` (read again on every call: a reload).
pub(super) fn peer_secret_of_file(config: &Config) -> Result<PeerSecret, ConfigError> {
    let key = "auth.peer_secret_file";
    let Some(path) = &config.auth.peer_secret_file else {
        return Err(invalid(key, "is not set"));
    };
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    let secret = PeerSecret::parse(key, &format!("the peer secret file {shown}"), &text)?;
    differs_from_client_token(&secret, config)?;
    Ok(secret)
}

/// A client credential must not open the peer port, nor the other way round.
fn differs_from_client_token(secret: &PeerSecret, config: &Config) -> Result<(), ConfigError> {
    match &config.auth_token {
        Some(token) if secret.accepts(token) => Err(invalid(
            "auth.peer_secret_file",
            "the peer secret must differ from every client token",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotation_and_constant_time_match() {
        let secret = PeerSecret::from_lines(
            "k",
            "# rotation\n\nnew-secret-0123456789\nold-secret-0123456789\n",
        )
        .unwrap();
        assert_eq!(secret.presented(), "new-secret-0123456789");
        assert!(secret.accepts("new-secret-0123456789"));
        assert!(secret.accepts("old-secret-0123456789"));
        assert!(!secret.accepts("new-secret-012345678"));
        assert!(!secret.accepts(""));
        assert!(format!("{secret:?}").contains("redacted"));
    }

    #[test]
    fn short_empty_or_invisible_secrets_are_refused_naming_the_key() {
        for bad in [
            "short",
            "",
            "# only a comment",
            "has a space in it 0123",
            "tab\there-0123456789",
        ] {
            let e = PeerSecret::from_lines("auth.peer_secret_file", bad).unwrap_err();
            assert!(e.to_string().starts_with("auth.peer_secret_file:"), "{e}");
        }
        assert!(PeerSecret::from_lines("k", "caf\u{e9}-0123456789abcdef").is_err());
    }

    #[test]
    fn the_generated_secret_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = PeerSecret::generated(dir.path()).unwrap();
        assert_eq!(first.presented().len(), 64);
        let mode = std::fs::metadata(dir.path().join(GENERATED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = PeerSecret::generated(dir.path()).unwrap();
        assert_eq!(again.presented(), first.presented());
    }
}
