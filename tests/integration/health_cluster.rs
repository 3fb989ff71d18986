//! The health monitor in a three-server cluster: only the leader probes, a follower
//! forwards `POST /api/topology/health` to it, and when the leader dies while a data
//! node is down, the new leader keeps probing and the node's state stays right.

use std::time::Duration;

use serde_json::Value;

use concord_testkit::wait_for;

use crate::cluster_support::{Cluster, Node};
use crate::data_node::DataNode;

const LIMIT: Duration = Duration::from_secs(30);

/// The cluster tests' Raft timing, with the health monitor on and fast.
const YAML: &str = "\
raft:
  heartbeat_interval: 50ms
  election_timeout_min: 300ms
  election_timeout_max: 600ms
http:
  write_timeout: 2s
topology:
  health_check:
    interval: 200ms
    timeout: 100ms
    retry_count: 0
    failure_threshold: 4
    success_threshold: 2
";

fn node_state(server: &Node, id: &str) -> Option<Value> {
    let r = server.get(&format!("/api/topology/nodes?nodeId={id}"))?;
    (r.status == 200).then(|| r.json()["node"].clone())
}

fn wait_health(server: &Node, id: &str, health: &str) -> Value {
    wait_for(
        LIMIT,
        &format!("{id} {health} on node {}", server.id),
        || node_state(server, id).filter(|n| n["health"] == health),
    )
}

fn monitoring(server: &Node) -> bool {
    server
        .get("/api/topology/stats")
        .is_some_and(|r| r.json()["healthMonitor"]["monitoring"] == true)
}

#[test]
fn the_new_leader_keeps_probing_and_the_state_stays_correct() {
    let mut cluster = Cluster::start_with(3, false, YAML);
    let leader = cluster.leader(LIMIT);
    let mut down = DataNode::start();
    let up = DataNode::start();
    for (id, node) in [("down", &down), ("up", &up)] {
        let body = format!(r#"{{"address":"{}"}}"#, node.address());
        let r = cluster
            .node(leader)
            .send("PUT", &format!("/api/topology/nodes/{id}"), &[], &body)
            .expect("the leader answers");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    wait_health(cluster.node(follower), "down", "healthy");
    wait_health(cluster.node(follower), "up", "healthy");
    // Only the leader probes.
    for id in cluster.ids() {
        assert_eq!(monitoring(cluster.node(id)), id == leader, "node {id}");
    }

    // A follower forwards a manual round to the leader and answers its report.
    let r = cluster
        .node(follower)
        .send("POST", "/api/topology/health?nodeId=up", &[], "")
        .expect("the follower answers");
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["nodeId"], "up");
    assert_eq!(results[0]["health"], "healthy");
    let r = cluster
        .node(follower)
        .send("POST", "/api/topology/health?nodeId=nope", &[], "")
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // The node goes down; the leader sees it degrade, then dies mid-count.
    down.stop();
    let degraded = wait_health(cluster.node(follower), "down", "degraded");
    assert!(degraded["failureCount"].as_u64().unwrap() < 4);
    cluster.kill(leader);
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let new_leader = cluster.leader_among(&survivors, LIMIT);
    assert_ne!(new_leader, leader);
    wait_for(LIMIT, "the new leader probes", || {
        monitoring(cluster.node(new_leader)).then_some(())
    });
    // The new leader continues the count from the committed one and finishes the job.
    let unhealthy = wait_health(cluster.node(new_leader), "down", "unhealthy");
    assert_eq!(unhealthy["failureCount"], 4, "{unhealthy}");
    assert_eq!(
        node_state(cluster.node(new_leader), "up").unwrap()["health"],
        "healthy"
    );
    let requests = up.requests();
    wait_for(LIMIT, "the up node is still probed", || {
        (up.requests() >= requests + 3).then_some(())
    });

    down.restart();
    for id in &survivors {
        wait_health(cluster.node(*id), "down", "healthy");
    }
    // The old leader, back as a follower, catches up and does not probe.
    cluster.restart(leader);
    wait_health(cluster.node(leader), "down", "healthy");
    let back = cluster.leader_among(&[], LIMIT);
    for id in cluster.ids() {
        wait_for(LIMIT, "exactly the leader probes", || {
            (monitoring(cluster.node(id)) == (id == back)).then_some(())
        });
    }
}
