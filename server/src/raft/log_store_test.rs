//! Tests of the raft-log backed store: openraft's storage conformance suite and
//! durability across reopen.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_util::Stream;
use futures_util::StreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::StoredMembershipOf;
use openraft::type_config::alias::VoteOf;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderId;
use openraft::vote::RaftLeaderIdExt;
use openraft::vote::RaftVote;
use openraft::AsyncRuntime;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::StorageError;
use tempfile::TempDir;

use super::LogStore;
use super::LogStoreConfig;
use crate::raft::runtime::GlommioRuntime;

openraft::declare_raft_types!(
    /// Type config for storage tests: string commands on glommio.
    pub TestConfig:
        D = String,
        R = (),
        AsyncRuntime = GlommioRuntime,
);

type Store = LogStore<TestConfig>;

/// Runs `f` on a fresh glommio executor with small io_memory.
fn run<F: std::future::Future>(f: F) -> F::Output {
    GlommioRuntime::new(1).block_on(f)
}

#[derive(Default)]
struct MemSmInner {
    applied: Option<LogIdOf<TestConfig>>,
    membership: StoredMembershipOf<TestConfig>,
    current: Option<(SnapshotMetaOf<TestConfig>, Vec<u8>)>,
}

/// The minimal state machine openraft's suite needs next to a log store: it records
/// the applied log id and membership and snapshots exactly those.
#[derive(Default, Clone)]
struct MemSm(Rc<RefCell<MemSmInner>>);

