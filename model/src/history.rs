//! The event history: a bounded ring of the latest events, which resumable SSE
//! streams and `GET /events?sinceVersion=` are answered from.
//!
//! Eviction drops whole change sets (a version is never half held), so the ring may
//! hold fewer than `capacity` events, and none at all when the latest change set alone
//! exceeds it. Invariant: the ring holds every event of the versions
//! `(base_version, latest_version]` and nothing else. It is persistent (`imbl`):
//! cloning it for publication is O(1).

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;
use crate::event::TopologyEvent;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventHistory {
    capacity: usize,
    /// Every event of every version above this one is held.
    base_version: u64,
    /// Ordered by version; the events of one version are contiguous.
    events: imbl::Vector<TopologyEvent>,
}

impl EventHistory {
    /// An empty history that starts after `base_version`.
    pub fn new(capacity: usize, base_version: u64) -> EventHistory {
        EventHistory {
            capacity,
            base_version,
            events: imbl::Vector::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events of every version after this one are held.
    pub fn base_version(&self) -> u64 {
        self.base_version
    }

    /// The version of the oldest event held, if any.
    pub fn oldest_version(&self) -> Option<u64> {
        self.events.front().map(|e| e.version)
    }

    /// The latest version this history knows of (its events may have been evicted).
    pub fn latest_version(&self) -> u64 {
        self.events.back().map_or(self.base_version, |e| e.version)
    }

    /// All held events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TopologyEvent> {
        self.events.iter()
    }

    /// The events after `version` (exclusive), oldest first, in whole change sets:
    /// as many as fit in `limit`, but always the first change set after `version`
    /// whole, so that a caller paging with the last returned version always advances.
    /// More remain when the last returned version is below [`Self::latest_version`].
    ///
    /// A `version` at or beyond the latest answers an empty list; whether the caller
    /// is ahead of the topology is for it to decide.
    pub fn since(&self, version: u64, limit: usize) -> Result<Vec<TopologyEvent>, HistoryError> {
        if version < self.base_version {
            return Err(HistoryError::Compacted {
                oldest_available: self.base_version + 1,
            });
        }
        let first = self.first_after(version);
        let mut out: Vec<TopologyEvent> = Vec::new();
        let mut group_start = 0;
        for e in self.events.skip(first).iter() {
            if out.last().is_some_and(|last| last.version != e.version) {
                // A change set just ended; stop if the next one may not fit.
                group_start = out.len();
                if out.len() >= limit {
                    break;
                }
            }
            out.push(e.clone());
            if out.len() > limit && group_start > 0 {
                // The change set in progress overflows the limit: drop it.
                out.truncate(group_start);
                break;
            }
        }
        Ok(out)
    }

    /// Index of the first event with a version above `version`.
    fn first_after(&self, version: u64) -> usize {
        match self
            .events
            .binary_search_by(|e| e.version.cmp(&version).then(std::cmp::Ordering::Less))
        {
            Ok(i) | Err(i) => i,
        }
    }

    /// Appends the events of `version`, then evicts whole change sets from the front
    /// until at most `capacity` events remain.
    pub(crate) fn push(&mut self, version: u64, events: &[TopologyEvent]) {
        debug_assert!(version > self.latest_version());
        debug_assert!(events.iter().all(|e| e.version == version));
        if events.is_empty() && self.events.is_empty() {
            self.base_version = version;
        }
        for e in events {
            self.events.push_back(e.clone());
        }
        self.evict();
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict();
    }

    fn evict(&mut self) {
        while self.events.len() > self.capacity {
            let Some(v) = self.events.front().map(|e| e.version) else {
                break;
            };
            while self.events.front().is_some_and(|e| e.version == v) {
                self.events.pop_front();
            }
            self.base_version = v;
        }
    }

    /// Checks the invariants of a deserialized history against the state's version.
    pub(crate) fn check(&self, state_version: u64) -> Result<(), String> {
        if self.base_version > state_version {
            return Err(format!(
                "baseVersion {} is after the state's version {state_version}",
                self.base_version
            ));
        }
        let mut prev = self.base_version;
        for (i, e) in self.events.iter().enumerate() {
            if e.version < prev || e.version == self.base_version {
                return Err(format!(
                    "events[{i}] has version {} out of order (after {prev}, base {})",
                    e.version, self.base_version
                ));
            }
            if e.version > state_version {
                return Err(format!(
                    "events[{i}] has version {}, after the state's version {state_version}",
                    e.version
                ));
            }
            prev = e.version;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "history_test.rs"]
mod tests;
