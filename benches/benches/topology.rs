//! The topology at production scale (1,000 data nodes, 16,384 shards): applying one
//! change set, publishing a version (every body encoded once), gzip, deltas, routing.

use std::hint::black_box;

use concord_model::{key_hash, Command, Operation, ShardStatus, TopologyState};
use concord_topo::notify::frames::VersionFrames;
use concord_topo::publish::Published;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const NODES: u32 = 1_000;
const SHARDS: u32 = 16_384;

fn large_state() -> TopologyState {
    concord_model::sample::bootstrapped(NODES, SHARDS, 10_000)
}

fn bench(c: &mut Criterion) {
    let state = large_state();
    let mut group = c.benchmark_group("topology_1000n_16384s");
    group.sample_size(20);

    let shard_id = state.shards().nth(42).expect("16k shards").shard_id.clone();
    let toggle = Command::single(
        2,
        Operation::UpdateShard {
            shard_id,
            primary_node: None,
            replica_nodes: None,
            status: Some(ShardStatus::Readonly),
        },
    );
    group.bench_function("apply_update_shard", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| black_box(s.apply(&toggle).expect("valid")),
            BatchSize::SmallInput,
        )
    });
    let register = Command::single(
        2,
        Operation::RegisterNode {
            node_id: "node-new".into(),
            address: "10.9.9.9:7000".into(),
            labels: None,
        },
    );
    group.bench_function("apply_register_node", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| black_box(s.apply(&register).expect("valid")),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("snapshot_json_encode", |b| {
        b.iter(|| black_box(serde_json::to_vec(&state.to_snapshot()).expect("encodes")))
    });
    group.bench_function("publish_version_and_encode_all_bodies", |b| {
        b.iter(|| {
            let p = Published::build(state.clone(), 1, None);
            black_box((
                p.snapshot_body().identity.len(),
                p.shards_body().identity.len(),
                p.nodes_body().identity.len(),
            ));
        })
    });
    let published = Published::build(state.clone(), 1, None);
    println!(
        "snapshot body: {} bytes identity, {} bytes gzip",
        published.snapshot_body().identity.len(),
        published.snapshot_body().gzip().len()
    );
    group.bench_function("snapshot_gzip", |b| {
        b.iter(|| {
            black_box(concord_topo::http::response::gzip(
                &published.snapshot_body().identity,
            ))
        })
    });
    let mut changed = state.clone();
    changed.apply(&toggle).expect("valid");
    // What executor 0 (Raft) spends per applied change set: the new publication,
    // including the SSE frames of its events (the big bodies are encoded lazily).
    let previous = Published::build(state.clone(), 1, None);
    group.bench_function("publish_next_version_with_sse_frames", |b| {
        b.iter(|| black_box(Published::build(changed.clone(), 2, Some(&previous))))
    });
    let events = changed
        .history()
        .since(changed.version() - 1, usize::MAX)
        .expect("held");
    group.bench_function("sse_frames_encode_one_change_set", |b| {
        b.iter(|| black_box(VersionFrames::encode(changed.version(), &events)))
    });
    group.bench_function("delta_since_previous_version", |b| {
        b.iter(|| black_box(changed.history().since(changed.version() - 1, usize::MAX)))
    });
    group.finish();

    let mut route = c.benchmark_group("route");
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("user:{i}").into_bytes())
        .collect();
    let mut i = 0;
    route.bench_function("key_hash_sha256", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(key_hash(&keys[i]))
        })
    });
    route.bench_function("shard_for_hash_16384", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(state.shard_for_hash(key_hash(&keys[i])).map(|s| s.epoch))
        })
    });
    route.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
