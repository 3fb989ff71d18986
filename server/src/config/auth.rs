//! The `auth:` section (the peer secret's loading lives in `secret`) and the client
//! tokens: token files (one token a line; blank and `#` lines ignored; any of them
//! accepted, which is what makes rotation without downtime possible), the
//! `CONCORD_*_TOKEN` environment variables, and the development alias `auth_token` /
//! `--auth-token`. Owns their validation and the start-up refusal of a client port
//! reachable from other hosts with no write or admin credential.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{invalid, Config, ConfigError};
use crate::net::bearer::{ClientCredentials, TokenSet};

/// The YAML `auth:` section: files holding credentials (never the secrets themselves).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When set, reads and SSE need a read, write or admin token.
    pub read_token_file: Option<PathBuf>,
    /// Tokens for topology writes and health rounds (and admin routes when no admin
    /// token is configured).
    pub write_token_file: Option<PathBuf>,
    /// Tokens for membership changes and bootstrap; accepted on every route.
    pub admin_token_file: Option<PathBuf>,
    /// Secrets the topology servers present to each other on the peer port, one per
    /// line: the first is sent, any is accepted (rotation). Overridden by the
    /// `CONCORD_PEER_SECRET` environment variable.
    pub peer_secret_file: Option<PathBuf>,
}

/// Shortest token accepted from a file or the environment (the dev alias takes any).
pub const MIN_TOKEN_LEN: usize = 16;

/// Where one scope's tokens come from.
struct Source {
    file_key: &'static str,
    env: &'static str,
}

const READ: Source = Source {
    file_key: "auth.read_token_file",
    env: "CONCORD_READ_TOKEN",
};
const WRITE: Source = Source {
    file_key: "auth.write_token_file",
    env: "CONCORD_WRITE_TOKEN",
};
const ADMIN: Source = Source {
    file_key: "auth.admin_token_file",
    env: "CONCORD_ADMIN_TOKEN",
};

/// The environment variables that carry client tokens.
pub const TOKEN_ENV_VARS: [&str; 3] = [READ.env, WRITE.env, ADMIN.env];

/// Why `token` is not acceptable (the token itself is never echoed).
fn check_token(token: &str, min_len: usize) -> Result<(), String> {
    if let Some(at) = token.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(format!(
            "character {} of the token is not visible ASCII (0x21-0x7e: no spaces, control or non-ASCII characters)",
            at + 1
        ));
    }
    if token.len() < min_len {
        return Err(format!(
            "the token is {} characters long; at least {min_len} are required",
            token.len()
        ));
    }
    Ok(())
}

/// The tokens of one token file.
fn tokens_of_file(key: &str, path: &Path) -> Result<TokenSet, ConfigError> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        invalid(
            key,
            format!("{shown} is not text (tokens are visible ASCII)"),
        )
    })?;
    Ok(TokenSet::new(credential_lines(
        key,
        &shown.to_string(),
        "token",
        &text,
    )?))
}

/// The credentials of a text (a token file, a peer-secret file or variable): one a
/// line, blank and `#` lines ignored, each checked with [`check_token`]; `source`
/// names where they came from in errors (never the credential itself).
pub(super) fn credential_lines<'a>(
    key: &str,
    source: &str,
    what: &str,
    text: &'a str,
) -> Result<Vec<&'a str>, ConfigError> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let credential = line.trim();
        if credential.is_empty() || credential.starts_with('#') {
            continue;
        }
        check_token(credential, MIN_TOKEN_LEN)
            .map_err(|why| invalid(key, format!("{source} line {}: {why}", n + 1)))?;
        found.push(credential);
    }
    if found.is_empty() {
        return Err(invalid(key, format!("{source} holds no {what}")));
    }
    Ok(found)
}

