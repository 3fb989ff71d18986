//! Criterion benchmarks of the client's hot paths: `route(key)` (goal < 100 ns, no
//! allocation), routing a pre-hashed key, the SHA-256 key hash alone, the model's
//! own lookup for comparison, and applying one change set (events + a new table).

use std::hint::black_box;

use concordkv_topology::testkit::{bootstrap_state, serve_snapshot, set_health, toggle_shard};
use concordkv_topology::{key_hash, ClientOptions, Health, RoutingTable, TopologyClient};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

fn keys() -> Vec<Vec<u8>> {
    (0..1024)
        .map(|i| format!("user:{i:08}").into_bytes())
        .collect()
}

fn bench_route(c: &mut Criterion) {
    let keys = keys();
    for (nodes, shards) in [(6u32, 64u32), (1000, 16_384)] {
        let state = bootstrap_state(nodes, shards);
        let table = RoutingTable::build(&state);
        let mut group = c.benchmark_group(format!("route_{shards}_shards"));
        let mut i = 0usize;
        group.bench_function("table_route_key", |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let r = table.route(black_box(&keys[i])).unwrap();
                black_box((r.epoch(), r.primary().address.len()))
            })
        });
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        group.bench_function("table_route_hash", |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let r = table.route_hash(black_box(hashes[i])).unwrap();
                black_box((r.epoch(), r.primary().address.len()))
            })
        });
        // Through the public client: the arc-swap load, the hash and the lookup.
        let client = TopologyClient::new(ClientOptions::new([serve_snapshot(state.clone())]))
            .expect("valid options");
        client
            .wait_ready(std::time::Duration::from_secs(30))
            .expect("the loopback snapshot");
        group.bench_function("client_route_key", |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let r = client.route(black_box(&keys[i])).unwrap();
                black_box((r.epoch(), r.primary().address.len()))
            })
        });
        group.bench_function("model_shard_for_hash", |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(state.shard_for_hash(black_box(hashes[i])).map(|s| s.epoch))
            })
        });
        group.finish();
    }
    c.bench_function("key_hash_sha256_be64", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(key_hash(black_box(&keys[i])))
        })
    });
}

fn bench_apply(c: &mut Criterion) {
    for (nodes, shards) in [(6u32, 64u32), (1000, 16_384)] {
        let base = bootstrap_state(nodes, shards);
        let shard = base.shards().nth(7).unwrap().shard_id.clone();
        let mut next = base.clone();
        let events = toggle_shard(&mut next, &shard);
        let version = next.version();
        let mut group = c.benchmark_group(format!("apply_{shards}_shards"));
        group.sample_size(if shards > 1000 { 20 } else { 100 });
        group.bench_function("apply_events_one_shard", |b| {
            b.iter_batched(
                || base.clone(),
                |mut s| {
                    s.apply_events(version, &events).unwrap();
                    s
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("apply_events_and_build_table", |b| {
            b.iter_batched(
                || base.clone(),
                |mut s| {
                    s.apply_events(version, &events).unwrap();
                    RoutingTable::build(&s)
                },
                BatchSize::SmallInput,
            )
        });
        // The health monitor's change sets: the layout is shared, only nodes copied.
        let node = base.nodes().nth(3).unwrap().node_id.clone();
        let mut healthier = base.clone();
        let health_events = set_health(&mut healthier, &node, Health::Degraded);
        let health_version = healthier.version();
        let base_table = RoutingTable::build(&base);
        group.bench_function("apply_health_change_and_patch_table", |b| {
            b.iter_batched(
                || base.clone(),
                |mut s| {
                    s.apply_events(health_version, &health_events).unwrap();
                    base_table.next(&s, &health_events)
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench_route, bench_apply);
criterion_main!(benches);
