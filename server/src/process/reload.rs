//! The reload trigger: SIGHUP (`systemctl reload`, `kill -HUP`) makes the server
//! re-read its credential files ([`LiveCredentials::reload`]). The handler is
//! installed first thing at start, so a SIGHUP during start-up is held for the
//! reload thread rather than killing the process (the signal's default action).
//! A reload that replaced the client tokens wakes every executor's event streams,
//! which then end those whose token no longer grants reads.

use std::sync::Arc;

use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;

use crate::config::live::Group;
use crate::executor::Shared;

/// SIGHUP caught from now on; [`ReloadSignal::serve`] acts on it.
pub struct ReloadSignal {
    signals: Signals,
}

impl ReloadSignal {
    /// Installs the handler. Failing to is not fatal: the server runs, and SIGHUP
    /// keeps its default action.
    pub fn install() -> Option<ReloadSignal> {
        match Signals::new([SIGHUP]) {
            Ok(signals) => Some(ReloadSignal { signals }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch SIGHUP: credentials reload only with a restart");
                None
            }
        }
    }

    /// Reloads the credentials on every SIGHUP, on a thread of its own (file reads
    /// and PEM parsing stay off the executors), for the life of the process.
    pub fn serve(mut self, shared: Arc<Shared>) {
        let spawned = std::thread::Builder::new()
            .name("concord-reload".into())
            .spawn(move || {
                for _ in self.signals.forever() {
                    tracing::info!("SIGHUP: reloading credentials");
                    let report = shared.credentials.reload(&shared.config);
                    if report.reloaded.contains(&Group::ClientTokens) {
                        // Each stream checks its token at its next pass (`notify::feed`).
                        shared.hub.poke();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the reload thread: SIGHUP is ignored");
        }
    }
}
