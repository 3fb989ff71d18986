//! Network partitions between topology servers, through the test-controlled proxy
//! in front of every peer port: the minority side acknowledges no write and refuses
//! linearizable reads, the majority keeps working, everyone converges after the heal,
//! and no term ever has two leaders.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concord_testkit::http::request_within;
use concord_testkit::wait_for;

use crate::cluster_support::{data_nodes, join_versions, linearizable_version, put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// Samples every server's status until `stop`; returns term → servers that called
/// themselves leader in it.
fn watch_leaders(
    servers: Vec<(u64, SocketAddr)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<u64, BTreeSet<u64>>> {
    std::thread::spawn(move || {
        let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            for (id, addr) in &servers {
                let limit = Duration::from_secs(2);
                let Ok(r) = request_within(*addr, "GET", "/api/cluster/status", &[], b"", limit)
                else {
                    continue;
                };
                let status = &r.json()["cluster"];
                if status["state"] == "Leader" {
                    let term = status["term"].as_u64().unwrap();
                    leaders.entry(term).or_default().insert(*id);
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        leaders
    })
}

fn assert_no_split_brain(leaders: &BTreeMap<u64, BTreeSet<u64>>) {
    assert!(!leaders.is_empty(), "no leader was ever seen");
    for (term, who) in leaders {
        assert_eq!(who.len(), 1, "term {term} had leaders {who:?}");
    }
}

fn servers(cluster: &Cluster) -> Vec<(u64, SocketAddr)> {
    cluster.nodes.iter().map(|n| (n.id, n.client)).collect()
}

fn term_of(cluster: &Cluster, id: u64) -> u64 {
    cluster.node(id).status().unwrap()["term"].as_u64().unwrap()
}

#[test]
fn a_partitioned_follower_takes_no_write_and_the_majority_carries_on() {
    let cluster = Cluster::start(3, true, "");
    let leader = cluster.leader(WAIT);
    let ids = cluster.ids();
    let cut = *ids.iter().find(|&&id| id != leader).unwrap();
    let other = *ids.iter().find(|&&id| id != leader && id != cut).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_leaders(servers(&cluster), stop.clone());
    let before = put_node(cluster.node(leader).client, "before", None).unwrap();
    cluster.converged(&ids, before, WAIT);

    cluster.partitions.as_ref().unwrap().isolate(cut, &ids);
    // Minority: no write is acknowledged, no linearizable read is answered.
    let isolated = cluster.node(cut);
    assert_eq!(put_node(isolated.client, "minority", None), Err(503));
    assert_eq!(linearizable_version(isolated.client), Err(503));
    // Majority: writes through either server, linearizable reads see them.
    let v1 = put_node(cluster.node(other).client, "majority-1", None).expect("majority write");
    let v2 = put_node(cluster.node(leader).client, "majority-2", None).expect("majority write");
    assert!(linearizable_version(cluster.node(other).client).unwrap() >= v2);
    // The cut server serves its (stale) applied state and has not moved on.
    assert!(isolated.version().unwrap().0 < v1);
    assert_eq!(linearizable_version(isolated.client), Err(503));
    // Pre-vote: failing to reach anyone, it did not inflate its term.
    assert!(term_of(&cluster, cut) <= term_of(&cluster, leader));

    cluster.partitions.as_ref().unwrap().heal();
    cluster.converged(&ids, v2, WAIT);
    wait_for(WAIT, "linearizable reads on the healed server", || {
        linearizable_version(isolated.client)
            .ok()
            .filter(|v| *v >= v2)
    });
    let held = data_nodes(isolated);
    assert!(held.contains_key("majority-1") && held.contains_key("majority-2"));
    assert!(
        !held.contains_key("minority"),
        "an unacknowledged write appeared"
    );
    stop.store(true, Ordering::Relaxed);
    assert_no_split_brain(&watcher.join().unwrap());
}

#[test]
fn a_partitioned_leader_is_replaced_and_its_side_commits_nothing() {
    let cluster = Cluster::start(3, true, "");
    let old = cluster.leader(WAIT);
    let ids = cluster.ids();
    let majority: Vec<u64> = ids.iter().copied().filter(|&id| id != old).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_leaders(servers(&cluster), stop.clone());
    let before = put_node(cluster.node(old).client, "before", None).unwrap();
    cluster.converged(&ids, before, WAIT);

    cluster.partitions.as_ref().unwrap().isolate(old, &ids);
    let cut = cluster.node(old);
    // Sent at once, before it can know it is cut off: it cannot commit it.
    assert_eq!(put_node(cut.client, "minority-1", None), Err(503));
    let new = cluster.leader_among(&majority, WAIT);
    assert_ne!(new, old);
    let mut acked = Vec::new();
    for (i, id) in majority.iter().enumerate() {
        let name = format!("majority-{i}");
        let v = put_node(cluster.node(*id).client, &name, None).expect("majority write");
        acked.push((name, v));
    }
    // The old leader, alone: no write, no linearizable read.
    assert_eq!(put_node(cut.client, "minority-2", None), Err(503));
    assert_eq!(linearizable_version(cut.client), Err(503));

    cluster.partitions.as_ref().unwrap().heal();
    let newest = acked.iter().map(|(_, v)| *v).max().unwrap();
    cluster.converged(&ids, newest, WAIT);
    let status = wait_for(WAIT, "the old leader follows the new one", || {
        cut.status().filter(|s| s["state"] == "Follower")
    });
    assert!(status["leader"].as_u64().is_some_and(|l| l != old));
    for id in &ids {
        let joined = join_versions(cluster.node(*id));
        for (name, v) in &acked {
            assert_eq!(joined.get(name), Some(v), "node {id} lost {name}");
        }
        assert!(!joined.contains_key("minority-1") && !joined.contains_key("minority-2"));
    }
    stop.store(true, Ordering::Relaxed);
    assert_no_split_brain(&watcher.join().unwrap());
}
