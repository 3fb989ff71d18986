//! The one way an operation reaches the leader: try it here; when this server is
//! not the leader, call the leader's peer route for that operation once and return
//! its answer. Transport failures are mapped to [`ServiceError`]s here, once, for
//! every forwarded operation (write, read index, health round).
//!
//! The leader runs a forwarded operation with [`crate::service::LeaderSide::run_here`]
//! and never forwards it again, so a request makes at most one hop, and a leadership
//! change in flight is answered "no leader" (503, retry) rather than chased around
//! the cluster.

use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;

use super::handle::RaftHandle;
use super::peer_client::PeerError;
use crate::service::{Answer, ErrorKind, Operation, ServiceError};

impl RaftHandle {
    /// Runs `operation` with `here`; when that answers `NotLeaderHere` and the
    /// operation has a forward route, asks the leader instead (bounded by `timeout`).
    pub async fn on_leader<F, Fut>(
        &self,
        operation: Operation,
        timeout: Duration,
        here: F,
    ) -> Answer
    where
        F: FnOnce(Operation) -> Fut,
        Fut: Future<Output = Answer>,
    {
        let Some(route) = operation.forward_route() else {
            return here(operation).await;
        };
        let forwarded = operation.clone();
        match here(operation).await {
            Err(e) if e.kind == ErrorKind::NotLeaderHere => {
                self.forward(route, &forwarded, timeout, e).await
            }
            answer => answer,
        }
    }

    /// The leader's id and peer address, when one is known and it is not this server.
    fn leader_address(&self) -> Option<(u64, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let leader = m.current_leader.filter(|id| *id != self.node_id)?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((leader, addr))
    }

    async fn forward(
        &self,
        route: &'static str,
        operation: &Operation,
        timeout: Duration,
        not_here: ServiceError,
    ) -> Answer {
        let Some((leader, addr)) = self.leader_address() else {
            return Err(not_here.unforwarded());
        };
        let answer: Result<Answer, PeerError> =
            self.peers.call(&addr, route, operation, timeout).await;
        match answer {
            // The leader's own refusal, "not the leader" included (it does not forward).
            Ok(answer) => answer.map_err(ServiceError::unforwarded),
            Err(e) => Err(transport_error(
                leader,
                &e,
                operation.idempotent(),
                not_here,
            )),
        }
    }
}

/// What a failed call to the leader means to the caller.
fn transport_error(
    leader: u64,
    e: &PeerError,
    idempotent: bool,
    not_here: ServiceError,
) -> ServiceError {
    match e {
        PeerError::Timeout { timeout, .. } if !idempotent => ServiceError::write_timeout(*timeout),
        PeerError::Timeout { timeout, .. } => ServiceError::new(
            ErrorKind::Timeout,
            format!("the leader (node {leader}) did not answer within {timeout:?}"),
        )
        .retry(true),
        // Refused by the leader's peer port (a token or size mismatch): not run.
        PeerError::Status { .. } => ServiceError::unavailable(format!(
            "raft is unavailable: the leader (node {leader}) refused the forwarded request: {e}"
        ))
        .retry(idempotent),
        // Never reached the leader (down, restarting): nothing ran; to the client this
        // is the same as an election in progress, so it retries.
        e if e.not_delivered() => {
            tracing::debug!(error = %e, leader, "not forwarded to the leader");
            not_here.unforwarded()
        }
        e => ServiceError::unavailable(format!(
            "raft is unavailable: forwarding to the leader (node {leader}) failed, the outcome is unknown: {e}"
        ))
        .retry(idempotent),
    }
}
