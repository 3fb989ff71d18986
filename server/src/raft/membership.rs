//! Membership changes of the topology cluster: add a learner, change the voters.
//!
//! Only the leader changes membership; a follower answers `NotLeader` (the HTTP front
//! says 421 and names the leader) instead of forwarding, because an operator
//! changing membership should know which server decided it. Every request is checked
//! against the current membership before openraft sees it, so an unknown id, an
//! empty voter set or an address clash is refused whole with a message naming it;
//! openraft then runs the change itself with joint consensus (two log entries)
//! and either commits it or leaves the old membership in place.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};

use super::handle::RaftHandle;
use super::types::TopoConfig;
use crate::service::{ErrorKind, ServiceError};
use concord_api::ClusterStatus;

/// How often catch-up progress is looked at while waiting for a learner.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

impl RaftHandle {
    /// Adds `node_id` at peer `address` as a learner (re-adding one at the same address
    /// is harmless); with `wait`, returns once it has replicated the leader's log as it
    /// stood when it was added, or fails with `Timeout` after `timeout`.
    pub async fn add_learner(
        &self,
        node_id: u64,
        address: &str,
        wait: bool,
        timeout: Duration,
    ) -> Result<ClusterStatus, ServiceError> {
        let deadline = Instant::now() + timeout;
        self.ensure_leader()?;
        if node_id == 0 {
            return Err(invalid("nodeId must be a positive integer"));
        }
        let parsed: SocketAddr = address.parse().map_err(|_| {
            invalid(format!(
                "address `{address}` is not the peer address (IP:PORT) of the new server"
            ))
        })?;
        {
            let metrics = self.raft.metrics();
            let m = openraft::async_runtime::watch::WatchReceiver::borrow_watched(&metrics);
            let membership = m.membership_config.membership();
            if membership.voter_ids().any(|id| id == node_id) {
                return Err(conflict(format!("node {node_id} is already a voter")));
            }
            for (id, node) in membership.nodes() {
                let same_addr = node.addr.parse::<SocketAddr>().ok() == Some(parsed);
                if *id == node_id && !same_addr {
                    return Err(conflict(format!(
                        "node {node_id} is already a learner at {}; remove it (POST /api/cluster/membership without it) before adding it at {address}",
                        node.addr
                    )));
                }
                if *id != node_id && same_addr {
                    return Err(conflict(format!("address {address} belongs to node {id}")));
                }
            }
        }
        let added = self
            .raft
            .add_learner(node_id, BasicNode::new(parsed.to_string()), false);
        let response = bounded(deadline, timeout, added)
            .await?
            .map_err(membership_error)?;
        if wait {
            let target = response.log_id.index;
            self.wait_caught_up(node_id, target, deadline, timeout)
                .await?;
        }
        Ok(self.status())
    }

    /// Makes `voters` the voting members: learners among them are promoted, current
    /// voters left out are removed from the cluster. Returns once the final
    /// membership is committed.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<u64>,
        timeout: Duration,
    ) -> Result<ClusterStatus, ServiceError> {
        let deadline = Instant::now() + timeout;
        self.ensure_leader()?;
        if voters.is_empty() {
            return Err(invalid("members must list at least one node id"));
        }
        {
            let metrics = self.raft.metrics();
            let m = openraft::async_runtime::watch::WatchReceiver::borrow_watched(&metrics);
            let membership = m.membership_config.membership();
            let known: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
            let unknown: Vec<String> = voters
                .iter()
                .filter(|id| !known.contains(id))
                .map(u64::to_string)
                .collect();
            if !unknown.is_empty() {
                return Err(invalid(format!(
                    "node {} {} not a member of the cluster; add it as a learner first (POST /api/cluster/learners)",
                    unknown.join(", "),
                    if unknown.len() == 1 { "is" } else { "are" }
                )));
            }
            let current: BTreeSet<u64> = membership.voter_ids().collect();
            if current == voters && membership.get_joint_config().len() == 1 {
                return Ok(self.status());
            }
        }
        let changed = self.raft.change_membership(voters, false);
        bounded(deadline, timeout, changed)
            .await?
            .map_err(membership_error)?;
        Ok(self.status())
    }

    /// Refuses with `NotLeader` (naming the leader when known) unless this node leads.
    fn ensure_leader(&self) -> Result<(), ServiceError> {
        let metrics = self.raft.metrics();
        let m = openraft::async_runtime::watch::WatchReceiver::borrow_watched(&metrics);
        if m.state == ServerState::Leader {
            return Ok(());
        }
        let leader_id = m.current_leader;
        let leader_addr = leader_id.and_then(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        Err(not_leader(leader_id, leader_addr))
    }

    /// Waits until the leader has replicated up to `target` to learner `node_id`.
    async fn wait_caught_up(
        &self,
        node_id: u64,
        target: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), ServiceError> {
        loop {
            {
                let metrics = self.raft.metrics();
                let m = openraft::async_runtime::watch::WatchReceiver::borrow_watched(&metrics);
                if m.state != ServerState::Leader {
                    return Err(not_leader(m.current_leader, None));
                }
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&node_id))
                    .and_then(|l| l.as_ref())
                    .map(|l| l.index);
                if matched.is_some_and(|i| i >= target) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(timed_out(timeout));
            }
            glommio::timer::sleep(CATCH_UP_POLL).await;
        }
    }
}

/// Runs `work` until `deadline` (`timeout` after the request began); `Timeout` past
/// it (the change may still complete).
async fn bounded<T>(
    deadline: Instant,
    timeout: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, ServiceError> {
    let left = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(async { Ok(work.await) }, async {
        glommio::timer::sleep(left).await;
        Err(timed_out(timeout))
    })
    .await
}

fn membership_error(e: RaftError<TopoConfig, ClientWriteError<TopoConfig>>) -> ServiceError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            not_leader(f.leader_id, f.leader_node.map(|n| n.addr))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::EmptyMembership(_)
            | ChangeMembershipError::LearnerNotFound(_) => invalid(c.to_string()),
            other => conflict(other.to_string()),
        },
        RaftError::APIError(other) => unavailable(other.to_string()),
        RaftError::Fatal(f) => unavailable(f.to_string()),
    }
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::BadRequest, message)
}

fn conflict(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::Conflict, message)
}

fn timed_out(timeout: Duration) -> ServiceError {
    ServiceError::new(
        ErrorKind::Timeout,
        format!(
            "the membership change did not complete within {timeout:?}; check /api/cluster/status"
        ),
    )
    .retry(true)
}

fn unavailable(message: impl std::fmt::Display) -> ServiceError {
    ServiceError::unavailable(format!("raft is unavailable: {message}")).retry(true)
}

/// Membership changes are decided by the leader and never forwarded: name it (421),
/// or, when none is known, advise a retry.
fn not_leader(leader_id: Option<u64>, leader_addr: Option<String>) -> ServiceError {
    let hint = match (leader_id, &leader_addr) {
        (Some(id), Some(addr)) => format!(" (node {id}, peer address {addr})"),
        _ => " (none is known right now; retry shortly)".to_string(),
    };
    let message =
        format!("this server is not the leader; send membership changes to the leader{hint}");
    match leader_id {
        Some(leader) => ServiceError::new(ErrorKind::NotLeader { leader }, message),
        None => ServiceError::no_leader(message),
    }
}