impl RaftSnapshotBuilder<TestConfig> for MemSm {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TestConfig, Vec<u8>>, io::Error> {
        let mut inner = self.0.borrow_mut();
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: inner.applied,
            last_membership: inner.membership.clone(),
        };
        let data = postcard::to_stdvec(&meta).map_err(io::Error::other)?;
        inner.current = Some((meta.clone(), data.clone()));
        Ok(SnapshotOf::<TestConfig, Vec<u8>> {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<TestConfig> for MemSm {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = MemSm;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TestConfig>>, StoredMembershipOf<TestConfig>), io::Error> {
        let inner = self.0.borrow();
        Ok((inner.applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let mut inner = self.0.borrow_mut();
            inner.applied = Some(entry.log_id());
            if let Some(m) = entry.get_membership() {
                inner.membership = StoredMembershipOf::<TestConfig>::new(Some(entry.log_id()), m);
            }
            if let Some(r) = responder {
                r.send(());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let mut inner = self.0.borrow_mut();
        inner.applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TestConfig, Vec<u8>>>, io::Error> {
        Ok(self
            .0
            .borrow()
            .current
            .clone()
            .map(|(meta, snapshot)| SnapshotOf::<TestConfig, Vec<u8>> { meta, snapshot }))
    }
}

struct Builder;

fn build_err(e: impl std::fmt::Display) -> StorageError<TestConfig> {
    StorageError::from_io_error(
        ErrorSubject::Store,
        ErrorVerb::Read,
        io::Error::other(e.to_string()),
    )
}

impl StoreBuilder<TestConfig, Store, MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, Store, MemSm), StorageError<TestConfig>> {
        let dir = tempfile::tempdir().map_err(build_err)?;
        let store = Store::open(dir.path(), &LogStoreConfig::default()).map_err(build_err)?;
        Ok((dir, store, MemSm::default()))
    }
}

/// openraft's storage conformance suite: log state, reads (ranges, limited,
/// leader-bounded and plain streams), vote, append, truncate, purge, initial state
/// recovery from log + state machine, and the state-machine checks it bundles.
#[test]
fn openraft_storage_conformance_suite() {
    run(async { Suite::test_all(Builder).await.map_err(|e| e.to_string()) })
        .unwrap_or_else(|e| panic!("suite failed: {e}"));
}

fn log_id(term: u64, index: u64) -> LogIdOf<TestConfig> {
    LogIdOf::<TestConfig>::new(
        <TestConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

fn normal(term: u64, index: u64, data: &str) -> <TestConfig as openraft::RaftTypeConfig>::Entry {
    <TestConfig as openraft::RaftTypeConfig>::Entry::new_normal(
        log_id(term, index),
        data.to_string(),
    )
}

/// Appends and waits for openraft's flush notification, as Raft does.
async fn append_flushed(
    store: &mut Store,
    entries: Vec<<TestConfig as openraft::RaftTypeConfig>::Entry>,
) {
    let (tx, rx) = TestConfig::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append accepted");
    let flushed = TestConfig::timeout(Duration::from_secs(10), rx)
        .await
        .expect("flush reported in time")
        .expect("callback sent");
    flushed.expect("flush succeeded");
}

async fn read_all(store: &mut Store) -> Vec<(LogIdOf<TestConfig>, String)> {
    let mut reader = store.get_log_reader().await;
    reader
        .try_get_log_entries(..)
        .await
        .expect("read")
        .into_iter()
        .map(|e| {
            let data = match &e.payload {
                openraft::EntryPayload::Normal(d) => d.clone(),
                other => format!("{other}"),
            };
            (e.log_id(), data)
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = VoteOf::<TestConfig>::from_leader_id(
        <TestConfig as openraft::RaftTypeConfig>::LeaderId::new(3, 1),
        true,
    );

    run(async {
        let mut store = Store::open(dir.path(), &LogStoreConfig::default()).expect("open");
        store.save_vote(&vote).await.expect("vote");
        append_flushed(
            &mut store,
            (0..5).map(|i| normal(1, i, &format!("a{i}"))).collect(),
        )
        .await;
        append_flushed(&mut store, vec![normal(2, 5, "b5"), normal(2, 6, "b6")]).await;
        // Replace 6 by a new leader's entry, then purge the head.
        store
            .truncate_after(Some(log_id(2, 5)))
            .await
            .expect("truncate");
        append_flushed(&mut store, vec![normal(3, 6, "c6"), normal(3, 7, "c7")]).await;
        store.purge(log_id(1, 1)).await.expect("purge");
        store
            .save_committed(Some(log_id(3, 6)))
            .await
            .expect("committed");
        // The next synced flush carries the committed record too.
        append_flushed(&mut store, vec![normal(3, 8, "c8")]).await;
    });

    run(async {
        let mut store = Store::open(dir.path(), &LogStoreConfig::default()).expect("reopen");
        let mut reader = store.get_log_reader().await;
        assert_eq!(reader.read_vote().await.expect("vote"), Some(vote));

        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(3, 8)));
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(3, 6))
        );

        let expected = vec![
            (log_id(1, 2), "a2".to_string()),
            (log_id(1, 3), "a3".to_string()),
            (log_id(1, 4), "a4".to_string()),
            (log_id(2, 5), "b5".to_string()),
            (log_id(3, 6), "c6".to_string()),
            (log_id(3, 7), "c7".to_string()),
            (log_id(3, 8), "c8".to_string()),
        ];
        assert_eq!(read_all(&mut store).await, expected);

        // And the reopened log keeps accepting appends where it left off.
        append_flushed(&mut store, vec![normal(3, 9, "c9")]).await;
        assert_eq!(read_all(&mut store).await.len(), expected.len() + 1);
    });
}

#[test]
fn reads_survive_cache_eviction_and_chunk_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tiny chunks and cache: most reads go to closed chunk files.
    let config = LogStoreConfig {
        chunk_max_size: 4 << 10,
        log_cache_capacity: 1 << 10,
        log_cache_max_items: 8,
        read_buffer_size: 4 << 10,
    };
    let payload = "x".repeat(200);
    run(async {
        let mut store = Store::open(dir.path(), &config).expect("open");
        for i in 0..100 {
            append_flushed(&mut store, vec![normal(1, i, &format!("{i}-{payload}"))]).await;
        }
        let all = read_all(&mut store).await;
        assert_eq!(all.len(), 100);
        for (i, (id, data)) in all.iter().enumerate() {
            assert_eq!(id.index, i as u64);
            assert!(data.starts_with(&format!("{i}-")));
        }
        let stat = store.log.borrow().stat();
        assert!(
            stat.closed_chunks.len() > 2,
            "chunks rotated: {}",
            stat.closed_chunks.len()
        );
        assert!(
            stat.payload_cache_miss > 0,
            "some reads came from chunk files"
        );
        let closed_before = stat.closed_chunks.len();

        store.purge(log_id(1, 89)).await.expect("purge");
        let closed_after = store.log.borrow().stat().closed_chunks.len();
        assert!(
            closed_after < closed_before,
            "purged chunks dropped: {closed_before} -> {closed_after}"
        );
    });
    run(async {
        let mut store = Store::open(dir.path(), &config).expect("reopen");
        let all = read_all(&mut store).await;
        assert_eq!(all.first().map(|(id, _)| id.index), Some(90));
        assert_eq!(all.len(), 10);
    });
}

#[test]
fn a_locked_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Store::open(dir.path(), &LogStoreConfig::default()).expect("open");
    let second = Store::open(dir.path(), &LogStoreConfig::default());
    assert!(matches!(second, Err(super::LogStoreError::Open { .. })));
}
