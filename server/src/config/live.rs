//! The credentials in force, and their reload: client tokens, the peer secret, and the
//! rustls configurations of both ports, each swapped whole (arc-swap) when a reload
//! of its files validates, so an executor reads the set in force with one atomic load
//! and no request ever sees half of a rotation.
//!
//! A reload re-reads only what comes from files (`auth.*_file`, `tls:`, `peer_tls:`),
//! each group on its own: a file that fails validation keeps its group's credentials
//! in force (logged, counted), the others still change. Tokens from the environment,
//! the development `auth_token` and a generated peer secret cannot change without a
//! restart. The trigger (SIGHUP) lives in the process wiring.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption, Guard};

use super::{auth, secret, Config, ConfigError, PeerSecret};
use crate::net::bearer::ClientCredentials;
use crate::net::tls::PeerTls;

/// The credentials every connection and request checks against, replaceable at run time.
pub struct LiveCredentials {
    client: ArcSwap<ClientCredentials>,
    /// Bumped after each swap of `client`: long-lived streams re-check the token
    /// they opened with when it moves.
    client_generation: AtomicU64,
    peer_secret: ArcSwapOption<PeerSecret>,
    client_tls: ArcSwapOption<rustls::ServerConfig>,
    peer_tls: ArcSwapOption<PeerTls>,
    reloaded: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for LiveCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCredentials(redacted)")
    }
}

/// One group of credentials a reload replaces whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    ClientTokens,
    PeerSecret,
    ClientTls,
    PeerTls,
}

impl Group {
    const ALL: [Group; 4] = [
        Group::ClientTokens,
        Group::PeerSecret,
        Group::ClientTls,
        Group::PeerTls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::ClientTokens => "client tokens",
            Group::PeerSecret => "peer secret",
            Group::ClientTls => "client-port TLS certificate",
            Group::PeerTls => "peer TLS certificate",
        }
    }

    /// True when this group's credentials come from files a reload can re-read.
    fn comes_from_files(self, config: &Config, env: &impl Fn(&str) -> Option<String>) -> bool {
        let auth = &config.auth;
        match self {
            Group::ClientTokens => {
                auth.read_token_file.is_some()
                    || auth.write_token_file.is_some()
                    || auth.admin_token_file.is_some()
            }
            Group::PeerSecret => {
                auth.peer_secret_file.is_some()
                    && env(secret::PEER_SECRET_ENV).is_none_or(|v| v.is_empty())
            }
            Group::ClientTls => config.tls.cert_file.is_some(),
            Group::PeerTls => config.peer_tls.cert_file.is_some(),
        }
    }
}

/// What one reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub reloaded: Vec<Group>,
    /// Each group whose files failed validation, with the reason (naming the file).
    pub failed: Vec<(Group, ConfigError)>,
    /// Credentials that cannot change without a restart (environment, flags).
    pub fixed: Vec<&'static str>,
}

