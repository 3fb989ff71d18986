//! Tests of the topology state machine: openraft's storage suite (with the
//! raft-log store) and a single-node Raft on glommio restarted from its data dir.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use concord_model::ApplyError;
use concord_model::Command;
use concord_model::NodeSpec;
use concord_model::Operation;
use concord_model::TopologyState;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::alias::VoteOf;
use openraft::AnyError;
use openraft::AsyncRuntime;
use openraft::BasicNode;
use openraft::Config;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::OptionalSend;
use openraft::SnapshotPolicy;
use openraft::StorageError;
use tempfile::TempDir;

use super::AppliedMeta;
use super::TopoRaft;
use super::TopologyStateMachine;
use crate::raft::log_store::LogStoreConfig;
use crate::raft::runtime::GlommioRuntime;
use crate::raft::types::Snapshot;
use crate::raft::types::TopoConfig;
use crate::raft::types::TopoLogStore;
use crate::raft::types::TopoRequest;

const EVENT_BUFFER: usize = 64;

fn run<F: Future>(f: F) -> F::Output {
    GlommioRuntime::new(1).block_on(f)
}

fn quiet_hook() -> super::PublishHook {
    Box::new(|_, _, _| {})
}

struct Builder;

fn build_err(e: impl std::fmt::Display) -> StorageError<TopoConfig> {
    StorageError::from_io_error(
        ErrorSubject::Store,
        ErrorVerb::Read,
        io::Error::other(e.to_string()),
    )
}

impl StoreBuilder<TopoConfig, TopoLogStore, TopologyStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, TopoLogStore, TopologyStateMachine), StorageError<TopoConfig>> {
        let dir = tempfile::tempdir().map_err(build_err)?;
        let log = TopoLogStore::open(dir.path().join("log"), &LogStoreConfig::default())
            .map_err(build_err)?;
        let sm = TopologyStateMachine::open(
            dir.path().join("snapshot"),
            TopologyState::new(EVENT_BUFFER),
            quiet_hook(),
        )
        .map_err(build_err)?;
        Ok((dir, log, sm))
    }
}

/// openraft's storage suite with the real pair of this server: the raft-log store
/// and the topology state machine (membership and blank entries, applied state,
/// snapshot meta, building a snapshot on one and installing it on another).
#[test]
fn openraft_storage_suite_with_topology_state_machine() {
    run(async { Suite::test_all(Builder).await.map_err(|e| e.to_string()) })
        .unwrap_or_else(|e| panic!("suite failed: {e}"));
}

/// A network for a one-node cluster: no peer is ever reachable.
struct NoPeers;

impl RaftNetworkFactory<TopoConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        NoPeers
    }
}

fn unreachable() -> Unreachable<TopoConfig> {
    Unreachable::new(&AnyError::error("single-node test cluster"))
}

impl RaftNetworkV2<TopoConfig> for NoPeers {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TopoConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TopoConfig>, RPCError<TopoConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TopoConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TopoConfig>, RPCError<TopoConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TopoConfig>,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TopoConfig>, StreamingError<TopoConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

/// What the publication hook saw last.
#[derive(Default)]
struct Seen {
    state: Option<TopologyState>,
    meta: Option<AppliedMeta>,
    events: usize,
    calls: usize,
}

fn recording_hook(seen: Rc<RefCell<Seen>>) -> super::PublishHook {
    Box::new(move |state, events, meta| {
        let mut seen = seen.borrow_mut();
        seen.state = Some(state.clone());
        seen.meta = Some(meta);
        seen.events += events.len();
        seen.calls += 1;
    })
}

fn raft_config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots only when the test asks, and then the log is purged up to them,
        // so the restart below must restore from the snapshot file.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

async fn start(dir: &Path, seen: Rc<RefCell<Seen>>) -> TopoRaft {
    let log = TopoLogStore::open(dir.join("log"), &LogStoreConfig::default()).expect("log");
    let sm = TopologyStateMachine::open(
        dir.join("snapshot"),
        TopologyState::new(EVENT_BUFFER),
        recording_hook(seen),
    )
    .expect("state machine");
    TopoRaft::new(1, raft_config(), NoPeers, log, sm)
        .await
        .expect("raft")
}

fn register(i: u32) -> TopoRequest {
    TopoRequest(Command::single(
        1_000 + u64::from(i),
        Operation::RegisterNode {
            node_id: format!("data-{i}"),
            address: format!("127.0.0.1:{}", 9000 + i),
            labels: None,
        },
    ))
}

async fn write(raft: &TopoRaft, req: TopoRequest) -> Result<u64, ApplyError> {
    raft.client_write(req)
        .await
        .expect("raft accepted the write")
        .data
        .result
}

#[test]
fn single_node_raft_restarts_with_identical_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timeout = Some(Duration::from_secs(10));

