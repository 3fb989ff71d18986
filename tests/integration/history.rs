//! A concurrent history: compare-and-set writers and linearizable readers, each on a
//! different server of a 3-server cluster, checked afterwards for the guarantees a
//! router client relies on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cluster_support::{join_versions, linearizable_version, put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Kind {
    /// A linearizable read of the version.
    Read,
    /// `PUT node` with `If-Match: expected`.
    Write { name: String, expected: u64 },
}

#[derive(Clone, Debug)]
struct Op {
    client: usize,
    kind: Kind,
    start: Instant,
    end: Instant,
    outcome: Result<u64, u16>,
}

fn record(client: usize, kind: Kind, f: impl FnOnce() -> Result<u64, u16>) -> Op {
    let start = Instant::now();
    let outcome = f();
    Op {
        client,
        kind,
        start,
        end: Instant::now(),
        outcome,
    }
}

/// Reads the version, then tries to write at exactly that version; `rounds` times.
fn cas_writer(client: usize, server: SocketAddr, rounds: usize, until: Instant) -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..rounds {
        if Instant::now() > until {
            break;
        }
        let read = record(client, Kind::Read, || linearizable_version(server));
        let seen = read.outcome;
        ops.push(read);
        let Ok(expected) = seen else { continue };
        let name = format!("cas-{client}-{i}");
        let kind = Kind::Write {
            name: name.clone(),
            expected,
        };
        ops.push(record(client, kind, || {
            put_node(server, &name, Some(expected))
        }));
    }
    ops
}

fn reader(client: usize, server: SocketAddr, rounds: usize, until: Instant) -> Vec<Op> {
    (0..rounds)
        .take_while(|_| Instant::now() < until)
        .map(|_| record(client, Kind::Read, || linearizable_version(server)))
        .collect()
}

#[test]
fn cas_writers_and_linearizable_readers_on_different_servers_see_a_linear_history() {
    let cluster = Cluster::start(3, false, "");
    cluster.leader(WAIT);
    let until = Instant::now() + Duration::from_secs(20);
    let servers: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
    let mut threads = Vec::new();
    for (i, server) in servers.iter().copied().enumerate() {
        threads.push(std::thread::spawn(move || cas_writer(i, server, 20, until)));
        threads.push(std::thread::spawn(move || {
            reader(10 + i, server, 40, until)
        }));
    }
    let ops: Vec<Op> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();

    let acked: Vec<(&Op, &String, u64, u64)> = ops
        .iter()
        .filter_map(|op| match (&op.kind, op.outcome) {
            (Kind::Write { name, expected }, Ok(v)) => Some((op, name, *expected, v)),
            _ => None,
        })
        .collect();
    assert!(
        acked.len() >= 3,
        "too few writes succeeded: {}",
        acked.len()
    );
    let reads = ops
        .iter()
        .filter(|op| matches!(op.kind, Kind::Read) && op.outcome.is_ok())
        .count();
    assert!(reads >= 60, "too few reads succeeded: {reads}");
    eprintln!(
        "history: {} operations, {} acknowledged CAS writes, {reads} linearizable reads",
        ops.len(),
        acked.len()
    );
    // Every failure is a CAS conflict, never an error: the cluster was healthy.
    for op in &ops {
        if let (Kind::Write { .. }, Err(status)) = (&op.kind, op.outcome) {
            assert_eq!(status, 409, "{op:?}");
        }
        if let (Kind::Read, Err(status)) = (&op.kind, op.outcome) {
            panic!("a linearizable read failed with {status}: {op:?}");
        }
    }

    // Compare-and-set: an acknowledged write produced exactly the version after the
    // one it named, and no version was acknowledged twice.
    let mut versions: Vec<u64> = acked.iter().map(|(_, _, _, v)| *v).collect();
    for (op, _, expected, v) in &acked {
        assert_eq!(*v, expected + 1, "{op:?}");
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        acked.len(),
        "a version was acknowledged twice"
    );

    // No client ever sees the version go backwards.
    let mut clients: Vec<usize> = ops.iter().map(|op| op.client).collect();
    clients.sort_unstable();
    clients.dedup();
    for client in clients {
        let mut mine: Vec<&Op> = ops.iter().filter(|op| op.client == client).collect();
        mine.sort_by_key(|op| op.start);
        let mut highest = 0;
        for op in mine {
            if let Ok(v) = op.outcome {
                assert!(
                    v >= highest,
                    "client {client} saw {v} after {highest}: {op:?}"
                );
                highest = v;
            }
        }
    }

    // Every acknowledged write is seen by every linearizable read that began after it
    // was acknowledged, whichever server served the read.
    for (write, name, _, version) in &acked {
        for read in ops.iter().filter(|op| matches!(op.kind, Kind::Read)) {
            if read.start > write.end {
                let seen = read.outcome.unwrap();
                assert!(
                    seen >= *version,
                    "read {read:?} missed write {name} at version {version}"
                );
            }
        }
    }

    // And every server's history holds each acknowledged write at its version.
    let newest = *versions.last().unwrap();
    cluster.converged(&cluster.ids(), newest, WAIT);
    for node in &cluster.nodes {
        let joined = join_versions(node);
        for (_, name, _, version) in &acked {
            assert_eq!(joined.get(*name), Some(version), "node {}: {name}", node.id);
        }
    }
}