impl LiveCredentials {
    /// The credentials `config` holds at start (the peer secret possibly generated),
    /// with both ports' TLS configurations loaded from their files.
    pub fn start(config: &Config) -> Result<LiveCredentials, ConfigError> {
        Ok(LiveCredentials {
            client: ArcSwap::from_pointee(config.credentials.clone()),
            client_generation: AtomicU64::new(0),
            peer_secret: ArcSwapOption::new(config.peer_secret.clone().map(Arc::new)),
            client_tls: ArcSwapOption::new(config.tls.server_config()?),
            peer_tls: ArcSwapOption::new(config.peer_tls.load()?.map(Arc::new)),
            reloaded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// The client tokens in force.
    pub fn client(&self) -> Guard<Arc<ClientCredentials>> {
        self.client.load()
    }

    /// How many times the client tokens were replaced. Tokens loaded after reading
    /// generation N are those of N or newer (bumped after each swap).
    pub fn client_generation(&self) -> u64 {
        self.client_generation.load(Acquire)
    }

    /// The peer secret in force (`None` only in an `insecure` cluster).
    pub fn peer_secret(&self) -> Option<Arc<PeerSecret>> {
        self.peer_secret.load_full()
    }

    /// The client port's TLS configuration in force, `None` for plain HTTP.
    pub fn client_tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.client_tls.load_full()
    }

    /// Both ends of peer mutual TLS in force, `None` for plain HTTP between servers.
    pub fn peer_tls(&self) -> Option<Arc<PeerTls>> {
        self.peer_tls.load_full()
    }

    /// Groups reloaded and groups whose reload failed, since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloaded.load(Relaxed), self.failed.load(Relaxed))
    }

    /// Re-reads every file-based group of `config` and swaps in each that validates;
    /// logs one line per failed group and one summary line.
    pub fn reload(&self, config: &Config) -> ReloadReport {
        let report = self.reload_with(config, |name| std::env::var(name).ok());
        for (group, error) in &report.failed {
            tracing::error!(
                "credential reload: {} not reloaded, the ones in force are kept: {error}",
                group.as_str()
            );
        }
        let names = |groups: &mut dyn Iterator<Item = Group>| {
            groups.map(Group::as_str).collect::<Vec<_>>().join(", ")
        };
        let fixed = report.fixed.join(", ");
        if report.reloaded.is_empty() && report.failed.is_empty() {
            tracing::warn!(
                fixed = %fixed,
                "credential reload: no credential comes from a file; tokens from the \
                 environment or --auth-token and a generated peer secret change only with a restart"
            );
        } else if !report.reloaded.is_empty() {
            tracing::info!(
                reloaded = %names(&mut report.reloaded.iter().copied()),
                failed = %names(&mut report.failed.iter().map(|(g, _)| *g)),
                fixed = %fixed,
                "credentials reloaded"
            );
        }
        report
    }

    /// [`LiveCredentials::reload`] with `env` looking up the environment, logging nothing.
    pub fn reload_with(
        &self,
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> ReloadReport {
        let mut report = ReloadReport {
            fixed: fixed_sources(config, &env),
            ..ReloadReport::default()
        };
        for group in Group::ALL
            .into_iter()
            .filter(|g| g.comes_from_files(config, &env))
        {
            match self.reload_group(group, config, &env) {
                Ok(()) => {
                    self.reloaded.fetch_add(1, Relaxed);
                    report.reloaded.push(group);
                }
                Err(e) => {
                    self.failed.fetch_add(1, Relaxed);
                    report.failed.push((group, e));
                }
            }
        }
        report
    }

    fn reload_group(
        &self,
        group: Group,
        config: &Config,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        match group {
            Group::ClientTokens => {
                let fresh = auth::client_credentials(config, env)?;
                self.client.store(Arc::new(fresh));
                self.client_generation.fetch_add(1, Release);
            }
            Group::PeerSecret => {
                let fresh = secret::peer_secret_of_file(config)?;
                self.peer_secret.store(Some(Arc::new(fresh)));
            }
            Group::ClientTls => self.client_tls.store(config.tls.server_config()?),
            Group::PeerTls => self.peer_tls.store(config.peer_tls.load()?.map(Arc::new)),
        }
        Ok(())
    }
}

/// Credential sources a reload cannot change, by name (never their values).
fn fixed_sources(config: &Config, env: &impl Fn(&str) -> Option<String>) -> Vec<&'static str> {
    let mut fixed: Vec<&'static str> = auth::TOKEN_ENV_VARS
        .iter()
        .copied()
        .filter(|name| env(name).is_some())
        .collect();
    if env(secret::PEER_SECRET_ENV).is_some_and(|v| !v.is_empty()) {
        fixed.push(secret::PEER_SECRET_ENV);
    }
    if config.auth_token.is_some() {
        fixed.push("auth_token (--auth-token)");
    }
    if config.auth.peer_secret_file.is_none() && config.peer_secret.is_some() {
        fixed.push("the generated peer secret");
    }
    fixed
}

#[cfg(test)]
#[path = "live_test.rs"]
mod tests;
