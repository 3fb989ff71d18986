//! The Raft transport between topology servers.
//!
//! A single-server cluster never sends an RPC; every peer is reported unreachable
//! until the HTTP peer transport (design §3: binary bodies over HTTP on the peer
//! port) replaces this, with the multi-server cluster.

use std::future::Future;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::VoteOf;
use openraft::{AnyError, BasicNode, OptionalSend};

use super::types::{Snapshot, TopoConfig};

/// Connections to the other topology servers.
#[derive(Clone, Debug, Default)]
pub struct PeerNetwork;

fn unreachable(target: u64) -> Unreachable<TopoConfig> {
    Unreachable::new(&AnyError::error(format!(
        "peer {target}: this build serves single-server clusters only"
    )))
}

impl RaftNetworkFactory<TopoConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> PeerClient {
        PeerClient { target }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    target: u64,
}

impl RaftNetworkV2<TopoConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TopoConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TopoConfig>, RPCError<TopoConfig>> {
        Err(RPCError::Unreachable(unreachable(self.target)))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TopoConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TopoConfig>, RPCError<TopoConfig>> {
        Err(RPCError::Unreachable(unreachable(self.target)))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TopoConfig>,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TopoConfig>, StreamingError<TopoConfig>> {
        Err(StreamingError::Unreachable(unreachable(self.target)))
    }
}
