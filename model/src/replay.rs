//! Client-side replay of one server event onto a [`Stage`]: upsert the entity's new
//! state, or delete it on ShardRemove / NodeLeave. Events are checked as they are
//! replayed, so a corrupt or out-of-order stream is refused rather than stored.

use crate::event::{EntityValue, EventType, TopologyEvent};
use crate::stage::Stage;
use crate::state::check_shard;
use crate::validate::{check_id, quoted};

pub(crate) fn apply_event(st: &mut Stage<'_>, e: &TopologyEvent) -> Result<(), String> {
    match e.event_type {
        EventType::ShardRemove => {
            let id = e
                .shard_id
                .as_deref()
                .or(e.shard().map(|s| s.shard_id.as_str()))
                .ok_or("it names no shard")?;
            st.remove_shard(id);
            Ok(())
        }
        EventType::NodeLeave => {
            let id = e
                .node_id
                .as_deref()
                .or(e.node().map(|n| n.node_id.as_str()))
                .ok_or("it names no node")?;
            st.remove_node(id)?;
            Ok(())
        }
        _ => match &e.new_value {
            Some(EntityValue::Shard(s)) => {
                if e.shard_id.as_ref().is_some_and(|id| *id != s.shard_id) {
                    return Err(format!(
                        "shardId does not match newValue.shardId {}",
                        quoted(&s.shard_id)
                    ));
                }
                check_id(&s.shard_id).map_err(|d| format!("newValue.shardId: {d}"))?;
                check_shard(s, &st.nodes).map_err(|(f, d)| format!("newValue.{f}: {d}"))?;
                st.put_shard(s.as_ref().clone())
            }
            Some(EntityValue::Node(n)) => {
                if e.node_id.as_ref().is_some_and(|id| *id != n.node_id) {
                    return Err(format!(
                        "nodeId does not match newValue.nodeId {}",
                        quoted(&n.node_id)
                    ));
                }
                check_id(&n.node_id).map_err(|d| format!("newValue.nodeId: {d}"))?;
                st.put_node(n.as_ref().clone());
                Ok(())
            }
            None => Err("it has no newValue".into()),
        },
    }
}
