//! Publication of applied state to the serving executors.
//!
//! After each applied batch the control executor builds one immutable [`Published`]
//! (the state at that version plus its response bodies, encoded once) and hands it to
//! every executor through the [`PublicationHub`]. Each executor keeps its own
//! [`LocalPublished`] copy: handlers read it without locks, and waiters (linearizable
//! reads, SSE streams) are woken when it advances. Intermediate versions may be
//! skipped by a slow executor; nothing is lost, because the event history travels
//! inside every `Published`.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use topology_model::{TopologySnapshot, TopologyState};

use crate::http::response::gzip;

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

/// The envelope every successful answer shares with ConcordKV's original API.
#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub success: bool,
    pub message: &'a str,
    pub version: u64,
    #[serde(flatten)]
    pub payload: T,
}

/// Encodes `payload` inside the success envelope.
pub fn encode_ok<T: Serialize>(version: u64, payload: T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        success: true,
        message: "ok",
        version,
        payload,
    })
    .expect("topology types always serialize")
}

#[derive(Serialize)]
struct SnapshotPayload<'a> {
    snapshot: &'a TopologySnapshot,
}

#[derive(Serialize)]
struct ShardsPayload<'a, T: Serialize> {
    shards: Vec<&'a T>,
}

#[derive(Serialize)]
struct NodesPayload<'a, T: Serialize> {
    nodes: Vec<&'a T>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionPayload<'a> {
    config_hash: &'a str,
    timestamp: u64,
}

/// The bodies of the parameterless read routes at one version.
#[derive(Debug)]
pub struct Bodies {
    pub snapshot: Encoded,
    pub shards: Encoded,
    pub nodes: Encoded,
    pub version: Encoded,
}

/// The applied topology at one version, with everything handlers need to answer.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    /// Raft log index of the last applied entry (what linearizable reads wait for).
    pub applied_index: u64,
    pub state: TopologyState,
    pub bodies: Bodies,
}

impl Published {
    /// Encodes the bodies of `state`; runs once per published version.
    pub fn build(state: TopologyState, applied_index: u64) -> Published {
        let version = state.version();
        let snapshot = state.to_snapshot();
        let bodies = Bodies {
            snapshot: Encoded::new(encode_ok(
                version,
                SnapshotPayload {
                    snapshot: &snapshot,
                },
            )),
            shards: Encoded::new(encode_ok(
                version,
                ShardsPayload {
                    shards: state.shards().collect(),
                },
            )),
            nodes: Encoded::new(encode_ok(
                version,
                NodesPayload {
                    nodes: state.nodes().collect(),
                },
            )),
            version: Encoded::new(encode_ok(
                version,
                VersionPayload {
                    config_hash: state.config_hash(),
                    timestamp: state.timestamp(),
                },
            )),
        };
        Published {
            version,
            applied_index,
            state,
            bodies,
        }
    }
}

/// Shared by all executors: the latest `Published` and a wake-up line to each executor.
pub struct PublicationHub {
    latest: Mutex<Arc<Published>>,
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
            latest: Mutex::new(initial),
            ticks,
        };
        (hub, receivers)
    }

    /// Makes `published` the latest and wakes every executor (a full tick line means
    /// a wake-up is already pending, which will read this newer value).
    pub fn publish(&self, published: Arc<Published>) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = published;
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
}

impl LocalPublished {
    pub fn new(initial: Arc<Published>) -> LocalPublished {
        LocalPublished {
            current: RefCell::new(initial),
            changed: event_listener::Event::new(),
        }
    }

    pub fn current(&self) -> Arc<Published> {
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
            if ready(&self.current.borrow()) {
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
                return ready(&self.current.borrow());
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
