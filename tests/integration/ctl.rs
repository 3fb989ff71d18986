//! `concord-topo ctl` against a real 3-server cluster: every command, its exit codes
//! (0 ok, 1 refused, 2 usage, 3 unreachable), `-o json` output that parses, and
//! `watch` resuming on another server without gaps when its server is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concord_testkit::{free_addr, server_binary, wait_for};
use serde_json::Value;

use crate::cluster_support::{put_node, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// `--endpoints` for the servers `ids`, in that order.
pub(crate) fn endpoints(cluster: &Cluster, ids: &[u64]) -> String {
    ids.iter()
        .map(|id| cluster.node(*id).client.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `concord-topo ctl --endpoints EPS ARGS...` to completion.
pub(crate) fn ctl(eps: &str, args: &[&str]) -> Output {
    Command::new(server_binary())
        .args(["ctl", "--endpoints", eps])
        .args(args)
        .env_remove("CONCORD_TOKEN")
        .output()
        .expect("run concord-topo ctl")
}

/// Runs ctl and asserts its exit code; returns stdout.
pub(crate) fn ctl_code(eps: &str, args: &[&str], code: i32) -> String {
    let out = ctl(eps, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ctl {args:?}: stdout {stdout} stderr {stderr}"
    );
    if code != 0 {
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
        assert!(
            !stderr.trim().is_empty(),
            "ctl {args:?} failed without a reason"
        );
    }
    stdout
}

/// Runs ctl with `-o json`, expects success, and parses stdout.
pub(crate) fn ctl_json(eps: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let stdout = ctl_code(eps, &all, 0);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ctl {args:?}: not JSON ({e}): {stdout}"))
}

/// The voters of a `status`/membership answer (`{"cluster": {...}}`).
fn voters(answer: &Value) -> Vec<u64> {
    crate::cluster::voters(&answer["cluster"])
}

#[test]
fn ctl_runs_every_command_with_script_friendly_exit_codes() {
    let mut cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let eps = endpoints(&cluster, &cluster.ids());

    // Status: human and JSON.
    let text = ctl_code(&eps, &["status"], 0);
    assert!(text.contains(&format!("node {leader}")), "{text}");
    let status = ctl_json(&eps, &["status"]);
    assert_eq!(
        status["cluster"]["leader"].as_u64(),
        Some(leader),
        "{status}"
    );
    assert_eq!(voters(&status), vec![1, 2, 3]);

    // Bootstrap, then reads.
    let out = ctl_code(
        &eps,
        &[
            "bootstrap",
            "--nodes",
            "d1=127.0.0.1:9001,d2=127.0.0.1:9002,d3=127.0.0.1:9003",
            "--shards",
            "4",
            "--replication",
            "2",
        ],
        0,
    );
    assert!(out.contains("version"), "{out}");
    let shards = ctl_json(&eps, &["shards"]);
    assert_eq!(shards["shards"].as_array().unwrap().len(), 4, "{shards}");
    let s0 = shards["shards"][0]["shardId"].as_str().unwrap().to_string();
    let primary = shards["shards"][0]["primaryNode"]
        .as_str()
        .unwrap()
        .to_string();
    let replica = shards["shards"][0]["replicaNodes"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ctl_code(&eps, &["shards"], 0).contains(&s0));
    assert_eq!(
        ctl_json(&eps, &["shards", &s0])["shard"]["shardId"],
        s0.as_str()
    );
    assert!(ctl_code(&eps, &["nodes"], 0).contains("d3"));
    assert_eq!(ctl_json(&eps, &["nodes", "d1"])["node"]["nodeId"], "d1");

    // Node writes, with labels and If-Match.
    ctl_code(
        &eps,
        &[
            "node",
            "put",
            "d4",
            "--address",
            "127.0.0.1:9004",
            "--label",
            "zone=a",
        ],
        0,
    );
    assert_eq!(
        ctl_json(&eps, &["nodes", "d4"])["node"]["labels"]["zone"],
        "a"
    );
    let stale = ctl(
        &eps,
        &[
            "--if-match",
            "1",
            "node",
            "put",
            "d5",
            "--address",
            "127.0.0.1:9005",
        ],
    );
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");
    let version = ctl_json(&eps, &["status"])["version"].as_u64().unwrap();
    let v = version.to_string();
    let put = ctl_json(
        &eps,
        &[
            "--if-match",
            &v,
            "node",
            "put",
            "d5",
            "--address",
            "127.0.0.1:9005",
        ],
    );
    assert_eq!(put["version"].as_u64(), Some(version + 1), "{put}");
    ctl_code(&eps, &["node", "remove", "d5"], 0);
    assert_eq!(ctl(&eps, &["nodes", "d5"]).status.code(), Some(1));

    // Shard writes.
    ctl_code(&eps, &["shard", "move", &s0, "--primary", &replica], 0);
    assert_eq!(
        ctl_json(&eps, &["shards", &s0])["shard"]["primaryNode"],
        replica.as_str()
    );
    ctl_code(&eps, &["shard", "split", &s0, "--new-id", "s0-upper"], 0);
    ctl_code(&eps, &["shards", "s0-upper"], 0);
    ctl_code(&eps, &["shard", "merge", &s0, "--with", "s0-upper"], 0);
    assert_eq!(ctl(&eps, &["shards", "s0-upper"]).status.code(), Some(1));
    ctl_code(
        &eps,
        &["shard", "migrate", &s0, "--from", &primary, "--to", "d4"],
        0,
    );
    ctl_code(&eps, &["shard", "progress", &s0, "50"], 0);
    let migrating = ctl_json(&eps, &["shards", &s0]);
    assert_eq!(
        migrating["shard"]["migration"]["percent"], 50,
        "{migrating}"
    );
    let early = ctl(&eps, &["shard", "complete", &s0]);
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("100%"),
        "{early:?}"
    );
    ctl_code(&eps, &["shard", "progress", &s0, "100"], 0);
    ctl_code(&eps, &["shard", "complete", &s0], 0);

    // A batch file: two operations, one version.
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch.json");
    std::fs::write(
        &batch,
        r#"{"operations":[
            {"op":"registerNode","nodeId":"d6","address":"127.0.0.1:9006"},
            {"op":"registerNode","nodeId":"d7","address":"127.0.0.1:9007"}]}"#,
    )
    .unwrap();
    let before = ctl_json(&eps, &["status"])["version"].as_u64().unwrap();
    let applied = ctl_json(&eps, &["batch", batch.to_str().unwrap()]);
    assert_eq!(applied["version"].as_u64(), Some(before + 1), "{applied}");
    ctl_code(&eps, &["nodes", "d7"], 0);

    // Events and a bounded watch from the start.
    // The limit counts versions (whole change sets); the bootstrap is version 1.
    let events = ctl_json(&eps, &["events", "--since", "0", "--limit", "1"]);
    let page = events["events"].as_array().unwrap();
    assert!(
        page.len() >= 3 && page.iter().all(|e| e["version"] == 1),
        "{events}"
    );
    assert_eq!(events["hasMore"], true, "{events}");
    assert!(ctl_code(&eps, &["events", "--since", "0"], 0).contains("1 ShardAdd"));
    let watched = ctl_code(
        &eps,
        &["-o", "json", "watch", "--since", "0", "--max-events", "3"],
        0,
    );
    let lines: Vec<Value> = watched
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{watched}");
    assert_eq!(lines, page[..3].to_vec());
    let typed = ctl_code(
        &eps,
        &[
            "watch",
            "--since",
            "0",
            "--types",
            "NodeLeave",
            "--max-events",
            "1",
        ],
        0,
    );
    assert!(
        typed.contains("NodeLeave") && typed.contains("d5"),
        "{typed}"
    );
    ctl_code(&eps, &["watch", "--types", "NoSuchType", "--for", "5s"], 1);
    let quiet = ctl_code(&eps, &["watch", "--for", "1s"], 0);
    assert!(quiet.is_empty(), "{quiet}");

    // A health round: the test servers' monitor is off, so the answer is either the
    // round's results or the server's refusal, never a crash.
    let health = ctl(&eps, &["health", "run", "d1"]);
    assert!(matches!(health.status.code(), Some(0 | 1)), "{health:?}");

    // Membership: a follower first in --endpoints, so 421 is followed to the leader.
    let joining = cluster.start_joining(4).advertised.to_string();
    let feps = endpoints(&cluster, &[follower, leader]);
    ctl_code(
        &feps,
        &["members", "add-learner", "4", &joining, "--wait"],
        0,
    );
    let promoted = ctl_json(&feps, &["members", "promote", "4"]);
    assert_eq!(voters(&promoted), vec![1, 2, 3, 4], "{promoted}");
    let removed = ctl_json(&feps, &["members", "remove", "4"]);
    assert_eq!(voters(&removed), vec![1, 2, 3], "{removed}");
    // Only a follower listed: it names the leader, and ctl says so.
    let alone = ctl(
        &endpoints(&cluster, &[follower]),
        &["members", "remove", "3"],
    );
    assert_eq!(alone.status.code(), Some(1), "{alone:?}");
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("leader"),
        "{alone:?}"
    );

    // Refused (server's message), usage, unreachable.
    let missing = ctl(&eps, &["shards", "no-such-shard"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no-such-shard"),
        "{missing:?}"
    );
    ctl_code(&eps, &["shard", "progress", &s0, "lots"], 2);
    ctl_code(&eps, &["nodes", "bad/id"], 2);
    ctl_code(&eps, &["frobnicate"], 2);
    let nowhere = free_addr().to_string();
    ctl_code(&nowhere, &["status"], 3);
    // One dead endpoint before a live one: failover.
    ctl_code(&format!("{nowhere},{eps}"), &["status"], 0);
}

