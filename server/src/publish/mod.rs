//! Publication of applied state (and Raft's term/leader, [`RaftView`], and whether
//! reads may be answered yet, [`Readiness`]) to the serving executors; `frames`
//! encodes each version's SSE frames once.
//!
//! After each applied batch the control executor builds one immutable [`Published`]
//! (the state at that version plus its response bodies, encoded once) and hands it to
//! every executor through the [`PublicationHub`]. Each executor keeps its own
//! [`LocalPublished`] copy: handlers read it without locks, and waiters (linearizable
//! reads, SSE streams) are woken when it advances. Intermediate versions may be
//! skipped by a slow executor; nothing is lost, because the event history travels
//! inside every `Published`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use concord_api::{Envelope, NodeList, ShardList, SnapshotPage, VersionInfo};
use concord_model::TopologyState;
use serde::Serialize;

pub mod frames;
mod raft_view;
mod readiness;

pub use raft_view::RaftView;
pub use readiness::Readiness;

use crate::net::gzip;
use frames::{reset_frame, VersionFrames};

/// One response body, encoded once; its gzip form is made on first demand.
#[derive(Debug)]
pub struct Encoded {
    pub identity: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Encoded {
    pub fn new(identity: Vec<u8>) -> Encoded {
        Encoded {
            identity: Bytes::from(identity),
            gzip: OnceLock::new(),
        }
    }

    /// The gzip form, compressed by the first request that asks for it.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| gzip(&self.identity))
    }
}

/// Encodes `payload` inside the success envelope.
pub fn encode_ok<T: Serialize>(version: u64, payload: T) -> Vec<u8> {
    serde_json::to_vec(&Envelope::ok(version, payload)).expect("topology types always serialize")
}

/// The applied topology at one version, with everything handlers need to answer.
///
/// Small bodies are encoded when the version is published; the large ones (the whole
/// map: megabytes at 16k shards) on first demand, once, by whichever executor asks
/// first, so the control executor (Raft) never spends milliseconds encoding.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    /// Raft log index of the last applied entry (what linearizable reads wait for).
    pub applied_index: u64,
    pub state: TopologyState,
    /// `GET /version`.
    pub version_body: Encoded,
    snapshot_body: OnceLock<Encoded>,
    shards_body: OnceLock<Encoded>,
    nodes_body: OnceLock<Encoded>,
    reset_frame: OnceLock<Bytes>,
    /// SSE frames of the versions the event history still holds, oldest first,
    /// contiguous by version; shared with the previous publication (O(1) clone).
    pub frames: concord_model::imbl::Vector<Arc<VersionFrames>>,
}

impl Published {
    /// Publishes `state`; `previous` lends the SSE frames already encoded, so each
    /// version's frames are encoded exactly once.
    pub fn build(
        state: TopologyState,
        applied_index: u64,
        previous: Option<&Published>,
    ) -> Published {
        let version = state.version();
        let history = state.history();
        let mut frames = previous
            .filter(|p| p.version <= version)
            .map(|p| p.frames.clone())
            .unwrap_or_default();
        let encoded_up_to = frames.back().map_or(0, |f| f.version);
        let from = encoded_up_to.max(history.base_version());
        if version > from {
            let new_events = history.since(from, usize::MAX).unwrap_or_default();
            let mut start = 0;
            while start < new_events.len() {
                let v = new_events[start].version;
                let end = new_events[start..]
                    .iter()
                    .position(|e| e.version != v)
                    .map_or(new_events.len(), |n| start + n);
                frames.push_back(Arc::new(VersionFrames::encode(v, &new_events[start..end])));
                start = end;
            }
        }
        let oldest = history.oldest_version().unwrap_or(version + 1);
        while frames.front().is_some_and(|f| f.version < oldest) {
            frames.pop_front();
        }
        let version_body = Encoded::new(encode_ok(
            version,
            VersionInfo {
                config_hash: state.config_hash().into(),
                timestamp: state.timestamp(),
            },
        ));
        Published {
            version,
            applied_index,
            state,
            version_body,
            snapshot_body: OnceLock::new(),
            shards_body: OnceLock::new(),
            nodes_body: OnceLock::new(),
            reset_frame: OnceLock::new(),
            frames,
        }
    }

    /// `GET /snapshot`: the whole map in the envelope.
    pub fn snapshot_body(&self) -> &Encoded {
        self.snapshot_body.get_or_init(|| {
            let snapshot = self.state.to_snapshot();
            Encoded::new(encode_ok(
                self.version,
                SnapshotPage {
                    snapshot: &snapshot,
                },
            ))
        })
    }

    /// `GET /shards`.
    pub fn shards_body(&self) -> &Encoded {
        self.shards_body.get_or_init(|| {
            Encoded::new(encode_ok(
                self.version,
                ShardList {
                    shards: self.state.shards().collect::<Vec<_>>(),
                },
            ))
        })
    }

    /// `GET /nodes`.
    pub fn nodes_body(&self) -> &Encoded {
        self.nodes_body.get_or_init(|| {
            Encoded::new(encode_ok(
                self.version,
                NodeList {
                    nodes: self.state.nodes().collect::<Vec<_>>(),
                },
            ))
        })
    }

    /// The SSE `Reset` frame carrying this whole version.
    pub fn reset_frame(&self) -> &Bytes {
        self.reset_frame
            .get_or_init(|| reset_frame(&self.state.to_snapshot()))
    }

