//! The control executor's Raft-tracking task and the process's fail-loudly rule.
//!
//! [`track_raft`] mirrors Raft's term and leader into the executors' `RaftView`, and
//! sets the durable floor (the read/SSE gate and `/readyz`) once it is known. When
//! Raft stops (a fatal storage error, a panic on the control executor), the server
//! turns not-ready at once, logs one ERROR line saying why, and exits non-zero after
//! `raft.fatal_exit_grace`, so that its supervisor restarts it on its data directory
//! instead of it serving a frozen state forever. [`report_not_ready`] says in the log,
//! every few seconds, why a server is not ready.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::executor::Shared;
use crate::notify::leader_loss;
use crate::raft::RaftHandle;

/// Exit status of a server whose Raft stopped (1: could not start, 2: bad configuration).
pub const EXIT_RAFT_STOPPED: i32 = 3;

/// How often a server that is not ready logs why.
const NOT_READY_REPORT: Duration = Duration::from_secs(5);

/// Follows Raft's metrics for the life of the process.
pub async fn track_raft(raft: Rc<RaftHandle>, shared: Arc<Shared>) {
    let floor = raft.durable_floor();
    let mut watch = raft.watch();
    loop {
        let view = watch.summary();
        leader_loss::refresh(&raft, &shared);
        shared
            .raft
            .update(view.term, view.leader, view.is_leader, view.applied_index);
        if let Some(index) = floor.resolve(view.cluster_committed) {
            shared.readiness.set_floor(index);
        }
        if let Some(reason) = watch.stopped() {
            return exit_after_grace(&shared, reason).await;
        }
        if !watch.changed().await {
            let reason = "openraft stopped reporting (its metrics channel closed)".to_string();
            return exit_after_grace(&shared, reason).await;
        }
    }
}

/// Raft stopped: not ready and writes refused from now on, then exit.
async fn exit_after_grace(shared: &Shared, reason: String) {
    if let Some(grace) = announce_stop(shared, reason) {
        glommio::timer::sleep(grace).await;
        std::process::exit(EXIT_RAFT_STOPPED);
    }
}

/// Marks Raft stopped for `/readyz` and logs the one ERROR line; the grace period to
/// wait before exiting, or `None` when the stop was already announced.
pub fn announce_stop(shared: &Shared, reason: String) -> Option<Duration> {
    let grace = shared.config.raft.fatal_exit_grace;
    if !shared.readiness.stop(reason.clone()) {
        return None;
    }
    tracing::error!(
        "raft stopped: {reason}; this server is not ready and exits with status {EXIT_RAFT_STOPPED} in {grace:?}, for its supervisor to restart it"
    );
    Some(grace)
}

/// Logs every few seconds why this server is not ready (loading, no leader heard,
/// raft stopped), while it is not.
pub async fn report_not_ready(shared: Arc<Shared>) {
    loop {
        glommio::timer::sleep(NOT_READY_REPORT).await;
        let published = shared.hub.latest();
        let leader_known = shared.raft.leader() != 0;
        if let Some(why) = shared.readiness.not_ready(&published, leader_known) {
            tracing::warn!("not ready: {why}");
        }
    }
}
