//! The openraft type configuration of the topology service, and the names the
//! rest of the server uses for openraft's generic types.

use std::fmt;

use concord_model::ApplyError;
use concord_model::Command;
use openraft::BasicNode;
use serde::Deserialize;
use serde::Serialize;

use crate::raft::log_store::LogStore;
use crate::raft::runtime::GlommioRuntime;

/// Raft id of a topology server.
pub type NodeId = u64;

/// What one Raft log entry carries: one topology change set.
///
/// A newtype because openraft wants its application data to be `Display` (for its
/// logs) and the model's `Command` is not; the serde form is the `Command`'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopoRequest(pub Command);

impl fmt::Display for TopoRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "change set of {} op(s)", self.0.ops.len())?;
        if let Some(v) = self.0.expected_version {
            write!(f, " if at version {v}")?;
        }
        Ok(())
    }
}

/// Outcome of one committed change set: the new topology version, or why the model
/// refused it (a refused change set still occupies its log entry, and changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoResponse {
    /// `Ok(new version)` or the model's refusal.
    pub result: Result<u64, ApplyError>,
}

openraft::declare_raft_types!(
    /// openraft types of the topology service: u64 node ids, peers addressed by
    /// their peer address (`BasicNode::addr`), change sets as entries, on glommio.
    pub TopoConfig:
        D = TopoRequest,
        R = TopoResponse,
        NodeId = NodeId,
        Node = BasicNode,
        AsyncRuntime = GlommioRuntime,
);

/// The log store of a topology server.
pub type TopoLogStore = LogStore<TopoConfig>;
/// A Raft log id.
pub type LogId = openraft::type_config::alias::LogIdOf<TopoConfig>;
/// Membership as of a log id.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TopoConfig>;
/// Metadata of a state-machine snapshot.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TopoConfig>;
/// A state-machine snapshot with its data (sealed snapshot-file bytes).
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TopoConfig, Vec<u8>>;
