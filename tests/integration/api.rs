//! Every read and write route of the HTTP API against the real binary, including
//! each bad-input case: the right status, a message naming the problem, nothing
//! half-applied.

use concord_testkit::http::{raw_exchange, Response};

use crate::support::Server;
use serde_json::Value;

fn assert_error(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    let body = r.json();
    assert_eq!(body["success"], Value::Bool(false));
    let message = body["message"].as_str().expect("message is a string");
    assert!(
        message.contains(needle),
        "message `{message}` should mention `{needle}`"
    );
}

fn json_send(server: &Server, method: &str, path: &str, body: &str) -> Response {
    server.send(method, path, &[("Content-Type", "application/json")], body)
}

/// A write's answer is an acknowledgement for the whole server: a read that follows it
/// on another connection (which the kernel may give to another executor) must not
/// answer from an older state, however far that executor's own copy lags.
#[test]
fn a_read_after_an_acknowledged_write_never_answers_older_on_any_connection() {
    let server = Server::start(&["--dev"]);
    for i in 0..150 {
        let r = json_send(
            &server,
            "PUT",
            &format!("/api/topology/nodes/ryw-{}", i % 7),
            &format!(r#"{{"address":"127.0.0.1:{}"}}"#, 7000 + i),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let acknowledged = r.json()["version"].as_u64().expect("the write's version");
        for path in ["/api/topology/version", "/api/topology/snapshot"] {
            let read = server.get(path);
            let seen = read.json()["version"].as_u64().expect("a version");
            assert!(
                seen >= acknowledged,
                "write {i}: {path} answered version {seen} after version {acknowledged} was acknowledged"
            );
        }
    }
}

#[test]
fn read_routes_serve_the_sample_topology_with_headers() {
    let server = Server::start(&["--dev"]);
    let snapshot = server.get("/api/topology/snapshot");
    assert_eq!(snapshot.status, 200);
    assert_eq!(snapshot.header("content-type"), Some("application/json"));
    let body = snapshot.json();
    assert_eq!(body["success"], Value::Bool(true));
    let version = body["version"].as_u64().unwrap();
    assert!(version >= 1);
    assert_eq!(
        snapshot.header("x-topology-version"),
        Some(version.to_string().as_str())
    );
    assert_eq!(
        snapshot.header("etag"),
        Some(format!("\"{version}\"").as_str())
    );
    assert_eq!(snapshot.header("x-raft-leader"), Some("1"));
    assert!(snapshot.header("x-raft-term").is_some());
    let topo = &body["snapshot"];
    assert_eq!(topo["shardMap"].as_object().unwrap().len(), 64);
    assert_eq!(topo["nodeStatus"].as_object().unwrap().len(), 6);
    assert_eq!(topo["hashFunction"], "sha256-be64");
    assert_eq!(topo["configHash"].as_str().unwrap().len(), 16);

    // Conditional GET → 304 with no body.
    let etag = format!("\"{version}\"");
    let cached = server.send(
        "GET",
        "/api/topology/snapshot",
        &[("If-None-Match", &etag)],
        "",
    );
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());

    // gzip when asked, identical content once inflated.
    let zipped = server.send(
        "GET",
        "/api/topology/snapshot",
        &[("Accept-Encoding", "gzip")],
        "",
    );
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped.body[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, snapshot.body);
    assert!(
        zipped.body.len() * 3 < snapshot.body.len(),
        "gzip should shrink JSON"
    );

    let shards = server.get("/api/topology/shards").json();
    assert_eq!(shards["shards"].as_array().unwrap().len(), 64);
    let one = server.get("/api/topology/shards?shardId=shard-0000").json();
    assert_eq!(one["shard"]["shardId"], "shard-0000");
    assert_eq!(one["shard"]["keyRange"]["start"], "0000000000000000");
    let nodes = server.get("/api/topology/nodes").json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 6);
    let node = server.get("/api/topology/nodes?nodeId=node-1").json();
    assert_eq!(node["node"]["nodeId"], "node-1");
    assert!(!node["node"]["shards"].as_array().unwrap().is_empty());

    let v = server.get("/api/topology/version").json();
    assert_eq!(v["version"].as_u64(), Some(version));
    assert_eq!(v["configHash"], topo["configHash"]);

    // A change set is never split: the bootstrap's 70 events come whole even past `limit`.
    let events = server
        .get("/api/topology/events?sinceVersion=0&limit=5")
        .json();
    assert_eq!(events["events"].as_array().unwrap().len(), 6 + 64);
    assert_eq!(events["hasMore"], Value::Bool(false));
    let all = server
        .get("/api/topology/events?sinceVersion=0&limit=1000")
        .json();
    assert_eq!(
        all["events"].as_array().unwrap().len(),
        6 + 64,
        "bootstrap events"
    );

    let stats = server.get("/api/topology/stats").json();
    assert_eq!(stats["shards"].as_u64(), Some(64));
    assert_eq!(stats["nodes"].as_u64(), Some(6));
    assert_eq!(stats["isLeader"], Value::Bool(true));

    let linear = server.get("/api/topology/version?consistency=linearizable");
    assert_eq!(linear.status, 200);
    assert_eq!(linear.json()["version"].as_u64(), Some(version));

    let cluster = server.get("/api/cluster/status").json();
    assert_eq!(cluster["cluster"]["leader"].as_u64(), Some(1));
    assert_eq!(cluster["cluster"]["members"].as_array().unwrap().len(), 1);

    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("# TYPE concord_http_responses_total counter"));
    assert!(text.contains(&format!("concord_topology_version {version}")));
    assert!(text.contains("concord_raft_is_leader 1"));
    assert!(text.contains("# TYPE concord_control_ticks_late_total counter"));
    assert!(text.contains("# TYPE concord_control_tick_late_max_milliseconds gauge"));
}

