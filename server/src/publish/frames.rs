//! Server-Sent Events frames, encoded once per version on the control executor and
//! shared (reference-counted) by every subscriber on every executor.
//!
//! Wire form: `event:` is the event type, `data:` the event JSON on one
//! line, and `id:` (the version) only on the last event of a change set, so that a
//! client resuming from its last id never splits a version.

use std::fmt::Write;

use bytes::Bytes;
use concord_model::{EventType, TopologyEvent, TopologySnapshot};

/// One event of a change set: `event:` + `data:` lines and the blank line.
#[derive(Debug)]
pub struct EventFrame {
    pub kind: EventType,
    pub frame: Bytes,
}

/// Every event of one version (one change set), in order.
///
/// The `id:` line is kept apart and sent just before the last event a subscriber
/// gets of the version (field order inside an SSE block is free), so each event's
/// JSON is held once whatever the subscribers' filters.
#[derive(Debug)]
pub struct VersionFrames {
    pub version: u64,
    pub id_line: Bytes,
    pub events: Vec<EventFrame>,
}

fn frame(kind: &str, id: Option<u64>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "event: {kind}");
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

impl VersionFrames {
    /// Encodes the events of one version (all must carry `version`).
    pub fn encode(version: u64, events: &[TopologyEvent]) -> VersionFrames {
        let events = events
            .iter()
            .map(|event| {
                let json = serde_json::to_string(event).expect("events always serialize");
                EventFrame {
                    kind: event.event_type,
                    frame: frame(event.event_type.as_str(), None, &json),
                }
            })
            .collect();
        VersionFrames {
            version,
            id_line: Bytes::from(format!("id: {version}\n")),
            events,
        }
    }

    /// Appends to `out` the frames `filter` admits, the id line inside the last one.
    /// Returns false when the filter admits none of them.
    pub fn write_filtered(&self, filter: &EventFilter, out: &mut Vec<Bytes>) -> bool {
        let Some(last) = self.events.iter().rposition(|e| filter.admits(e.kind)) else {
            return false;
        };
        for (i, event) in self.events.iter().enumerate().take(last + 1) {
            if i == last {
                out.push(self.id_line.clone());
                out.push(event.frame.clone());
            } else if filter.admits(event.kind) {
                out.push(event.frame.clone());
            }
        }
        true
    }
}

/// The `Reset` frame: the whole snapshot, for a resume older than the history.
pub fn reset_frame(snapshot: &TopologySnapshot) -> Bytes {
    let json = serde_json::to_string(snapshot).expect("snapshots always serialize");
    frame("Reset", Some(snapshot.version), &json)
}

/// The `Progress` frame sent on idle streams: everything up to `version` was sent.
pub fn progress_frame(version: u64) -> Bytes {
    frame(
        "Progress",
        Some(version),
        &format!("{{\"version\":{version}}}"),
    )
}

/// The keep-alive comment.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The `retry:` line that opens every stream (reconnect delay, jittered per stream).
pub fn retry_line(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// Which event types a subscriber wants (`eventTypes=`); all when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventFilter(u16);

impl EventFilter {
    pub const ALL: EventFilter = EventFilter(u16::MAX);

    fn bit(kind: EventType) -> u16 {
        let index = EventType::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every event type is listed");
        1 << index
    }

    /// Parses a comma-separated list of type names; unknown names are an error naming them.
    pub fn parse(list: &str) -> Result<EventFilter, String> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind: EventType = name.parse().map_err(|_| {
                let known: Vec<&str> = EventType::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "query parameter `eventTypes`: unknown event type `{name}` (known: {})",
                    known.join(", ")
                )
            })?;
            bits |= Self::bit(kind);
        }
        if bits == 0 {
            return Err("query parameter `eventTypes` names no event type".into());
        }
        Ok(EventFilter(bits))
    }

    pub fn admits(self, kind: EventType) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, version: u64, shard: &str) -> TopologyEvent {
        TopologyEvent {
            event_type: kind,
            version,
            timestamp: 5,
            node_id: None,
            shard_id: Some(shard.into()),
            old_value: None,
            new_value: None,
        }
    }

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn only_the_last_event_of_a_version_carries_the_id() {
        let frames = VersionFrames::encode(
            7,
            &[
                event(EventType::ShardSplit, 7, "a"),
                event(EventType::ShardSplit, 7, "b"),
                event(EventType::NodeJoin, 7, "c"),
            ],
        );
        let mut out = Vec::new();
        assert!(frames.write_filtered(&EventFilter::ALL, &mut out));
        let all = text(&out);
        assert_eq!(all.matches("id: 7\n").count(), 1);
        assert!(all.ends_with("\n\n"));
        let last_block = all.trim_end().rsplit("\n\n").next().unwrap();
        assert!(
            last_block.starts_with("id: 7\nevent: NodeJoin\ndata: {"),
            "{last_block}"
        );
        assert_eq!(all.matches("event: ShardSplit\ndata: ").count(), 2);
    }

    #[test]
    fn a_filter_moves_the_id_to_the_last_admitted_event() {
        let frames = VersionFrames::encode(
            9,
            &[
                event(EventType::ShardSplit, 9, "a"),
                event(EventType::NodeJoin, 9, "b"),
            ],
        );
        let splits = EventFilter::parse("ShardSplit").unwrap();
        let mut out = Vec::new();
        assert!(frames.write_filtered(&splits, &mut out));
        assert_eq!(out.len(), 2);
        assert!(text(&out).starts_with("id: 9\nevent: ShardSplit\n"));
        let leaders = EventFilter::parse("LeaderChange").unwrap();
        let mut none = Vec::new();
        assert!(!frames.write_filtered(&leaders, &mut none));
        assert!(none.is_empty());
    }

    #[test]
    fn filter_parsing_names_unknown_types() {
        let f = EventFilter::parse("NodeJoin, ShardMove").unwrap();
        assert!(f.admits(EventType::NodeJoin) && f.admits(EventType::ShardMove));
        assert!(!f.admits(EventType::ShardAdd));
        assert!(EventFilter::parse("NodeJoin,Teleport")
            .unwrap_err()
            .contains("Teleport"));
        assert!(EventFilter::parse(" , ").is_err());
    }

    #[test]
    fn progress_and_retry_lines() {
        assert_eq!(
            &progress_frame(4)[..],
            b"id: 4\nevent: Progress\ndata: {\"version\":4}\n\n"
        );
        assert_eq!(&retry_line(1500)[..], b"retry: 1500\n\n");
    }
}