    let (state_before, last_index) = run(async {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let raft = start(dir.path(), seen.clone()).await;
        raft.initialize(BTreeMap::from([(1u64, BasicNode::new("127.0.0.1:7071"))]))
            .await
            .expect("initialize");
        raft.wait(timeout)
            .current_leader(1, "leader")
            .await
            .expect("elected");

        let bootstrap = TopoRequest(Command::single(
            1_000,
            Operation::Bootstrap {
                nodes: (0..3)
                    .map(|i| NodeSpec {
                        node_id: format!("node-{i}"),
                        address: format!("127.0.0.1:{}", 8000 + i),
                    })
                    .collect(),
                shard_count: 8,
                replication_factor: 2,
            },
        ));
        assert_eq!(write(&raft, bootstrap).await, Ok(1));
        for i in 0..3 {
            assert_eq!(write(&raft, register(i)).await, Ok(2 + u64::from(i)));
        }
        // A refused change set answers the model's error and changes nothing.
        let stale = TopoRequest(Command::single(
            2_000,
            Operation::RemoveNode {
                node_id: "nobody".into(),
            },
        ));
        assert!(matches!(
            write(&raft, stale).await,
            Err(ApplyError::NotFound { .. })
        ));
        let cas = TopoRequest(register(9).0.with_expected_version(1));
        assert!(matches!(
            write(&raft, cas).await,
            Err(ApplyError::VersionMismatch {
                expected: 1,
                actual: 4
            })
        ));

        // Snapshot (the log is purged up to it), then more writes on top.
        raft.trigger().snapshot().await.expect("trigger snapshot");
        raft.wait(timeout)
            .metrics(
                |m| m.snapshot.is_some() && m.snapshot == m.last_applied && m.purged == m.snapshot,
                "snapshot built and log purged",
            )
            .await
            .expect("snapshot");
        for i in 3..5 {
            assert_eq!(write(&raft, register(i)).await, Ok(2 + u64::from(i)));
        }

        let (state, meta) = {
            let seen = seen.borrow();
            assert!(seen.events >= 6, "events published: {}", seen.events);
            (
                seen.state.clone().expect("published"),
                seen.meta.clone().expect("meta"),
            )
        };
        assert_eq!(state.version(), 6);
        raft.shutdown().await.expect("shutdown");
        (state, meta.last_applied_log_index)
    });

    assert!(dir.path().join("snapshot").join("snapshot.bin").exists());

    run(async {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let raft = start(dir.path(), seen.clone()).await;

        // Published at open, from the snapshot, before Raft replays anything.
        {
            let first = seen.borrow();
            assert!(first.calls >= 1);
        }
        raft.wait(timeout)
            .current_leader(1, "re-elected")
            .await
            .expect("leader");
        raft.wait(timeout)
            .applied_index_at_least(Some(last_index), "replayed")
            .await
            .expect("applied");

        let seen_state = seen.borrow().state.clone().expect("published");
        assert_eq!(seen_state, state_before, "state after restart");
        assert_eq!(seen_state.version(), 6);

        // And the node keeps going from there.
        assert_eq!(write(&raft, register(7)).await, Ok(7));
        raft.shutdown().await.expect("shutdown");
    });

    // The restart really needed the snapshot: the log no longer starts at 0.
    run(async {
        let mut log =
            TopoLogStore::open(dir.path().join("log"), &LogStoreConfig::default()).expect("log");
        let state = log.get_log_state().await.expect("log state");
        assert!(state.last_purged_log_id.is_some(), "{state:?}");
    });
}
