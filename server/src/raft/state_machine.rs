//! `TopologyStateMachine`: openraft's `RaftStateMachine` over the topology model.
//!
//! It owns the applied [`TopologyState`]: committed change sets go through
//! `TopologyState::apply` (a refused one is answered with the model's error and
//! changes nothing), membership entries are recorded, and after every applied batch
//! the publication hook sees the new state and the batch's events. The hook runs
//! before any client is answered, so a client that reads back after its write
//! succeeded finds its version already published on this server.
//!
//! Snapshots are files (see [`snapshot_store`](crate::raft::snapshot_store)): the body
//! is the postcard-encoded `SnapshotMeta` followed by the postcard-encoded state, and
//! the sealed file bytes are also the snapshot data openraft ships to followers.
//! The latest snapshot is restored when the state machine is opened; openraft then
//! re-applies the committed log after it.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use concord_model::TopologyEvent;
use concord_model::TopologyState;
use futures_util::Stream;
use futures_util::StreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::AsyncRuntime;
use openraft::EntryPayload;

use crate::raft::runtime::GlommioRuntime;
use crate::raft::snapshot_store::seal;
use crate::raft::snapshot_store::unseal;
use crate::raft::snapshot_store::SnapshotStore;
use crate::raft::snapshot_store::SnapshotStoreError;
use crate::raft::types::LogId;
use crate::raft::types::Snapshot;
use crate::raft::types::SnapshotMeta;
use crate::raft::types::StoredMembership;
use crate::raft::types::TopoConfig;
use crate::raft::types::TopoResponse;

/// The Raft handle of a topology server (openraft over this state machine).
pub type TopoRaft = openraft::Raft<TopoConfig, TopologyStateMachine>;

/// Where the applied state stands, as handed to the publication hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMeta {
    /// Index of the last applied log entry; 0 before anything was applied.
    pub last_applied_log_index: u64,
    /// The last applied log id, `None` before anything was applied.
    pub last_applied: Option<LogId>,
    /// The last applied membership and the log id it came from.
    pub membership: StoredMembership,
}

/// Called on the control executor after each applied batch (and once at open, and
/// after a snapshot is installed, with no events). It must not block: hand the
/// state (an O(1) clone) to whoever publishes it and return.
pub type PublishHook = Box<dyn FnMut(&TopologyState, &[TopologyEvent], AppliedMeta)>;

/// Failure to open the state machine.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The snapshot directory or file could not be read.
    #[error(transparent)]
    Store(#[from] SnapshotStoreError),
    /// The snapshot file is intact but does not decode.
    #[error("snapshot {path} cannot be decoded: {source}")]
    Decode {
        /// The file.
        path: String,
        /// The cause.
        source: postcard::Error,
    },
}

struct Inner {
    state: TopologyState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Event-history capacity from the configuration: it wins over the one a restored
    /// or received snapshot was taken with.
    event_buffer_size: usize,
    /// Meta of the snapshot file on disk.
    current: Option<SnapshotMeta>,
    hook: PublishHook,
}

