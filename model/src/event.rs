//! Topology events: what one change set did, entity by entity. Each event carries
//! the whole new state of its entity (`newValue`), so applying one twice is harmless.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::types::{NodeStatus, ShardInfo};

/// Event type names are the SSE `event:` names and the `eventTypes=` filter values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    NodeJoin,
    NodeLeave,
    NodeHealthChange,
    ShardAdd,
    ShardRemove,
    ShardMove,
    ShardSplit,
    ShardMerge,
    LeaderChange,
    ConfigChange,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::NodeJoin,
        EventType::NodeLeave,
        EventType::NodeHealthChange,
        EventType::ShardAdd,
        EventType::ShardRemove,
        EventType::ShardMove,
        EventType::ShardSplit,
        EventType::ShardMerge,
        EventType::LeaderChange,
        EventType::ConfigChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NodeJoin => "NodeJoin",
            EventType::NodeLeave => "NodeLeave",
            EventType::NodeHealthChange => "NodeHealthChange",
            EventType::ShardAdd => "ShardAdd",
            EventType::ShardRemove => "ShardRemove",
            EventType::ShardMove => "ShardMove",
            EventType::ShardSplit => "ShardSplit",
            EventType::ShardMerge => "ShardMerge",
            EventType::LeaderChange => "LeaderChange",
            EventType::ConfigChange => "ConfigChange",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}; expected one of NodeJoin, NodeLeave, NodeHealthChange, ShardAdd, ShardRemove, ShardMove, ShardSplit, ShardMerge, LeaderChange, ConfigChange")]
pub struct ParseEventTypeError(pub String);

impl FromStr for EventType {
    type Err = ParseEventTypeError;

    /// Exact names; ASCII case is ignored so `eventTypes=shardadd` works too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseEventTypeError(s.to_string()))
    }
}

/// The state of the entity an event is about; which one is told by its fields
/// (`shardId` or `nodeId`), as the wire form has no tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, remote = "Self")]
pub enum EntityValue {
    Shard(Box<ShardInfo>),
    Node(Box<NodeStatus>),
}

crate::codec::json_in_binary!(EntityValue);

impl EntityValue {
    pub fn as_shard(&self) -> Option<&ShardInfo> {
        match self {
            EntityValue::Shard(s) => Some(s),
            EntityValue::Node(_) => None,
        }
    }

    pub fn as_node(&self) -> Option<&NodeStatus> {
        match self {
            EntityValue::Node(n) => Some(n),
            EntityValue::Shard(_) => None,
        }
    }
}

impl From<ShardInfo> for EntityValue {
    fn from(s: ShardInfo) -> Self {
        EntityValue::Shard(Box::new(s))
    }
}

impl From<NodeStatus> for EntityValue {
    fn from(n: NodeStatus) -> Self {
        EntityValue::Node(Box::new(n))
    }
}

/// One entity change of a change set. All events of a change set share its
/// `version` and `timestamp`, and come in the order the operations made them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct TopologyEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub version: u64,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// The state before, when there was one (updates and removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_value: Option<EntityValue>,
    /// The whole state after; absent only for removals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<EntityValue>,
}

crate::codec::json_in_binary!(TopologyEvent);

impl TopologyEvent {
    /// The shard state this event carries (new value, else old value).
    pub fn shard(&self) -> Option<&ShardInfo> {
        self.new_value
            .as_ref()
            .or(self.old_value.as_ref())
            .and_then(EntityValue::as_shard)
    }

    /// The node state this event carries (new value, else old value).
    pub fn node(&self) -> Option<&NodeStatus> {
        self.new_value
            .as_ref()
            .or(self.old_value.as_ref())
            .and_then(EntityValue::as_node)
    }
}
