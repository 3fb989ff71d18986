//! A replicated cluster of real servers on loopback: formation, writes on any server,
//! membership routes, leader crash under load, compaction and snapshot catch-up.
//! Partitions are in `partition.rs`, the concurrent history check in `history.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use concord_testkit::http::request_within;
use concord_testkit::wait_for;

use crate::cluster_support::{data_nodes, join_versions, linearizable_version, put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

pub(crate) fn voters(status: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["role"] == "voter")
        .map(|m| m["nodeId"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// (id, role, address) of every member (without the moving replication progress).
fn roles(status: &Value) -> Vec<(u64, String, String)> {
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["nodeId"].as_u64().unwrap(),
                m["role"].as_str().unwrap().to_string(),
                m["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn three_servers_agree_on_every_write_sent_to_each_in_turn() {
    let cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    for node in &cluster.nodes {
        let status = node.status().expect("status");
        assert_eq!(voters(&status), vec![1, 2, 3], "{status}");
        assert_eq!(status["leader"].as_u64(), Some(leader));
    }

    let mut acked = Vec::new();
    let mut last = 0;
    for round in 0..6 {
        let node = &cluster.nodes[round % 3];
        let name = format!("n{round}");
        let version = put_node(node.client, &name, None)
            .unwrap_or_else(|status| panic!("write on node {} answered {status}", node.id));
        assert!(version > last, "versions only grow: {version} after {last}");
        last = version;
        acked.push((name, version));
        // Read-your-writes on the server that took it, leader or not.
        assert!(node.version().unwrap().0 >= version);
        // Every server's linearizable read sees it at once.
        for other in &cluster.nodes {
            let seen = linearizable_version(other.client).expect("linearizable read");
            assert!(seen >= version, "node {} read {seen} < {version}", other.id);
        }
    }

    let (version, hash) = cluster.converged(&cluster.ids(), last, WAIT);
    assert_eq!(version, last);
    let snapshots: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|n| n.get("/api/topology/snapshot").unwrap().json()["snapshot"].clone())
        .collect();
    for (node, snapshot) in cluster.nodes.iter().zip(&snapshots) {
        assert_eq!(snapshot["configHash"], Value::String(hash.clone()));
        assert_eq!(
            snapshot["version"].as_u64(),
            Some(version),
            "node {}",
            node.id
        );
        assert_eq!(snapshot["nodeStatus"], snapshots[0]["nodeStatus"]);
        // Each acknowledged write is the change set of the version it was acknowledged with.
        let joined = join_versions(node);
        for (name, v) in &acked {
            assert_eq!(joined.get(name), Some(v), "node {}: {name}", node.id);
        }
    }
}

#[test]
fn membership_routes_refuse_bad_input_and_change_nothing() {
    let cluster = Cluster::start(3, false, "");
    let leader = cluster.node(cluster.leader(WAIT));
    let follower = cluster.nodes.iter().find(|n| n.id != leader.id).unwrap();
    let before = leader.status().unwrap();

    let post = |node: &crate::cluster_support::Node, path: &str, body: &str| {
        node.send("POST", path, &[("Content-Type", "application/json")], body)
            .expect("an answer")
    };
    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "/api/cluster/membership",
            r#"{"members":[1,2,9]}"#,
            400,
            "node 9",
        ),
        (
            "/api/cluster/membership",
            r#"{"members":[]}"#,
            400,
            "at least one",
        ),
        (
            "/api/cluster/membership",
            r#"{"members":[1,1,2]}"#,
            400,
            "twice",
        ),
        (
            "/api/cluster/membership",
            r#"{"members":"1,2"}"#,
            400,
            "members",
        ),
        (
            "/api/cluster/membership",
            r#"{"voters":[1,2]}"#,
            400,
            "voters",
        ),
        ("/api/cluster/membership", "{not json", 400, "malformed"),
        ("/api/cluster/membership", "", 400, "empty"),
        ("/api/cluster/learners", r#"{"nodeId":4}"#, 400, "address"),
        (
            "/api/cluster/learners",
            r#"{"nodeId":4,"address":"nowhere"}"#,
            400,
            "nowhere",
        ),
        (
            "/api/cluster/learners",
            r#"{"nodeId":0,"address":"127.0.0.1:9"}"#,
            400,
            "nodeId",
        ),
        (
            "/api/cluster/learners",
            r#"{"nodeId":2,"address":"127.0.0.1:9"}"#,
            409,
            "already a voter",
        ),
    ];
    for (path, body, status, needle) in cases {
        let r = post(leader, path, body);
        assert_eq!(r.status, *status, "{path} {body}: {}", r.text());
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(needle),
            "{path} {body}: `{message}` lacks `{needle}`"
        );
    }
    // An address already taken by another member.
    let taken = format!(
        r#"{{"nodeId":7,"address":"{}"}}"#,
        cluster.node(leader.id).advertised
    );
    assert_eq!(post(leader, "/api/cluster/learners", &taken).status, 409);
    // A follower names the leader instead of acting.
    let r = post(follower, "/api/cluster/membership", r#"{"members":[1,2]}"#);
    assert_eq!(r.status, 421, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains(&format!("node {}", leader.id)));
    // Wrong method, unknown query parameter.
    assert_eq!(leader.get("/api/cluster/learners").unwrap().status, 405);
    let r = post(
        leader,
        "/api/cluster/membership?force=1",
        r#"{"members":[1,2,3]}"#,
    );
    assert_eq!(r.status, 400);

    // Nothing was applied: same voters, no learner, no new log entry.
    let after = leader.status().unwrap();
    assert_eq!(roles(&after), roles(&before));
    assert_eq!(after["lastLogIndex"], before["lastLogIndex"]);
    // And the unchanged voter set is accepted as a no-op.
    let r = post(leader, "/api/cluster/membership", r#"{"members":[3,2,1]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        leader.status().unwrap()["lastLogIndex"],
        before["lastLogIndex"]
    );
}

/// What a background writer saw: (name, when the answer came, the outcome).
type Outcomes = Arc<Mutex<Vec<(String, Instant, Result<u64, u16>)>>>;

/// Writes continuously, each write to the next server in turn, until `stop`.
fn continuous_writer(
    targets: Vec<std::net::SocketAddr>,
    stop: Arc<AtomicBool>,
) -> (Outcomes, std::thread::JoinHandle<()>) {
    let outcomes: Outcomes = Default::default();
    let seen = outcomes.clone();
    let handle = std::thread::spawn(move || {
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let name = format!("w{i}");
            let result = put_node(targets[i % targets.len()], &name, None);
            if result.is_err() {
                std::thread::sleep(Duration::from_millis(5));
            }
            seen.lock().unwrap().push((name, Instant::now(), result));
            i += 1;
        }
    });
    (outcomes, handle)
}

fn acked_since(outcomes: &Outcomes, since: Instant) -> usize {
    outcomes
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at, r)| *at > since && r.is_ok())
        .count()
}

