//! The Raft transport between topology servers: openraft's `RaftNetworkV2` over the
//! HTTP peer client ([`super::peer_client`]), binary (postcard) bodies.
//!
//! openraft makes one [`PeerClient`] per peer and purpose (replication, heartbeats,
//! snapshots, each election's votes); all of them share the server's [`PeerPool`],
//! so connections are reused across clients. Each RPC is bounded by the timeout
//! openraft hands it ([`RPCOption::soft_ttl`]), with one exception, see
//! [`PeerClient::append_timeout`]. Failures map onto openraft's error kinds so it
//! backs off from a dead peer (`Unreachable`) and retries a timed-out one. A follower
//! that answers as if it had lost entries it acknowledged is kept out the same way
//! ([`super::lost_log`]).

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::VoteOf;
use openraft::{BasicNode, OptionalSend};

use super::lost_log::{AckLedger, LostLog};
use super::peer_client::{PeerError, PeerPool};
use super::types::{Snapshot, TopoConfig};
use super::wire;

/// Creates the connections to the other topology servers.
#[derive(Clone)]
pub struct PeerNetwork {
    pool: Rc<PeerPool>,
    node_id: u64,
    /// Lower bound of the deadline of an append that carries entries.
    append_floor: Duration,
    /// What each peer acknowledged in this server's term as leader.
    acknowledged: Rc<AckLedger>,
    /// Followers found to have lost acknowledged entries (once per peer and term).
    lost_logs: Arc<AtomicU64>,
}

impl PeerNetwork {
    /// `append_floor` is the least time an append carrying entries is given (see
    /// [`PeerClient::append_timeout`]); the election timeout is a good value.
    /// `lost_logs` counts the followers found to have lost acknowledged entries.
    pub fn new(
        pool: Rc<PeerPool>,
        node_id: u64,
        append_floor: Duration,
        lost_logs: Arc<AtomicU64>,
    ) -> PeerNetwork {
        PeerNetwork {
            pool,
            node_id,
            append_floor,
            acknowledged: Rc::default(),
            lost_logs,
        }
    }
}

impl RaftNetworkFactory<TopoConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            network: self.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    network: PeerNetwork,
    target: u64,
    addr: String,
}

impl PeerClient {
    /// The deadline of one AppendEntries.
    ///
    /// openraft gives replication RPCs the heartbeat interval (50 ms by default). A
    /// heartbeat (no entries) keeps it: a late heartbeat is worthless. An append with
    /// entries makes the follower fsync before it answers, which on a busy disk can
    /// take longer than a heartbeat interval; cutting it off would only drop the
    /// connection and resend the same entries, so it gets at least `append_floor`.
    fn append_timeout(
        &self,
        rpc: &AppendEntriesRequest<TopoConfig>,
        option: &RPCOption,
    ) -> Duration {
        if rpc.entries.is_empty() {
            option.soft_ttl()
        } else {
            option.soft_ttl().max(self.network.append_floor)
        }
    }

    fn rpc_error(&self, action: RPCTypes, error: PeerError) -> RPCError<TopoConfig> {
        match error {
            PeerError::Timeout { timeout, .. } => RPCError::Timeout(Timeout {
                action,
                id: self.network.node_id,
                target: self.target,
                timeout,
            }),
            // A broken connection: retrying at once on a new one is reasonable.
            e @ PeerError::Http { .. } => RPCError::Network(NetworkError::new(&e)),
            // Down, refusing, misconfigured or speaking garbage: back off.
            e => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }

    /// Records what an answer to `rpc` says the peer holds; a `Conflict` that
    /// contradicts what it acknowledged in this term becomes an error.
    fn check_append(
        &self,
        rpc: &AppendEntriesRequest<TopoConfig>,
        answer: &AppendEntriesResponse<TopoConfig>,
    ) -> Result<(), RPCError<TopoConfig>> {
        let ledger = &self.network.acknowledged;
        let term = rpc.vote.leader_id().term;
        let prev = rpc.prev_log_id.as_ref().map(|id| id.index);
        match answer {
            AppendEntriesResponse::Success => {
                let last = rpc.entries.last().map(|e| e.log_id.index).or(prev);
                if let Some(last) = last {
                    ledger.acknowledged(self.target, term, last);
                }
            }
            AppendEntriesResponse::PartialSuccess(Some(id)) => {
                ledger.acknowledged(self.target, term, id.index);
            }
            AppendEntriesResponse::Conflict => {
                if let Some(prev) = prev {
                    if let Some(lost) = ledger.conflict(self.target, term, prev) {
                        return Err(self.lost_log(lost, prev));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The error that keeps a follower which lost acknowledged entries out (openraft
    /// would stop this leader on it); logged and counted once per peer and term.
    fn lost_log(&self, lost: LostLog, conflict_at: u64) -> RPCError<TopoConfig> {
        let message = format!(
            "peer {} ({}) lost log entries it had acknowledged: it acknowledged up to index {} \
             in this term and now lacks index {conflict_at}; its data directory was lost or \
             restored from an older copy. It is kept out of replication; replace it under a \
             new node id (README, \"Replacing a failed server\")",
            self.target, self.addr, lost.acknowledged
        );
        if lost.first_report {
            self.network.lost_logs.fetch_add(1, Relaxed);
            tracing::error!("{message}");
        }
        RPCError::Unreachable(Unreachable::from_string(message))
    }

    /// The remote Raft answered with a failure (it is shutting down or hit a fatal
    /// storage error): nothing to retry soon.
    fn remote_failure(&self, message: String) -> RPCError<TopoConfig> {
        RPCError::Unreachable(Unreachable::from_string(format!(
            "peer {} ({}) failed: {message}",
            self.target, self.addr
        )))
    }

    async fn unary<Req, Resp>(
        &self,
        action: RPCTypes,
        path: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TopoConfig>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let answer: Result<Resp, String> = self
            .network
            .pool
            .call(&self.addr, path, request, timeout)
            .await
            .map_err(|e| self.rpc_error(action, e))?;
        answer.map_err(|message| self.remote_failure(message))
    }
}

impl RaftNetworkV2<TopoConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TopoConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TopoConfig>, RPCError<TopoConfig>> {
        let timeout = self.append_timeout(&rpc, &option);
        let answer = self
            .unary(RPCTypes::AppendEntries, wire::APPEND, &rpc, timeout)
            .await?;
        self.check_append(&rpc, &answer)?;
        Ok(answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TopoConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TopoConfig>, RPCError<TopoConfig>> {
        self.unary(RPCTypes::Vote, wire::VOTE, &rpc, option.soft_ttl())
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TopoConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TopoConfig>, RPCError<TopoConfig>> {
        self.unary(RPCTypes::Vote, wire::PRE_VOTE, &rpc, option.soft_ttl())
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TopoConfig>,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TopoConfig>, StreamingError<TopoConfig>> {
        let request = wire::SnapshotRequest {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let send = async {
            self.unary(
                RPCTypes::InstallSnapshot,
                wire::SNAPSHOT,
                &request,
                option.soft_ttl(),
            )
            .await
            .map_err(StreamingError::from)
        };
        futures_lite::future::or(send, async { Err(StreamingError::Closed(cancel.await)) }).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TopoConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TopoConfig>, RPCError<TopoConfig>> {
        self.unary(
            RPCTypes::TransferLeader,
            wire::TRANSFER_LEADER,
            &req,
            option.soft_ttl(),
        )
        .await
    }
}
