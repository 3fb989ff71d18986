//! The health monitor against the real binary and real data nodes (loopback listeners
//! in this process): transitions within the bounds interval × threshold allow,
//! failures of every kind (refused, HTTP 500, a hang past the timeout), TCP probes,
//! the manual route, and the events and SSE stream that carry the transitions.
//!
//! Timing is asserted with generous deadlines and with lower bounds the rules imply
//! (three failed checks are at least two intervals apart), never tightly.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use concord_testkit::sse::SseClient;

use crate::data_node::{DataNode, Mode};
use crate::support::Server;

const INTERVAL: Duration = Duration::from_millis(200);
const DEADLINE: Duration = Duration::from_secs(20);

/// Short intervals: 200 ms, a 100 ms timeout, 3 failures to unhealthy, 2 passes back.
const FAST: &str = "topology:
  health_check:
    interval: 200ms
    timeout: 100ms
    retry_count: 0
    failure_threshold: 3
    success_threshold: 2
    max_concurrent_probes: 8
";

/// Rounds only on demand: the periodic round runs once at start (no nodes yet), then
/// not for an hour, so every transition below comes from a manual round.
const MANUAL: &str = "topology:
  health_check:
    interval: 1h
    timeout: 100ms
    retry_count: 1
    failure_threshold: 3
    success_threshold: 2