#[test]
fn leader_crash_under_continuous_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, false, "");
    let old_leader = cluster.leader(WAIT);
    let stop = Arc::new(AtomicBool::new(false));
    let targets = cluster.nodes.iter().map(|n| n.client).collect();
    let (outcomes, writer) = continuous_writer(targets, stop.clone());
    let started = Instant::now();
    wait_for(WAIT, "10 writes before the crash", || {
        (acked_since(&outcomes, started) >= 10).then_some(())
    });

    let killed_at = Instant::now();
    cluster.kill(old_leader);
    wait_for(WAIT, "10 writes after the crash", || {
        (acked_since(&outcomes, killed_at) >= 10).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let outcomes = outcomes.lock().unwrap().clone();
    let first_after = outcomes
        .iter()
        .find(|(_, at, r)| *at > killed_at && r.is_ok())
        .map(|(_, at, _)| *at - killed_at)
        .unwrap();
    let refused = outcomes
        .iter()
        .filter(|(_, at, r)| *at > killed_at && r.is_err())
        .count();
    eprintln!("leader crash: writes refused for {first_after:?} ({refused} refused attempts)");
    assert!(
        first_after < Duration::from_secs(5),
        "writes were refused for {first_after:?} after the leader was killed"
    );

    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != old_leader)
        .collect();
    let new_leader = cluster.leader_among(&survivors, WAIT);
    assert_ne!(new_leader, old_leader);
    let acked: Vec<(&String, u64)> = outcomes
        .iter()
        .filter_map(|(name, _, r)| r.as_ref().ok().map(|v| (name, *v)))
        .collect();
    let newest = acked.iter().map(|(_, v)| *v).max().unwrap();
    cluster.converged(&survivors, newest, WAIT);
    for id in &survivors {
        let joined = join_versions(cluster.node(*id));
        for (name, version) in &acked {
            assert_eq!(joined.get(*name), Some(version), "node {id} lost {name}");
        }
    }

    // The crashed server comes back with its log and converges.
    cluster.restart(old_leader);
    cluster.converged(&cluster.ids(), newest, WAIT);
    let joined = join_versions(cluster.node(old_leader));
    for (name, version) in &acked {
        assert_eq!(
            joined.get(*name),
            Some(version),
            "restarted node lost {name}"
        );
    }
    let status = cluster.node(old_leader).status().unwrap();
    assert_eq!(status["leader"].as_u64(), Some(new_leader));
    assert_eq!(voters(&status), vec![1, 2, 3]);
}

