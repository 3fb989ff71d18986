//! The server's JSON answers, parsed with simd-json (in place, on the received
//! buffer): the `{success, message, version, ...}` envelope (`concord_api::Envelope`) of
//! `GET /api/topology/snapshot[?since=V]`, and the `data:` of SSE events.

use concord_api::{Envelope, TopologyEvent, TopologySnapshot};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct WireError {
    pub what: &'static str,
    pub detail: String,
}

fn malformed(what: &'static str, e: impl std::fmt::Display) -> WireError {
    WireError {
        what,
        detail: e.to_string(),
    }
}

/// What `GET /api/topology/snapshot[?since=V]` answered.
#[derive(Debug)]
pub enum SnapshotAnswer {
    /// The whole topology.
    Full(TopologySnapshot),
    /// The events after `since` (in version order; several per version possible).
    Delta {
        since: u64,
        version: u64,
        events: Vec<TopologyEvent>,
        has_more: bool,
    },
}

/// The payload fields of the snapshot route: the whole map, or the events after `since`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotFields {
    #[serde(default)]
    snapshot: Option<TopologySnapshot>,
    #[serde(default)]
    since_version: Option<u64>,
    #[serde(default)]
    events: Option<Vec<TopologyEvent>>,
    #[serde(default)]
    has_more: bool,
}

pub fn parse_snapshot_answer(body: &mut [u8]) -> Result<SnapshotAnswer, WireError> {
    const WHAT: &str = "snapshot answer";
    let env: Envelope<SnapshotFields> =
        simd_json::serde::from_slice(body).map_err(|e| malformed(WHAT, e))?;
    if !env.success {
        return Err(malformed(
            WHAT,
            format!("success is false: {}", env.message),
        ));
    }
    let fields = env.payload;
    match (fields.snapshot, fields.events) {
        (Some(snapshot), _) => Ok(SnapshotAnswer::Full(snapshot)),
        (None, Some(events)) => Ok(SnapshotAnswer::Delta {
            since: fields
                .since_version
                .ok_or_else(|| malformed(WHAT, "events without sinceVersion"))?,
            version: env.version,
            events,
            has_more: fields.has_more,
        }),
        (None, None) => Err(malformed(WHAT, "neither snapshot nor events")),
    }
}

/// The `message` of an error envelope, or the start of the body when it is not one.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let mut copy = body.to_vec();
    match simd_json::serde::from_slice::<Message>(&mut copy) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

pub fn parse_event(data: &mut [u8]) -> Result<TopologyEvent, WireError> {
    simd_json::serde::from_slice(data).map_err(|e| malformed("event", e))
}

pub fn parse_snapshot(data: &mut [u8]) -> Result<TopologySnapshot, WireError> {
    simd_json::serde::from_slice(data).map_err(|e| malformed("Reset snapshot", e))
}

/// The version of a `Progress` event (`{"version": N}`).
pub fn parse_progress(data: &mut [u8]) -> Result<u64, WireError> {
    #[derive(Deserialize)]
    struct Progress {
        version: u64,
    }
    simd_json::serde::from_slice::<Progress>(data)
        .map(|p| p.version)
        .map_err(|e| malformed("Progress event", e))
}

/// Splits events (in version order) into their change sets.
pub fn by_version(events: Vec<TopologyEvent>) -> Vec<(u64, Vec<TopologyEvent>)> {
    let mut out: Vec<(u64, Vec<TopologyEvent>)> = Vec::new();
    for e in events {
        match out.last_mut() {
            Some((v, set)) if *v == e.version => set.push(e),
            _ => out.push((e.version, vec![e])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_and_error_envelopes_parse() {
        let mut body = br#"{"success":true,"message":"ok","version":9,"sinceVersion":7,
            "events":[{"type":"NodeJoin","version":8,"timestamp":1,"nodeId":"n9",
            "newValue":{"nodeId":"n9","address":"h:1","health":"unknown","lastSeen":0,
            "failureCount":0,"shards":[],"labels":{}}},
            {"type":"NodeLeave","version":9,"timestamp":2,"nodeId":"n9"}],"hasMore":false}"#
            .to_vec();
        match parse_snapshot_answer(&mut body).unwrap() {
            SnapshotAnswer::Delta {
                since,
                version,
                events,
                has_more,
            } => {
                assert_eq!((since, version, has_more), (7, 9, false));
                let sets = by_version(events);
                assert_eq!(sets.iter().map(|s| s.0).collect::<Vec<_>>(), vec![8, 9]);
                assert!(sets[0].1[0].node().is_some());
            }
            other => panic!("expected a delta, got {other:?}"),
        }
        let err = br#"{"success":false,"message":"since=99 is ahead","version":3}"#;
        assert_eq!(error_message(err), "since=99 is ahead");
        assert!(parse_snapshot_answer(&mut err.to_vec())
            .unwrap_err()
            .to_string()
            .contains("ahead"));
        assert_eq!(error_message(b"<html>"), "<html>");
    }

    #[test]
    fn progress_parses_and_garbage_is_an_error() {
        assert_eq!(
            parse_progress(&mut br#"{"version":41}"#.to_vec()).unwrap(),
            41
        );
        assert!(parse_event(&mut b"{not json".to_vec()).is_err());
    }
}
