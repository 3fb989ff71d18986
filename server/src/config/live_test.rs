//! Reloads of file-based credentials: rotation, a broken file keeping the set in
//! force, and what cannot change.

use super::*;
use crate::net::bearer::Scope;
use http::{header, HeaderMap, HeaderValue};
use std::path::{Path, PathBuf};

const OLD: &str = "write-old-0123456789abcdef";
const NEW: &str = "write-new-0123456789abcdef";
const SECRET_A: &str = "peer-secret-a-0123456789";
const SECRET_B: &str = "peer-secret-b-0123456789";

fn no_env(_: &str) -> Option<String> {
    None
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A config naming a write-token file and a peer-secret file in `dir`.
fn config(dir: &Path) -> (Config, PathBuf, PathBuf) {
    let tokens = dir.join("write.tokens");
    let secret = dir.join("peer.secret");
    write(&tokens, &format!("{OLD}\n"));
    write(&secret, &format!("{SECRET_A}\n"));
    let mut config = Config::default();
    config.auth.write_token_file = Some(tokens.clone());
    config.auth.peer_secret_file = Some(secret.clone());
    config.credentials = auth::client_credentials(&config, no_env).unwrap();
    config.peer_secret = secret::configured_peer_secret(&config).unwrap();
    (config, tokens, secret)
}

fn scope_of(live: &LiveCredentials, token: &str) -> Option<Scope> {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert(header::AUTHORIZATION, value);
    let grant = live.client().grant(&headers);
    grant.authenticated.then_some(grant.scope).flatten()
}

#[test]
fn a_rotation_adds_then_removes_a_token_and_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tokens, secret) = config(dir.path());
    let live = LiveCredentials::start(&config).unwrap();
    assert_eq!(scope_of(&live, OLD), Some(Scope::Admin));
    assert_eq!(scope_of(&live, NEW), None);
    assert_eq!(live.client_generation(), 0);

    write(&tokens, &format!("{OLD}\n{NEW}\n"));
    write(&secret, &format!("{SECRET_B}\n{SECRET_A}\n"));
    let report = live.reload_with(&config, no_env);
    assert_eq!(report.reloaded, [Group::ClientTokens, Group::PeerSecret]);
    assert!(report.failed.is_empty() && report.fixed.is_empty());
    assert_eq!(scope_of(&live, OLD), Some(Scope::Admin));
    assert_eq!(scope_of(&live, NEW), Some(Scope::Admin));
    assert_eq!(live.client_generation(), 1, "open streams re-check");
    let peer = live.peer_secret().unwrap();
    assert_eq!(peer.presented(), SECRET_B);
    assert!(peer.accepts(SECRET_A) && peer.accepts(SECRET_B));

    write(&tokens, &format!("{NEW}\n"));
    write(&secret, &format!("{SECRET_B}\n"));
    live.reload_with(&config, no_env);
    assert_eq!(scope_of(&live, OLD), None);
    assert_eq!(scope_of(&live, NEW), Some(Scope::Admin));
    assert!(!live.peer_secret().unwrap().accepts(SECRET_A));
    assert_eq!(live.reload_counts(), (4, 0));
}

#[test]
fn a_broken_file_keeps_its_group_in_force_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tokens, secret) = config(dir.path());
    let live = LiveCredentials::start(&config).unwrap();
    write(&tokens, "short\n");
    write(&secret, &format!("{SECRET_B}\n"));
    let report = live.reload_with(&config, no_env);
    assert_eq!(
        report.reloaded,
        [Group::PeerSecret],
        "the good file still changes"
    );
    let (group, error) = &report.failed[0];
    assert_eq!(*group, Group::ClientTokens);
    let text = error.to_string();
    assert!(text.starts_with("auth.write_token_file:"), "{text}");
    assert!(text.contains(&tokens.display().to_string()), "{text}");
    assert!(!text.contains("short"), "never the token itself: {text}");
    assert_eq!(scope_of(&live, OLD), Some(Scope::Admin), "old token kept");
    assert_eq!(live.reload_counts(), (1, 1));
    assert_eq!(
        live.client_generation(),
        0,
        "tokens kept: no stream re-checks"
    );

    std::fs::remove_file(&secret).unwrap();
    let report = live.reload_with(&config, no_env);
    let (group, error) = &report.failed[1];
    assert_eq!(*group, Group::PeerSecret);
    assert!(error.to_string().contains("cannot read"), "{error}");
    assert_eq!(live.peer_secret().unwrap().presented(), SECRET_B, "kept");
    write(&secret, "# nothing\n");
    let report = live.reload_with(&config, no_env);
    let text = report.failed[1].1.to_string();
    assert!(text.contains(&secret.display().to_string()), "{text}");
    assert_eq!(live.reload_counts(), (1, 5));
}

#[test]
fn credentials_from_the_environment_or_flags_are_fixed() {
    let mut config = Config {
        auth_token: Some("dev".into()),
        ..Config::default()
    };
    config.credentials = auth::client_credentials(&config, no_env).unwrap();
    let live = LiveCredentials::start(&config).unwrap();
    let env = |name: &str| {
        (name == "CONCORD_WRITE_TOKEN" || name == secret::PEER_SECRET_ENV)
            .then(|| "from-the-environment-0123".to_string())
    };
    // A peer secret file is named, but the environment wins: not reloaded.
    config.auth.peer_secret_file = Some("/nonexistent/peer.secret".into());
    let report = live.reload_with(&config, env);
    assert!(report.reloaded.is_empty() && report.failed.is_empty());
    assert_eq!(
        report.fixed,
        [
            "CONCORD_WRITE_TOKEN",
            secret::PEER_SECRET_ENV,
            "auth_token (--auth-token)"
        ]
    );
}