#[test]
fn write_routes_apply_one_version_each() {
    let server = Server::start(&["--dev"]);
    let v0 = server.version();
    let r = json_send(
        &server,
        "PUT",
        "/api/topology/nodes/node-7",
        r#"{"address":"127.0.0.1:9107","labels":{"zone":"a"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"].as_u64(), Some(v0 + 1));
    assert_eq!(r.json()["success"], Value::Bool(true));
    let node = server.get("/api/topology/nodes?nodeId=node-7").json();
    assert_eq!(node["node"]["labels"]["zone"], "a");
    assert_eq!(node["node"]["health"], "unknown");

    // Set a primary, then move a replica by migration.
    let shard = server.get("/api/topology/shards?shardId=shard-0001").json()["shard"].clone();
    let replicas: Vec<String> = shard["replicaNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let r = json_send(
        &server,
        "PUT",
        "/api/topology/shards/shard-0001",
        &format!(
            r#"{{"primaryNode":"{}","replicaNodes":["{}","{}"]}}"#,
            replicas[0],
            shard["primaryNode"].as_str().unwrap(),
            replicas[1]
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = server.get("/api/topology/shards?shardId=shard-0001").json()["shard"].clone();
    assert_eq!(after["primaryNode"], replicas[0].as_str());
    assert_eq!(
        after["epoch"].as_u64(),
        Some(shard["epoch"].as_u64().unwrap() + 1)
    );

    let from = replicas[1].clone();
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0001/migration",
        &format!(r#"{{"from":"{from}","to":"node-7"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let migrating = server.get("/api/topology/shards?shardId=shard-0001").json()["shard"].clone();
    assert_eq!(migrating["status"], "migrating");
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0001/migration/progress",
        r#"{"percent":50}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Out of order: progress may not go backwards.
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0001/migration/progress",
        r#"{"percent":10}"#,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0001/migration/progress",
        r#"{"percent":100}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0001/migration/complete",
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let done = server.get("/api/topology/shards?shardId=shard-0001").json()["shard"].clone();
    assert_eq!(done["status"], "active");
    assert!(done["replicaNodes"]
        .as_array()
        .unwrap()
        .contains(&Value::from("node-7")));
    assert!(!done["replicaNodes"]
        .as_array()
        .unwrap()
        .contains(&Value::from(from.as_str())));

    // Split at the midpoint, then merge back.
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0002/split",
        r#"{"newShardId":"shard-0002b"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let left = server.get("/api/topology/shards?shardId=shard-0002").json()["shard"].clone();
    let right = server
        .get("/api/topology/shards?shardId=shard-0002b")
        .json()["shard"]
        .clone();
    assert_eq!(left["keyRange"]["end"], right["keyRange"]["start"]);
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards/shard-0002/merge",
        r#"{"with":"shard-0002b"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        server
            .get("/api/topology/shards?shardId=shard-0002b")
            .status,
        404
    );

    // A batch is one version: split a shard and retire the new half's node in one go.
    let before = server.version();
    let r = json_send(
        &server,
        "POST",
        "/api/topology/batch",
        r#"{"operations":[{"op":"registerNode","nodeId":"node-8","address":"127.0.0.1:9108"},{"op":"splitShard","shardId":"shard-0003","newShardId":"shard-0003b"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.version(), before + 1);
    let batch_events = server
        .get(&format!("/api/topology/events?sinceVersion={before}"))
        .json();
    let events = batch_events["events"].as_array().unwrap();
    assert!(events.len() >= 3, "NodeJoin + 2 ShardSplit: {events:?}");
    assert!(events
        .iter()
        .all(|e| e["version"].as_u64() == Some(before + 1)));

    // Delta since a version answers events, not the map.
    let delta = server
        .get(&format!("/api/topology/snapshot?since={before}"))
        .json();
    assert!(delta.get("snapshot").is_none());
    assert_eq!(delta["events"].as_array().unwrap().len(), events.len());

    // Removing an unused node works; a node holding shards cannot be removed.
    let r = server.send("DELETE", "/api/topology/nodes/node-8", &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.send("DELETE", "/api/topology/nodes/node-1", &[], "");
    assert_error(&r, 409, "node-1");

    // Compare-and-set: a stale If-Match is refused, the current one succeeds.
    let current = server.version();
    let stale = (current - 1).to_string();
    let r = server.send(
        "PUT",
        "/api/topology/nodes/node-9",
        &[("If-Match", &stale)],
        r#"{"address":"127.0.0.1:9109"}"#,
    );
    assert_error(&r, 409, &current.to_string());
    let r = server.send(
        "PUT",
        "/api/topology/nodes/node-9",
        &[("If-Match", &format!("\"{current}\""))],
        r#"{"address":"127.0.0.1:9109"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn shard_create_and_delete_keep_the_partition() {
    let server = Server::start(&[]);
    assert_eq!(server.version(), 0, "no sample topology without --dev");
    let r = json_send(
        &server,
        "PUT",
        "/api/topology/nodes/a",
        r#"{"address":"127.0.0.1:9001"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A lone shard that does not cover the space leaves a gap.
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards",
        r#"{"shardId":"s1","keyRange":{"start":"0000000000000000","end":"8000000000000000"},"primaryNode":"a","replicaNodes":[]}"#,
    );
    assert_error(&r, 400, "gap");
    let r = json_send(
        &server,
        "POST",
        "/api/topology/shards",
        r#"{"shardId":"s1","keyRange":{"start":"0000000000000000","end":""},"primaryNode":"a","replicaNodes":[]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Deleting the only shard empties the map, which is allowed.
    let r = server.send("DELETE", "/api/topology/shards/s1", &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        server.get("/api/topology/shards").json()["shards"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = server.send("DELETE", "/api/topology/nodes/a", &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    // Bootstrap on the now-empty map.
    let r = json_send(
        &server,
        "POST",
        "/api/topology/bootstrap",
        r#"{"nodes":[{"nodeId":"b","address":"127.0.0.1:9002"}],"shardCount":4,"replicationFactor":1}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        server.get("/api/topology/shards").json()["shards"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// (method, path, headers, body, expected status, message fragment)
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
    &'a str,
);

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let server = Server::start(&["--dev", "--auth-token", "s3cret"]);
    let before = server.get("/api/topology/snapshot").json();
    let auth = ("Authorization", "Bearer s3cret");
    let cases: Vec<Case> = vec![
        // (method, path, headers, body, status, message fragment)
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![],
            r#"{"address":"127.0.0.1:1"}"#,
            401,
            "Bearer",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![("Authorization", "Bearer wrong")],
            r#"{"address":"127.0.0.1:1"}"#,
            401,
            "token",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth],
            "{not json",
            400,
            "malformed",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth],
            r#"{"address":5}"#,
            400,
            "address",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth],
            r#"{"address":"127.0.0.1:1","extra":1}"#,
            400,
            "extra",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth],
            "",
            400,
            "empty",
        ),
        (
            "PUT",
            "/api/topology/nodes/bad%20id",
            vec![auth],
            r#"{"address":"127.0.0.1:1"}"#,
            400,
            "nodeId",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth],
            r#"{"address":"nohostport"}"#,
            400,
            "address",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9?x=1",
            vec![auth],
            r#"{"address":"127.0.0.1:1"}"#,
            400,
            "x",
        ),
        (
            "PUT",
            "/api/topology/nodes/n9",
            vec![auth, ("If-Match", "abc")],
            r#"{"address":"127.0.0.1:1"}"#,
            400,
            "If-Match",
        ),
        (
            "POST",
            "/api/topology/shards",
            vec![auth],
            r#"{"shardId":"x","keyRange":{"start":"zz","end":""},"primaryNode":"node-1","replicaNodes":[]}"#,
            400,
            "keyRange",
        ),
        (
            "POST",
            "/api/topology/shards",
            vec![auth],
            r#"{"shardId":"x","keyRange":{"start":"0000000000000000","end":""},"primaryNode":"node-1","replicaNodes":[]}"#,
            400,
            "overlap",
        ),
        (
            "PUT",
            "/api/topology/shards/shard-0000",
            vec![auth],
            r#"{"primaryNode":"ghost"}"#,
            400,
            "ghost",
        ),
        (
            "PUT",
            "/api/topology/shards/nope",
            vec![auth],
            r#"{"status":"readonly"}"#,
            404,
            "nope",
        ),
        (
            "PUT",
            "/api/topology/shards/shard-0000",
            vec![auth],
            r#"{"status":"sleeping"}"#,
            400,
            "status",
        ),
        (
            "POST",
            "/api/topology/shards/shard-0000/merge",
            vec![auth],
            r#"{"with":"shard-0005"}"#,
            400,
            "adjacent",
        ),
        (
            "POST",
            "/api/topology/shards/shard-0000/migration/complete",
            vec![auth],
            "",
            409,
            "migrat",
        ),
        (
            "POST",
            "/api/topology/shards/shard-0000/migration/progress",
            vec![auth],
            r#"{"percent":101}"#,
            400,
            "percent",
        ),
        (
            "POST",
            "/api/topology/shards/shard-0000/split",
            vec![auth],
            r#"{"at":"0000000000000000"}"#,
            400,
            "at",
        ),
        (
            "POST",
            "/api/topology/bootstrap",
            vec![auth],
            r#"{"nodes":[{"nodeId":"q","address":"127.0.0.1:1"}],"shardCount":2,"replicationFactor":1}"#,
            409,
            "empty",
        ),
        (
            "POST",
            "/api/topology/batch",
            vec![auth],
            r#"{"operations":[]}"#,
            400,
            "operation",
        ),
        (
            "POST",
            "/api/topology/batch",
            vec![auth],
            r#"{"operations":[{"op":"registerNode","nodeId":"n10","address":"127.0.0.1:1"},{"op":"removeNode","nodeId":"node-1"}]}"#,
            409,
            "node-1",
        ),
        (
            "POST",
            "/api/topology/batch",
            vec![auth],
            r#"{"operations":[{"op":"fly"}]}"#,
            400,
            "fly",
        ),
        (
            "DELETE",
            "/api/topology/shards/shard-0000",
            vec![auth],
            "",
            400,
            "gap",
        ),
        (
            "GET",
            "/api/topology/events?limit=0",
            vec![],
            "",
            400,
            "limit",
        ),
        (
            "GET",
            "/api/topology/events?limit=1001",
            vec![],
            "",
            400,
            "limit",
        ),
        (
            "GET",
            "/api/topology/events?sinceVersion=abc",
            vec![],
            "",
            400,
            "sinceVersion",
        ),
        (
            "GET",
            "/api/topology/shards?shardId=nope",
            vec![],
            "",
            404,
            "nope",
        ),
        (
            "GET",
            "/api/topology/nodes?nodeId=nope",
            vec![],
            "",
            404,
            "nope",
        ),
        (
            "GET",
            "/api/topology/snapshot?since=x",
            vec![],
            "",
            400,
            "since",
        ),
        (
            "GET",
            "/api/topology/snapshot?colour=red",
            vec![],
            "",
            400,
            "colour",
        ),
        (
            "GET",
            "/api/topology/version?consistency=strong",
            vec![],
            "",
            400,
            "consistency",
        ),
        ("GET", "/api/topology/nowhere", vec![], "", 404, "nowhere"),
        (
            "DELETE",
            "/api/topology/snapshot",
            vec![auth],
            "",
            405,
            "DELETE",
        ),
    ];
    for (method, path, headers, body, status, needle) in cases {
        let r = server.send(method, path, &headers, body);
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.text());
        assert_error(&r, status, needle);
    }
    // An oversized body: 413, nothing read into the state.
    let huge = format!(
        r#"{{"address":"127.0.0.1:1","labels":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    let r = server.send("PUT", "/api/topology/nodes/n9", &[auth], &huge);
    assert_eq!(r.status, 413, "{}", r.text());
    // An oversized request head: 431 from the HTTP layer.
    let big_header = format!(
        "GET /api/topology/version HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let r = raw_exchange(server.client, big_header.as_bytes()).expect("an answer");
    assert_eq!(r.status, 431);
    // Garbage instead of HTTP: 400, and the server keeps serving.
    let r = raw_exchange(server.client, b"HELLO\r\n\r\n").expect("an answer");
    assert_eq!(r.status, 400);

    let after = server.get("/api/topology/snapshot").json();
    assert_eq!(before, after, "no rejected request may change the topology");

    // The same write with the token succeeds.
    let r = server.send(
        "PUT",
        "/api/topology/nodes/n9",
        &[auth],
        r#"{"address":"127.0.0.1:1"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
