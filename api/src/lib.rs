//! concord-api: the wire types of the topology service's HTTP API, shared by the
//! server, the client library and command-line tools.
//!
//! - [`backup`]: the backup file of `ctl snapshot save` and `concord-topo restore`.
//! - [`envelope`]: `Envelope<T>`, the `{success, message, version, ...}` shape of
//!   every JSON answer, success or error.
//! - [`requests`]: the JSON bodies of the write, membership and health-round routes.
//! - [`answers`]: the payloads flattened into the envelope (write answer, version,
//!   events page, stats, cluster status, health-round report).
//!
//! Payloads are generic over their collections where the server serializes borrowed
//! data (`ShardList<Vec<&ShardInfo>>`), so its hot read paths allocate nothing extra,
//! while a client deserializes the owned default (`ShardList` = `ShardList<Vec<ShardInfo>>`).

pub mod answers;
pub mod backup;
pub mod envelope;
pub mod requests;

pub use answers::{
    ClusterAnswer, ClusterStatus, EventsPage, HealthRoundResults, Member, MemberRole, NodeList,
    NodeResult, OneNode, OneShard, RoundReport, ShardList, SnapshotPage, Stats, VersionInfo,
};
pub use envelope::{Envelope, NoPayload};
pub use requests::{
    AddLearnerBody, BatchBody, BootstrapBody, CreateShardBody, EmptyBody, MembershipBody,
    MergeBody, MigrationBody, ProgressBody, PutNodeBody, SplitBody, UpdateShardBody,
};

/// The model's types that answers carry, so users of the API need one dependency.
pub use concord_model::{
    EventType, Health, KeyRange, NodeSpec, NodeStatus, ShardInfo, ShardStatus, TopologyEvent,
    TopologySnapshot,
};
