use super::*;
use crate::event::EventType;

fn ev(version: u64) -> TopologyEvent {
    TopologyEvent {
        event_type: EventType::ConfigChange,
        version,
        timestamp: version * 10,
        node_id: Some("n".into()),
        shard_id: None,
        old_value: None,
        new_value: None,
    }
}

/// Versions 1..=n, version v holding `sizes[v-1]` events.
fn history(capacity: usize, sizes: &[usize]) -> EventHistory {
    let mut h = EventHistory::new(capacity, 0);
    for (i, &n) in sizes.iter().enumerate() {
        let v = i as u64 + 1;
        h.push(v, &vec![ev(v); n]);
    }
    h
}

fn versions(events: &[TopologyEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

#[test]
fn empty_history() {
    let h = EventHistory::new(10, 0);
    assert!(h.is_empty());
    assert_eq!(h.oldest_version(), None);
    assert_eq!(h.latest_version(), 0);
    assert_eq!(h.since(0, 100).unwrap(), vec![]);
    assert_eq!(
        h.since(5, 100).unwrap(),
        vec![],
        "ahead: empty, the caller decides"
    );
}

#[test]
fn since_is_exclusive_and_in_order() {
    let h = history(100, &[1, 2, 1]);
    assert_eq!(h.len(), 4);
    assert_eq!(versions(&h.since(0, 100).unwrap()), [1, 2, 2, 3]);
    assert_eq!(versions(&h.since(1, 100).unwrap()), [2, 2, 3]);
    assert_eq!(versions(&h.since(3, 100).unwrap()), Vec::<u64>::new());
    assert_eq!(h.oldest_version(), Some(1));
    assert_eq!(h.latest_version(), 3);
}

#[test]
fn since_returns_whole_change_sets_within_the_limit() {
    let h = history(100, &[1, 3, 1, 1]);
    // 1 + 3 > 2: version 2 does not fit, so only version 1.
    assert_eq!(versions(&h.since(0, 2).unwrap()), [1]);
    assert_eq!(versions(&h.since(0, 4).unwrap()), [1, 2, 2, 2]);
    assert_eq!(versions(&h.since(0, 5).unwrap()), [1, 2, 2, 2, 3]);
    // The first change set is returned whole even when it alone exceeds the limit.
    assert_eq!(versions(&h.since(1, 1).unwrap()), [2, 2, 2]);
    assert_eq!(versions(&h.since(1, 0).unwrap()), [2, 2, 2]);
    // Paging by the last returned version walks everything without splitting.
    let mut at = 0;
    let mut seen = vec![];
    loop {
        let page = h.since(at, 2).unwrap();
        let Some(last) = page.last() else { break };
        at = last.version;
        seen.extend(versions(&page));
    }
    assert_eq!(seen, [1, 2, 2, 2, 3, 4]);
}

#[test]
fn eviction_drops_whole_change_sets() {
    let h = history(4, &[2, 2, 3]);
    // 7 events > 4: versions 1 and 2 go (3 events remain).
    assert_eq!(versions(&h.since(2, 100).unwrap()), [3, 3, 3]);
    assert_eq!(h.base_version(), 2);
    assert_eq!(h.oldest_version(), Some(3));
    assert_eq!(
        h.since(1, 100).unwrap_err(),
        HistoryError::Compacted {
            oldest_available: 3
        }
    );
    assert!(h.since(0, 100).is_err());
}

#[test]
fn a_change_set_larger_than_the_ring_is_not_kept() {
    let h = history(2, &[1, 5]);
    assert!(h.is_empty());
    assert_eq!(h.base_version(), 2);
    assert_eq!(h.latest_version(), 2);
    assert_eq!(h.since(2, 10).unwrap(), vec![]);
    assert_eq!(
        h.since(1, 10).unwrap_err(),
        HistoryError::Compacted {
            oldest_available: 3
        }
    );
}

#[test]
fn zero_capacity_keeps_nothing_but_tracks_the_version() {
    let h = history(0, &[1, 1]);
    assert!(h.is_empty());
    assert_eq!(h.base_version(), 2);
}

#[test]
fn shrinking_the_capacity_evicts() {
    let mut h = history(10, &[2, 2, 2]);
    h.set_capacity(3);
    assert_eq!(versions(&h.since(2, 10).unwrap()), [3, 3]);
    assert_eq!(h.capacity(), 3);
}

#[test]
fn serde_round_trip_and_checks() {
    let h = history(3, &[1, 2, 1]);
    let text = serde_json::to_string(&h).unwrap();
    assert!(text.contains("\"baseVersion\""), "{text}");
    let back: EventHistory = serde_json::from_str(&text).unwrap();
    assert_eq!(back, h);
    assert!(h.check(4).is_ok());
    assert!(h
        .check(2)
        .unwrap_err()
        .contains("after the state's version"));
    assert!(h.check(0).unwrap_err().contains("baseVersion"));
    let mut bad = EventHistory::new(10, 0);
    bad.events.push_back(ev(2));
    bad.events.push_back(ev(1));
    assert!(bad.check(5).unwrap_err().contains("out of order"));
}