    /// The indexes in [`Self::frames`] of the versions after `version`, or `None`
    /// when some of them are no longer held (the subscriber needs a `Reset`).
    pub fn frames_after(&self, version: u64) -> Option<std::ops::Range<usize>> {
        let len = self.frames.len();
        if version >= self.version {
            return Some(len..len);
        }
        let first = self.frames.front()?.version;
        if version + 1 < first {
            return None;
        }
        let start = match self
            .frames
            .binary_search_by(|f| f.version.cmp(&(version + 1)))
        {
            Ok(i) | Err(i) => i,
        };
        Some(start..len)
    }
}

/// Shared by all executors: the latest `Published` and a wake-up line to each executor.
pub struct PublicationHub {
    latest: Mutex<Arc<Published>>,
    /// `latest`'s applied index, readable without the lock: stored under it, before
    /// any executor can see (and acknowledge) that publication.
    latest_applied: AtomicU64,
    ticks: Vec<async_channel::Sender<()>>,
}

impl PublicationHub {
    /// A hub for `executors` executors; returns it with each executor's receiving end.
    pub fn new(
        initial: Arc<Published>,
        executors: usize,
    ) -> (PublicationHub, Vec<async_channel::Receiver<()>>) {
        let (ticks, receivers) = (0..executors).map(|_| async_channel::bounded(1)).unzip();
        let hub = PublicationHub {
            latest_applied: AtomicU64::new(initial.applied_index),
            latest: Mutex::new(initial),
            ticks,
        };
        (hub, receivers)
    }

    /// Makes `published` the latest and wakes every executor (a full tick line means
    /// a wake-up is already pending, which will read this newer value).
    ///
    /// A publication older than the latest (lower applied index) is refused: the
    /// state machine only moves forward (openraft installs a snapshot only past what
    /// was applied), and readers must never see it go back.
    pub fn publish(&self, published: Arc<Published>) {
        {
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            if published.applied_index < latest.applied_index {
                tracing::error!(
                    offered = published.applied_index,
                    published = latest.applied_index,
                    "refused to publish a state older than the one already published"
                );
                return;
            }
            self.latest_applied
                .store(published.applied_index, Ordering::Release);
            *latest = published;
        }
        self.poke();
    }

    /// Wakes every executor's waiters without a new version (they re-check conditions
    /// that changed outside the topology, such as losing the leader).
    pub fn poke(&self) {
        for tick in &self.ticks {
            let _ = tick.try_send(());
        }
    }

    pub fn latest(&self) -> Arc<Published> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An executor's own view of the latest publication.
pub struct LocalPublished {
    current: RefCell<Arc<Published>>,
    changed: event_listener::Event,
    hub: Arc<PublicationHub>,
}

impl LocalPublished {
    /// A view of `hub`, starting at its latest publication.
    pub fn new(hub: Arc<PublicationHub>) -> LocalPublished {
        LocalPublished {
            current: RefCell::new(hub.latest()),
            changed: event_listener::Event::new(),
            hub,
        }
    }

    /// The publication to answer from: this executor's copy, first brought up to the
    /// hub's if the hub holds a newer one. Another executor may already have answered
    /// from that one (a write's acknowledgement), and its wake-up here
    /// ([`follow_hub`]) may not have run yet; no answer may be older than one given.
    pub fn current(&self) -> Arc<Published> {
        if self.hub.latest_applied.load(Ordering::Acquire) > self.current.borrow().applied_index {
            self.advance(self.hub.latest());
        }
        self.current.borrow().clone()
    }

    fn advance(&self, published: Arc<Published>) {
        let mut current = self.current.borrow_mut();
        if published.version >= current.version && published.applied_index >= current.applied_index
        {
            *current = published;
            drop(current);
            self.changed.notify(usize::MAX);
        }
    }

    /// Waits until this executor's publication satisfies `ready`; false when
    /// `timeout` passes first.
    pub async fn wait_until(&self, ready: impl Fn(&Published) -> bool, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let listener = self.changed.listen();
            if ready(&self.current()) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let woke = futures_lite::future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    glommio::timer::sleep(left).await;
                    false
                },
            )
            .await;
            if !woke {
                return ready(&self.current());
            }
        }
    }

    /// Resolves at the next publication on this executor.
    pub fn changed(&self) -> event_listener::EventListener {
        self.changed.listen()
    }
}

/// Runs on every executor: copies each new publication from the hub into `local`.
pub async fn follow_hub(
    hub: Arc<PublicationHub>,
    ticks: async_channel::Receiver<()>,
    local: std::rc::Rc<LocalPublished>,
) {
    while ticks.recv().await.is_ok() {
        local.advance(hub.latest());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(applied_index: u64) -> Arc<Published> {
        Arc::new(Published::build(
            TopologyState::new(16),
            applied_index,
            None,
        ))
    }

    #[test]
    fn an_executor_answers_from_the_hubs_latest_before_its_wake_up_runs() {
        let (hub, _ticks) = PublicationHub::new(published(1), 2);
        let hub = Arc::new(hub);
        let (here, there) = (
            LocalPublished::new(hub.clone()),
            LocalPublished::new(hub.clone()),
        );
        hub.publish(published(5));
        // Neither executor's `follow_hub` ran: both still answer from index 5.
        assert_eq!(here.current().applied_index, 5);
        assert_eq!(there.current().applied_index, 5);
        // An older publication is refused, and nothing goes back.
        hub.publish(published(3));
        assert_eq!(here.current().applied_index, 5);
    }
}