#[test]
fn watch_moves_on_when_its_server_is_killed_and_prints_every_version_once() {
    let mut cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let mut order = vec![leader];
    order.extend(cluster.ids().into_iter().filter(|id| *id != leader));
    let eps = endpoints(&cluster, &order);
    let start = put_node(cluster.node(leader).client, "w0", None).expect("first write");

    let mut watch = Command::new(server_binary())
        .args(["ctl", "--endpoints", &eps, "-o", "json", "watch", "--since"])
        .arg(start.to_string())
        .args(["--for", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // Writes to whichever server answers, before and after the watched one dies.
    let write = |cluster: &Cluster, name: &str| -> u64 {
        wait_for(WAIT, &format!("write {name}"), || {
            cluster
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .find_map(|n| put_node(n.client, name, None).ok())
        })
    };
    let mut seen = Vec::new();
    let take_until = |version: u64, seen: &mut Vec<u64>| {
        let deadline = Instant::now() + WAIT;
        while seen.last().is_none_or(|v| *v < version) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch printed {seen:?}, waiting for {version}"));
            let event: Value = serde_json::from_str(&line).expect("one JSON event per line");
            seen.push(event["version"].as_u64().expect("version"));
        }
    };
    let mut last = start;
    for i in 1..=5 {
        last = write(&cluster, &format!("w{i}"));
    }
    take_until(last, &mut seen);
    cluster.kill(leader);
    for i in 6..=12 {
        last = write(&cluster, &format!("w{i}"));
    }
    take_until(last, &mut seen);
    let _ = watch.kill();
    let _ = watch.wait();

    let expected: Vec<u64> = (start + 1..=last).collect();
    assert_eq!(seen, expected, "every version exactly once, in order");
}
