//! Request bodies of the routes that change something. Unknown fields are refused
//! (a typo must not be silently ignored); field names are camelCase on the wire.

use std::collections::{BTreeMap, BTreeSet};

use concord_model::{HashPoint, KeyRange, NodeSpec, Operation, ShardStatus};
use serde::{Deserialize, Serialize};

/// `PUT /api/topology/nodes/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutNodeBody {
    pub address: String,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `POST /api/topology/shards`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateShardBody {
    pub shard_id: String,
    pub key_range: KeyRange,
    pub primary_node: String,
    #[serde(default)]
    pub replica_nodes: Vec<String>,
}

/// `PUT /api/topology/shards/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateShardBody {
    pub primary_node: Option<String>,
    pub replica_nodes: Option<Vec<String>>,
    pub status: Option<ShardStatus>,
}

/// `POST /api/topology/shards/{id}/split` (the body is optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SplitBody {
    pub at: Option<HashPoint>,
    pub new_shard_id: Option<String>,
}

/// `POST /api/topology/shards/{id}/merge`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    pub with: String,
}

/// `POST /api/topology/shards/{id}/migration`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationBody {
    pub from: String,
    pub to: String,
}

/// `POST /api/topology/shards/{id}/migration/progress`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    pub percent: u8,
}

/// Routes whose input is the path alone: an empty body or `{}`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// `POST /api/topology/bootstrap`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapBody {
    pub nodes: Vec<NodeSpec>,
    pub shard_count: u32,
    pub replication_factor: u32,
}

/// `POST /api/topology/batch`: operations applied as one change set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub operations: Vec<Operation>,
}

/// `POST /api/cluster/learners`: `{"nodeId": 4, "address": "10.0.0.4:7071", "wait": true}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddLearnerBody {
    pub node_id: u64,
    /// The new server's (advertised) peer address.
    pub address: String,
    /// Answer only once the learner has caught up with the leader's log.
    #[serde(default)]
    pub wait: bool,
}

/// `POST /api/cluster/membership`: `{"members": [1, 2, 4]}`, the voters after the change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipBody {
    pub members: Vec<u64>,
}

impl MembershipBody {
    /// The voter set, or the message naming the duplicate when an id is listed twice.
    pub fn voters(&self) -> Result<BTreeSet<u64>, String> {
        let voters: BTreeSet<u64> = self.members.iter().copied().collect();
        if voters.len() == self.members.len() {
            Ok(voters)
        } else {
            Err("invalid body: field `members`: a node id is listed twice".into())
        }
    }
}