";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn register(server: &Server, id: &str, address: &str, labels: &str) -> u64 {
    let body = format!(r#"{{"address":"{address}","labels":{{{labels}}}}}"#);
    let r = server.send("PUT", &format!("/api/topology/nodes/{id}"), &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["version"].as_u64().unwrap()
}

fn node(server: &Server, id: &str) -> Value {
    let r = server.get(&format!("/api/topology/nodes?nodeId={id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["node"].clone()
}

/// Polls until `id` has `health`; answers the time it was seen.
fn wait_for(server: &Server, id: &str, health: &str) -> Instant {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let n = node(server, id);
        if n["health"] == health {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{id} not {health} within {DEADLINE:?}: {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The NodeHealthChange events of `id` after `since`: (version, health, failureCount).
fn health_events(server: &Server, id: &str, since: u64) -> Vec<(u64, String, u64)> {
    let r = server.get(&format!(
        "/api/topology/events?sinceVersion={since}&limit=1000"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "NodeHealthChange" && e["nodeId"] == id)
        .map(|e| {
            (
                e["version"].as_u64().unwrap(),
                e["newValue"]["health"].as_str().unwrap().to_string(),
                e["newValue"]["failureCount"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_stopped_node_degrades_then_turns_unhealthy_and_recovers_when_restarted() {
    let server = Server::with_config(FAST, &[]);
    let mut down = DataNode::start();
    let steady = DataNode::start();
    register(&server, "down", &down.address(), "");
    register(&server, "steady", &steady.address(), "");
    wait_for(&server, "down", "healthy");
    wait_for(&server, "steady", "healthy");
    let healthy_at = server.version();

    let stopped = Instant::now();
    let stopped_ms = now_ms();
    down.stop();
    wait_for(&server, "down", "degraded");
    let unhealthy = wait_for(&server, "down", "unhealthy");
    // Three failed checks, each at least one interval after the one before.
    assert!(
        unhealthy - stopped >= INTERVAL * 2,
        "unhealthy after {:?}",
        unhealthy - stopped
    );
    let n = node(&server, "down");
    assert_eq!(n["failureCount"], 3);
    let last_seen = n["lastSeen"].as_u64().unwrap();
    assert!(last_seen > 0 && last_seen <= stopped_ms, "{n}");
    // The topology holds the failure's kind only, even without tokens.
    assert_eq!(n["lastError"], "connection refused", "{n}");
    // Every step was committed, in order, and nothing after unhealthy.
    let steps: Vec<(String, u64)> = health_events(&server, "down", healthy_at)
        .into_iter()
        .map(|(_, h, f)| (h, f))
        .collect();
    assert_eq!(
        steps,
        [
            ("degraded".to_string(), 1),
            ("degraded".to_string(), 2),
            ("unhealthy".to_string(), 3)
        ]
    );
    assert!(health_events(&server, "steady", healthy_at).is_empty());
    assert_eq!(node(&server, "steady")["health"], "healthy");
    assert!(
        steady.requests() >= 3,
        "the steady node is probed every round"
    );

    let restarted = Instant::now();
    let restarted_ms = now_ms();
    down.restart();
    let healthy = wait_for(&server, "down", "healthy");
    assert!(
        healthy - restarted >= INTERVAL,
        "two passes, an interval apart"
    );
    let n = node(&server, "down");
    assert_eq!(n["failureCount"], 0);
    assert!(n["lastSeen"].as_u64().unwrap() >= restarted_ms, "{n}");
    assert!(n["lastError"].is_string(), "the last error is kept: {n}");
}

#[test]
fn a_node_answering_500_or_hanging_past_the_timeout_counts_as_failed() {
    let server = Server::with_config(FAST, &[]);
    let erroring = DataNode::start();
    erroring.set_mode(Mode::Error);
    let hanging = DataNode::start();
    hanging.set_mode(Mode::Hang);
    register(&server, "erroring", &erroring.address(), "");
    register(&server, "hanging", &hanging.address(), "");
    wait_for(&server, "erroring", "unhealthy");
    wait_for(&server, "hanging", "unhealthy");
    let e = node(&server, "erroring");
    assert_eq!(e["lastError"], "http status 500", "{e}");
    assert_eq!(e["lastSeen"], 0, "never seen healthy");
    let h = node(&server, "hanging");
    assert_eq!(h["lastError"], "timeout", "{h}");
    assert!(
        hanging.requests() >= 3,
        "the hanging node was asked each time"
    );

    erroring.set_mode(Mode::Ok);
    hanging.set_mode(Mode::Ok);
    wait_for(&server, "erroring", "healthy");
    wait_for(&server, "hanging", "healthy");
}

#[test]
fn a_tcp_probed_node_works_the_same() {
    let server = Server::with_config(FAST, &[]);
    // It never answers HTTP, but it accepts connections: healthy under a TCP probe,
    // unhealthy under the (configured) HTTP probe.
    let mut tcp = DataNode::start();
    tcp.set_mode(Mode::Hang);
    let http = DataNode::start();
    http.set_mode(Mode::Hang);
    register(&server, "tcp", &tcp.address(), r#""probe":"tcp""#);
    register(&server, "http", &http.address(), "");
    wait_for(&server, "tcp", "healthy");
    wait_for(&server, "http", "unhealthy");
    assert_eq!(node(&server, "tcp")["health"], "healthy");

    let stopped = Instant::now();
    tcp.stop();
    wait_for(&server, "tcp", "degraded");
    let unhealthy = wait_for(&server, "tcp", "unhealthy");
    assert!(unhealthy - stopped >= INTERVAL * 2);
    tcp.restart();
    wait_for(&server, "tcp", "healthy");
}

fn health_round(server: &Server, query: &str) -> Value {
    let r = server.send("POST", &format!("/api/topology/health{query}"), &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["success"], true);
    body
}

fn result<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["nodeId"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {body}"))
}

#[test]
fn the_manual_route_runs_a_round_and_reports_every_node() {
    let server = Server::with_config(MANUAL, &[]);
    let up = DataNode::start();
    let erroring = DataNode::start();
    erroring.set_mode(Mode::Error);
    let absent = concord_testkit::free_port();
    register(&server, "up", &up.address(), "");
    register(&server, "erroring", &erroring.address(), "");
    register(&server, "absent", &format!("127.0.0.1:{absent}"), "");
    let before = server.version();
    let mut sub = SseClient::connect(
        server.client,
        &format!("/api/topology/subscribe?sinceVersion={before}&eventTypes=NodeHealthChange"),
        &[],
    );

    let first = health_round(&server, "");
    assert_eq!(first["results"].as_array().unwrap().len(), 3);
    let v = first["version"].as_u64().unwrap();
    assert_eq!(v, before + 1, "all transitions of a round are one version");
    let ok = result(&first, "up");
    assert_eq!(ok["passed"], true);
    assert_eq!(ok["attempts"], 1);
    assert_eq!(ok["probe"], "http");
    assert_eq!(ok["previousHealth"], "unknown");
    assert_eq!(ok["health"], "healthy");
    assert_eq!(ok["committed"], true);
    for id in ["erroring", "absent"] {
        let r = result(&first, id);
        assert_eq!(r["passed"], false, "{r}");
        assert_eq!(r["attempts"], 2, "retry_count 1: {r}");
        assert_eq!(r["health"], "degraded", "{r}");
        assert_eq!(r["failureCount"], 1, "{r}");
        assert_eq!(r["committed"], true, "{r}");
    }
    assert!(result(&first, "erroring")["error"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    for id in ["up", "erroring", "absent"] {
        assert_eq!(
            health_events(&server, id, before),
            [(
                v,
                result(&first, id)["health"].as_str().unwrap().to_string(),
                result(&first, id)["failureCount"].as_u64().unwrap()
            )]
        );
    }
    // The subscriber receives the three transitions, as one change set.
    let events = sub.events_through(v, DEADLINE).expect("the round's events");
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e.event == "NodeHealthChange")
        .map(|e| e.json()["nodeId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["absent", "erroring", "up"]);

    // A steady node is not committed again; the failing ones count on.
    let second = health_round(&server, "");
    assert_eq!(second["version"].as_u64(), Some(v + 1));
    assert_eq!(result(&second, "up")["committed"], false);
    assert_eq!(result(&second, "erroring")["failureCount"], 2);
    assert_eq!(result(&second, "erroring")["committed"], true);

    // One node only.
    let one = health_round(&server, "?nodeId=absent");
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    assert_eq!(result(&one, "absent")["health"], "unhealthy");
    assert_eq!(node(&server, "absent")["health"], "unhealthy");
    assert_eq!(node(&server, "erroring")["health"], "degraded");

    // Bad input: a clear 4xx naming the problem.
    let expect = |method: &str, path: &str, body: &str, status: u16, needle: &str| {
        let r = server.send(method, path, &[], body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(needle),
            "{message} should mention {needle}"
        );
    };
    expect("POST", "/api/topology/health?nodeId=nope", "", 404, "nope");
    expect(
        "POST",
        "/api/topology/health?nodeId=a%20b",
        "",
        400,
        "nodeId",
    );
    expect("POST", "/api/topology/health?nodeId=", "", 400, "nodeId");
    expect("POST", "/api/topology/health?node=up", "", 400, "node");
    expect(
        "POST",
        "/api/topology/health",
        r#"{"nodeId":"up"}"#,
        400,
        "body",
    );
    expect("GET", "/api/topology/health", "", 405, "GET");

    // The summary in /stats and the probe metrics.
    let stats = server.get("/api/topology/stats").json();
    let monitor = &stats["healthMonitor"];
    assert_eq!(monitor["monitoring"], true, "{stats}");
    assert!(monitor["rounds"].as_u64().unwrap() >= 3, "{stats}");
    assert!(monitor["probeFailures"].as_u64().unwrap() >= 5, "{stats}");
    assert!(monitor["lastRoundAt"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["nodesByHealth"]["unhealthy"], 1, "{stats}");
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("concord_health_probes_total{probe=\"http\",result=\"pass\"} 2"));
    assert!(metrics.contains("concord_health_probe_duration_seconds_count"));
    assert!(metrics.contains("concord_health_monitoring 1"));
}

#[test]
fn the_manual_route_needs_the_token_and_an_enabled_monitor() {
    let server = Server::with_config(MANUAL, &["--auth-token", "s3cret"]);
    let r = server.send("POST", "/api/topology/health", &[], "");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = server.send(
        "POST",
        "/api/topology/health",
        &[("Authorization", "Bearer s3cret")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 0);

    // Test servers have the monitor off unless asked (see support.rs).
    let off = Server::start(&[]);
    let r = off.send("POST", "/api/topology/health", &[], "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("enabled"));
}