impl Inner {
    fn applied_meta(&self) -> AppliedMeta {
        AppliedMeta {
            last_applied_log_index: self.last_applied.as_ref().map_or(0, |id| id.index),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    fn publish(&mut self, events: &[TopologyEvent]) {
        let meta = self.applied_meta();
        (self.hook)(&self.state, events, meta);
    }
}

/// Shared by the state machine and its snapshot builders.
struct Shared {
    inner: RefCell<Inner>,
    store: Arc<SnapshotStore>,
    /// Serializes snapshot file replacement, so a slow builder cannot overwrite a
    /// newer snapshot that was installed meanwhile.
    file_lock: tokio::sync::Mutex<()>,
}

/// openraft's state machine over [`TopologyState`], with file snapshots.
pub struct TopologyStateMachine {
    shared: Rc<Shared>,
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    shared: Rc<Shared>,
    state: TopologyState,
    meta: SnapshotMeta,
}

pub(crate) fn encode_body(
    meta: &SnapshotMeta,
    state: &TopologyState,
) -> Result<Vec<u8>, io::Error> {
    let mut body = postcard::to_stdvec(meta).map_err(invalid_data)?;
    body.extend_from_slice(&postcard::to_stdvec(state).map_err(invalid_data)?);
    Ok(body)
}

fn decode_meta(body: &[u8]) -> Result<(SnapshotMeta, &[u8]), postcard::Error> {
    postcard::take_from_bytes::<SnapshotMeta>(body)
}

fn decode_body(body: &[u8]) -> Result<(SnapshotMeta, TopologyState), postcard::Error> {
    let (meta, rest) = decode_meta(body)?;
    Ok((meta, postcard::from_bytes(rest)?))
}

fn invalid_data(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TopologyStateMachine {
    /// Opens the state machine on `snapshot_dir`: restores the latest snapshot there,
    /// or starts from `initial` (an empty topology) when there is none, then calls
    /// `hook` once with what it has.
    ///
    /// Reads the snapshot file synchronously; call it before Raft starts.
    pub fn open(
        snapshot_dir: impl AsRef<Path>,
        initial: TopologyState,
        hook: PublishHook,
    ) -> Result<Self, StateMachineError> {
        let store = SnapshotStore::open(snapshot_dir)?;
        let event_buffer_size = initial.history().capacity();

        let (state, current) = match store.load()? {
            None => (initial, None),
            Some(sealed) => {
                let path = store.path().display().to_string();
                let body = unseal(&path, &sealed)?;
                let (meta, mut state) = decode_body(body)
                    .map_err(|source| StateMachineError::Decode { path, source })?;
                state.set_event_buffer_size(event_buffer_size);
                (state, Some(meta))
            }
        };

        let mut inner = Inner {
            state,
            last_applied: current.as_ref().and_then(|m| m.last_log_id),
            membership: current
                .as_ref()
                .map(|m| m.last_membership.clone())
                .unwrap_or_default(),
            event_buffer_size,
            current,
            hook,
        };
        inner.publish(&[]);

        Ok(Self {
            shared: Rc::new(Shared {
                inner: RefCell::new(inner),
                store: Arc::new(store),
                file_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The applied state (an O(1) clone).
    pub fn state(&self) -> TopologyState {
        self.shared.inner.borrow().state.clone()
    }

    /// Where the applied state stands.
    pub fn applied_meta(&self) -> AppliedMeta {
        self.shared.inner.borrow().applied_meta()
    }
}

impl Shared {
    /// Makes `sealed` the snapshot file unless a newer one is already there.
    /// Returns whether it was written.
    async fn replace_file(&self, meta: &SnapshotMeta, sealed: Vec<u8>) -> Result<bool, io::Error> {
        let _guard = self.file_lock.lock().await;
        let newer_on_disk = {
            let inner = self.inner.borrow();
            inner
                .current
                .as_ref()
                .is_some_and(|cur| cur.last_log_id > meta.last_log_id)
        };
        if newer_on_disk {
            return Ok(false);
        }
        let store = self.store.clone();
        // fsync is slow and would stall every task of the control executor.
        GlommioRuntime::spawn_blocking(move || store.replace(&sealed))
            .await?
            .map_err(io::Error::from)?;
        self.inner.borrow_mut().current = Some(meta.clone());
        Ok(true)
    }
}

impl RaftSnapshotBuilder<TopoConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let sealed = seal(&encode_body(&self.meta, &self.state)?);
        self.shared.replace_file(&self.meta, sealed.clone()).await?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: sealed,
        })
    }
}

impl RaftStateMachine<TopoConfig> for TopologyStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.shared.inner.borrow();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TopoConfig>, io::Error>> + Unpin,
    {
        let mut events = Vec::new();
        let mut replies = Vec::new();
        let mut applied_any = false;

        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            let mut inner = self.shared.inner.borrow_mut();
            let reply = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(request) => {
                    let result = match inner.state.apply(&request.0) {
                        Ok(evs) => {
                            events.extend(evs);
                            Ok(inner.state.version())
                        }
                        Err(e) => Err(e),
                    };
                    Some(TopoResponse { result })
                }
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(log_id), membership);
                    None
                }
            };
            inner.last_applied = Some(log_id);
            applied_any = true;
            if let Some(responder) = responder {
                // Blank and membership entries are answered with the current version.
                let reply = reply.unwrap_or_else(|| TopoResponse {
                    result: Ok(inner.state.version()),
                });
                replies.push((responder, reply));
            }
        }

        if applied_any {
            self.shared.inner.borrow_mut().publish(&events);
        }
        for (responder, reply) in replies {
            responder.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let inner = self.shared.inner.borrow();
        SnapshotBuilder {
            shared: self.shared.clone(),
            state: inner.state.clone(),
            meta: SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
            },
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let body = unseal("received snapshot", &snapshot).map_err(io::Error::from)?;
        let (file_meta, mut state) = decode_body(body).map_err(invalid_data)?;
        if &file_meta != meta {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("received snapshot data is for {file_meta:?}, not {meta:?}"),
            ));
        }
        // Durable first: once the state is switched, a crash must not bring back the
        // older snapshot together with a log purged past it.
        self.shared.replace_file(meta, snapshot).await?;

        let mut inner = self.shared.inner.borrow_mut();
        state.set_event_buffer_size(inner.event_buffer_size);
        inner.state = state;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.publish(&[]);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let store = self.shared.store.clone();
        let _guard = self.shared.file_lock.lock().await;
        let Some(sealed) = GlommioRuntime::spawn_blocking(move || store.load())
            .await?
            .map_err(io::Error::from)?
        else {
            return Ok(None);
        };
        let body = unseal("snapshot file", &sealed).map_err(io::Error::from)?;
        let (meta, _state) = decode_meta(body).map_err(invalid_data)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: sealed,
        }))
    }
}

#[cfg(test)]
#[path = "state_machine_test.rs"]
mod tests;