/// One scope's tokens: its file's and its environment variable's.
fn load(
    source: &Source,
    file: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<TokenSet, ConfigError> {
    let mut tokens = match file {
        Some(path) => tokens_of_file(source.file_key, path)?,
        None => TokenSet::default(),
    };
    if let Some(value) = env(source.env) {
        check_token(&value, MIN_TOKEN_LEN).map_err(|why| invalid(source.env, why))?;
        tokens.extend(TokenSet::new([value]));
    }
    Ok(tokens)
}

/// The client-port credentials of `config`, with `env` looking up the environment.
pub fn client_credentials(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ClientCredentials, ConfigError> {
    let auth = &config.auth;
    let read = load(&READ, auth.read_token_file.as_deref(), &env)?;
    let mut write = load(&WRITE, auth.write_token_file.as_deref(), &env)?;
    let mut admin = load(&ADMIN, auth.admin_token_file.as_deref(), &env)?;
    if let Some(token) = &config.auth_token {
        check_token(token, 1).map_err(|why| invalid("auth_token", why))?;
        write.extend(TokenSet::new([token]));
        admin.extend(TokenSet::new([token]));
    }
    if !read.is_empty() && write.is_empty() && admin.is_empty() {
        return Err(invalid(
            "auth.read_token_file",
            "reads need a token but writes would need none: also set auth.write_token_file \
             or auth.admin_token_file (or CONCORD_WRITE_TOKEN / CONCORD_ADMIN_TOKEN)",
        ));
    }
    Ok(ClientCredentials::new(read, write, admin))
}

/// Refuses a client port reachable from other hosts (not a loopback address) that
/// would accept writes and membership changes from anyone, unless `insecure: true`.
pub fn refuse_open_exposure(config: &Config) -> Result<(), ConfigError> {
    if config.credentials.guards_writes() || config.client_addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    if config.insecure {
        tracing::warn!(
            client_addr = %config.client_addr,
            "insecure: true: anyone who reaches the client port may write the topology and change membership"
        );
        return Ok(());
    }
    Err(invalid(
        "client_addr",
        format!(
            "{} is reachable from other hosts and no write or admin credential is configured: \
             set auth.write_token_file or auth.admin_token_file (or CONCORD_WRITE_TOKEN / \
             CONCORD_ADMIN_TOKEN), listen on 127.0.0.1, or set `insecure: true` (--insecure) \
             to serve it open",
            config.client_addr
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::bearer::Scope;
    use http::{header, HeaderMap, HeaderValue};

    const WRITE_TOKEN: &str = "write-0123456789abcdef";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn scope_of(creds: &ClientCredentials, token: &str) -> Option<Scope> {
        let mut h = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        h.insert(header::AUTHORIZATION, value);
        creds.grant(&h).scope
    }

    #[test]
    fn a_token_file_holds_several_tokens_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.auth.write_token_file = Some(file(
            &dir,
            "write",
            &format!("# rotated 2026-12\n\n{WRITE_TOKEN}\r\n  second-token-0123456789  \n"),
        ));
        let creds = client_credentials(&config, no_env).unwrap();
        assert_eq!(scope_of(&creds, WRITE_TOKEN), Some(Scope::Admin));
        assert_eq!(
            scope_of(&creds, "second-token-0123456789"),
            Some(Scope::Admin)
        );
        assert_eq!(scope_of(&creds, "# rotated 2026-12"), Some(Scope::Read));
    }

    #[test]
    fn bad_tokens_are_refused_naming_the_key_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        for (text, why) in [
            ("short\n", "at least 16"),
            ("has a space inside it\n", "visible ASCII"),
            ("tab\there-0123456789\n", "visible ASCII"),
            ("caf\u{e9}-0123456789abcdef\n", "visible ASCII"),
            ("# only a comment\n\n", "holds no token"),
        ] {
            config.auth.admin_token_file = Some(file(&dir, "admin", text));
            let e = client_credentials(&config, no_env).unwrap_err().to_string();
            assert!(e.starts_with("auth.admin_token_file: "), "{e}");
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(!e.contains("0123456789"), "the token is not echoed: {e}");
        }
        config.auth.admin_token_file = Some(dir.path().join("missing"));
        let e = client_credentials(&config, no_env).unwrap_err().to_string();
        assert!(
            e.contains("auth.admin_token_file") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn environment_tokens_and_the_dev_alias() {
        let env = |name: &str| match name {
            "CONCORD_READ_TOKEN" => Some("read-0123456789abcdef".to_string()),
            "CONCORD_ADMIN_TOKEN" => Some("admin-0123456789abcdef".to_string()),
            _ => None,
        };
        let mut config = Config {
            auth_token: Some("dev".into()),
            ..Config::default()
        };
        let creds = client_credentials(&config, env).unwrap();
        assert_eq!(scope_of(&creds, "read-0123456789abcdef"), Some(Scope::Read));
        assert_eq!(
            scope_of(&creds, "admin-0123456789abcdef"),
            Some(Scope::Admin)
        );
        assert_eq!(scope_of(&creds, "dev"), Some(Scope::Admin));
        assert_eq!(scope_of(&creds, "nope"), None);

        config.auth_token = None;
        let e = client_credentials(&config, |n| {
            (n == "CONCORD_READ_TOKEN").then(|| "read-0123456789abcdef".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("auth.read_token_file") && e.contains("writes"),
            "{e}"
        );
        let e = client_credentials(&config, |n| {
            (n == "CONCORD_WRITE_TOKEN").then(|| "w\u{7f}0123456789abcdef".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("CONCORD_WRITE_TOKEN: "), "{e}");
        config.auth_token = Some("bad token".into());
        let e = client_credentials(&config, no_env).unwrap_err().to_string();
        assert!(e.starts_with("auth_token: "), "{e}");
    }

    #[test]
    fn the_example_file_shows_the_default_auth_and_probe_targets() {
        let text = include_str!("../../config/example.yaml");
        let config = Config::from_yaml(text, Path::new("example.yaml")).unwrap();
        assert!(config.auth.read_token_file.is_none() && !config.insecure);
        assert_eq!(
            config.topology.health_check.allowed_targets,
            crate::net::allow::AllowList::default()
        );
    }

    #[test]
    fn an_open_client_port_must_be_loopback_or_insecure() {
        let mut config = Config::default();
        assert!(
            refuse_open_exposure(&config).is_ok(),
            "127.0.0.1 is loopback"
        );
        for addr in ["0.0.0.0:7070", "10.0.0.1:7070", "[::]:7070"] {
            config.client_addr = addr.parse().unwrap();
            let e = refuse_open_exposure(&config).unwrap_err().to_string();
            assert!(
                e.starts_with("client_addr: ") && e.contains("insecure"),
                "{e}"
            );
        }
        config.client_addr = "[::1]:7070".parse().unwrap();
        assert!(refuse_open_exposure(&config).is_ok());
        config.client_addr = "0.0.0.0:7070".parse().unwrap();
        config.insecure = true;
        assert!(refuse_open_exposure(&config).is_ok());
        config.insecure = false;
        config.credentials = ClientCredentials::new(
            TokenSet::default(),
            TokenSet::new([WRITE_TOKEN]),
            TokenSet::default(),
        );
        assert!(refuse_open_exposure(&config).is_ok());
    }
}