#[test]
fn compaction_then_a_new_learner_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, false, "  snapshot_every: 20\n  keep_after_snapshot: 5\n");
    let members = [1, 2, 3];
    let leader_id = cluster.leader(WAIT);
    let mut last = 0;
    for i in 0..60 {
        let node = &cluster.nodes[i % 3];
        last = put_node(node.client, &format!("c{i}"), None).expect("write");
    }
    // The leader compacted: a snapshot, and the log purged behind it.
    let purged = wait_for(WAIT, "the leader's log purged behind a snapshot", || {
        let s = cluster.node(leader_id).status()?;
        let purged = s["purgedIndex"].as_u64()?;
        (s["snapshotIndex"].as_u64()? >= 20 && purged > 0).then_some(purged)
    });

    // A new server joins: it initialises nothing and is not ready until added.
    let joining = cluster.start_joining(4);
    assert_eq!(joining.get("/readyz").unwrap().status, 503);
    assert_eq!(joining.version().unwrap().0, 0);
    let address = joining.advertised.to_string();
    let leader = cluster.node(leader_id);
    let r = leader
        .send(
            "POST",
            "/api/cluster/learners",
            &[],
            &format!(r#"{{"nodeId":4,"address":"{address}","wait":true}}"#),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let after_add = roles(&r.json()["cluster"]);
    assert!(
        after_add.contains(&(4, "learner".into(), address.clone())),
        "{after_add:?}"
    );

    // It caught up by snapshot: the entries before `purged` exist nowhere as log.
    let (version, _) = cluster.converged(&[1, 2, 3, 4], last, WAIT);
    let learner = cluster.node(4).status().unwrap();
    let installed = learner["snapshotIndex"]
        .as_u64()
        .expect("learner has a snapshot");
    assert!(
        installed >= purged,
        "snapshot {installed} < purged {purged}"
    );
    assert!(learner["purgedIndex"].as_u64().unwrap() >= purged);
    assert_eq!(data_nodes(cluster.node(4)).len(), 60);
    assert_eq!(cluster.node(4).version().unwrap().0, version);

    // Promote it, then replace a follower with it.
    let post = |body: &str| {
        let r = request_within(
            cluster.node(leader_id).client,
            "POST",
            "/api/cluster/membership",
            &[],
            body.as_bytes(),
            WAIT,
        )
        .unwrap();
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        r.json()["cluster"].clone()
    };
    assert_eq!(voters(&post(r#"{"members":[1,2,3,4]}"#)), vec![1, 2, 3, 4]);
    let gone = *members.iter().find(|&&id| id != leader_id).unwrap();
    let remaining: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&id| id != gone).collect();
    let status = post(&format!(r#"{{"members":{remaining:?}}}"#));
    assert_eq!(voters(&status), remaining);
    assert!(status["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["nodeId"].as_u64() != Some(gone)));
    cluster.kill(gone);

    // The new voter takes writes (forwarding them) and the three agree.
    let v = put_node(cluster.node(4).client, "after-replace", None).expect("write via node 4");
    cluster.converged(&remaining, v, WAIT);
}

#[test]
fn the_peer_port_refuses_bad_requests_before_raft_sees_them() {
    let yaml = format!(
        "{}auth_token: s3cret\n",
        crate::cluster_support::test_config("  max_message_bytes: 65536\n")
    );
    let cluster = Cluster::start_with(1, false, &yaml);
    let node = cluster.node(1);
    let peer = node.advertised;
    let secret = format!("Bearer {}", crate::cluster_support::PEER_SECRET);
    let token = ("Authorization", secret.as_str());
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        request_within(peer, method, path, headers, body, WAIT).expect("the peer port answers")
    };
    let cases: Vec<(u16, concord_testkit::Response)> = vec![
        (401, send("POST", "/raft/append", &[], b"\x01\x02")),
        (
            401,
            send(
                "POST",
                "/raft/append",
                &[("Authorization", "Bearer nope")],
                b"",
            ),
        ),
        (405, send("GET", "/raft/vote", &[token], b"")),
        (404, send("POST", "/raft/nope", &[token], b"")),
        (
            400,
            send("POST", "/raft/append", &[token], b"\xff\xff\xff\xff\xff"),
        ),
        (400, send("POST", "/raft/write", &[token], b"")),
        (
            413,
            send("POST", "/raft/snapshot", &[token], &vec![0u8; 70_000]),
        ),
    ];
    for (status, r) in &cases {
        assert_eq!(r.status, *status, "{}", r.text());
        assert!(!r.text().is_empty(), "a refusal says why");
    }
    assert!(cases[4].1.text().contains("not a valid peer message"));
    assert!(cases[6].1.text().contains("max_message_bytes"));
    // Raft is untouched and still takes writes.
    let r = node
        .send(
            "PUT",
            "/api/topology/nodes/after",
            &[("Authorization", "Bearer s3cret")],
            r#"{"address":"127.0.0.1:1"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn five_servers_keep_writing_with_two_down_and_stop_with_three() {
    let mut cluster = Cluster::start(5, false, "");
    let first = cluster.leader(WAIT);
    let v = put_node(cluster.node(first).client, "five", None).expect("write");
    cluster.converged(&cluster.ids(), v, WAIT);

    // Two down, the leader among them: three of five are a majority.
    let other = *cluster.ids().iter().find(|&&id| id != first).unwrap();
    cluster.kill(first);
    cluster.kill(other);
    let alive: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != first && *id != other)
        .collect();
    let leader = cluster.leader_among(&alive, WAIT);
    assert!(alive.contains(&leader));
    let mut last = v;
    for (i, id) in alive.iter().enumerate() {
        let client = cluster.node(*id).client;
        last = wait_for(WAIT, "a write on a majority of three", || {
            put_node(client, &format!("three-{i}"), None).ok()
        });
        assert!(linearizable_version(client).unwrap() >= last);
    }
    cluster.converged(&alive, last, WAIT);

    // A third down: two of five cannot commit. Once the leader's lease has run out
    // (election_timeout_max, 600 ms here) it refuses at once, so these writes are
    // known not to be applied (a write cut off by the timeout instead would have an
    // unknown outcome: it may commit later).
    let third = *alive.iter().find(|&&id| id != leader).unwrap();
    cluster.kill(third);
    std::thread::sleep(Duration::from_millis(1200));
    let left: Vec<u64> = alive.iter().copied().filter(|&id| id != third).collect();
    for id in &left {
        let node = cluster.node(*id);
        let started = Instant::now();
        let r = node
            .send(
                "PUT",
                &format!("/api/topology/nodes/no-quorum-{id}"),
                &[],
                r#"{"address":"127.0.0.1:1"}"#,
            )
            .unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.text().contains("no Raft leader"), "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        assert_eq!(linearizable_version(node.client), Err(503));
    }
    // Back to three: writes resume, and the refused write never appears.
    cluster.restart(third);
    let client = cluster.node(third).client;
    let resumed = wait_for(WAIT, "writes resume with three of five", || {
        put_node(client, "back", None).ok()
    });
    let mut three = left.clone();
    three.push(third);
    cluster.converged(&three, resumed, WAIT);
    for id in &three {
        let held = data_nodes(cluster.node(*id));
        assert!(held.keys().all(|k| !k.starts_with("no-quorum")), "{held:?}");
    }
}
