//! `GET /api/topology/subscribe` against the real binary: ordering, lossless resume,
//! Reset, filters, slow-subscriber isolation, EventSource-style reconnects, errors.

use std::time::Duration;

use concord_testkit::sse::{SseClient, SseEvent};

use crate::support::Server;

const WAIT: Duration = Duration::from_secs(20);

/// Registers node `name`; returns the version the write produced.
pub fn register(server: &Server, name: &str) -> u64 {
    let r = server.send(
        "PUT",
        &format!("/api/topology/nodes/{name}"),
        &[],
        r#"{"address":"127.0.0.1:7000"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["version"].as_u64().unwrap()
}

/// Registers nodes `{prefix}0..{prefix}{count}` on the server at `addr` from a thread
/// of its own, `pause` apart; the thread returns the version each write produced.
pub fn paced_writes(
    addr: std::net::SocketAddr,
    prefix: &'static str,
    count: usize,
    pause: Duration,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        (0..count)
            .map(|i| {
                let r = concord_testkit::request(
                    addr,
                    "PUT",
                    &format!("/api/topology/nodes/{prefix}{i}"),
                    &[],
                    br#"{"address":"127.0.0.1:7000"}"#,
                );
                assert_eq!(r.status, 200);
                std::thread::sleep(pause);
                r.json()["version"].as_u64().unwrap()
            })
            .collect()
    })
}

/// The versions whose change sets were completed (the `id:` carriers), in order.
fn ids(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event != "Progress")
        .filter_map(|e| e.id.as_deref().map(|id| id.parse().unwrap()))
        .collect()
}

fn topology_events(events: &[SseEvent]) -> Vec<SseEvent> {
    events
        .iter()
        .filter(|e| e.event != "Progress")
        .cloned()
        .collect()
}

#[test]
fn a_subscriber_sees_every_change_in_order_with_contiguous_versions() {
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    let mut sub = SseClient::connect(server.client, &path, &[]);
    assert_eq!(sub.status, 200);
    assert_eq!(sub.header("content-type"), Some("text/event-stream"));
    let mut last = start;
    for i in 0..20 {
        last = register(&server, &format!("n{i}"));
    }
    let r = server.send("POST", "/api/topology/shards/shard-0005/split", &[], "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    last = r.json()["version"].as_u64().unwrap().max(last);

    let events = sub.events_through(last, WAIT).expect("all events arrive");
    let retry = sub.retry.expect("a retry: line opens the stream");
    assert!((1000..2000).contains(&retry), "retry {retry}");
    assert_eq!(ids(&events), ((start + 1)..=last).collect::<Vec<_>>());
    let events = topology_events(&events);
    // 20 NodeJoin, then the split's two ShardSplit events with the id on the last only.
    assert_eq!(events.len(), 22);
    for (i, e) in events[..20].iter().enumerate() {
        assert_eq!(e.event, "NodeJoin");
        let json = e.json();
        assert_eq!(json["type"], "NodeJoin");
        assert_eq!(json["nodeId"], format!("n{i}"));
        assert_eq!(json["version"].as_u64(), Some(start + 1 + i as u64));
        assert_eq!(json["newValue"]["address"], "127.0.0.1:7000");
    }
    assert_eq!(events[20].event, "ShardSplit");
    assert_eq!(events[20].id, None, "no id in the middle of a change set");
    assert_eq!(events[21].id, Some(last.to_string()));
}

#[test]
fn a_resumed_subscriber_ends_with_exactly_the_uninterrupted_sequence() {
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    let mut steady = SseClient::connect(server.client, &path, &[]);
    let mut flaky = SseClient::connect(server.client, &path, &[]);
    let mut mid = start;
    for i in 0..10 {
        mid = register(&server, &format!("a{i}"));
    }
    let mut flaky_events = flaky.events_through(mid, WAIT).unwrap();
    let resume_from = flaky.last_event_id.clone().expect("an id was seen");
    drop(flaky);
    let mut last = mid;
    for i in 0..15 {
        last = register(&server, &format!("b{i}"));
    }
    // Resume as EventSource does, with the path unchanged and Last-Event-ID set.
    let mut resumed = SseClient::connect(server.client, &path, &[("Last-Event-ID", &resume_from)]);
    flaky_events.extend(resumed.events_through(last, WAIT).unwrap());
    let steady_events = steady.events_through(last, WAIT).unwrap();
    assert_eq!(
        topology_events(&flaky_events),
        topology_events(&steady_events)
    );
    assert_eq!(
        ids(&steady_events),
        ((start + 1)..=last).collect::<Vec<_>>()
    );
}

#[test]
fn a_resume_older_than_the_history_gets_reset_then_live_events() {
    let server = Server::with_config(
        "topology:\n  notifications:\n    event_buffer_size: 80\n",
        &["--dev"],
    );
    // The sample topology alone is 70 events; 20 more push version 1 out of the history.
    let mut last = 0;
    for i in 0..20 {
        last = register(&server, &format!("r{i}"));
    }
    let mut sub = SseClient::connect(server.client, "/api/topology/subscribe?sinceVersion=0", &[]);
    let reset = sub.next_event(WAIT).expect("a Reset");
    assert_eq!(reset.event, "Reset");
    assert_eq!(reset.id, Some(last.to_string()));
    let snapshot = reset.json();
    assert_eq!(snapshot["version"].as_u64(), Some(last));
    assert_eq!(snapshot["nodeStatus"].as_object().unwrap().len(), 6 + 20);
    let next = register(&server, "after-reset");
    let live = sub.events_through(next, WAIT).unwrap();
    assert_eq!(ids(&live), vec![next]);
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("concord_sse_resets_total 1"), "{metrics}");
}

#[test]
fn a_filtered_subscriber_gets_only_its_types() {
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let mut splits = SseClient::connect(
        server.client,
        &format!("/api/topology/subscribe?sinceVersion={start}&eventTypes=ShardSplit,ShardMerge"),
        &[],
    );
    register(&server, "x1");
    let r = server.send(
        "POST",
        "/api/topology/shards/shard-0007/split",
        &[],
        r#"{"newShardId":"s7b"}"#,
    );
    assert_eq!(r.status, 200);
    register(&server, "x2");
    let r = server.send(
        "POST",
        "/api/topology/shards/shard-0007/merge",
        &[],
        r#"{"with":"s7b"}"#,
    );
    assert_eq!(r.status, 200);
    let last = r.json()["version"].as_u64().unwrap();
    let events = topology_events(&splits.events_through(last, WAIT).unwrap());
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["ShardSplit", "ShardSplit", "ShardMerge"]);
    // The merge's ShardRemove is filtered out, so its id moves to the ShardMerge.
    assert_eq!(events[2].id, Some(last.to_string()));

    let bad = server.get("/api/topology/subscribe?eventTypes=ShardSplit,Teleport");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"].as_str().unwrap().contains("Teleport"));
}

/// A batch registering 20 nodes with 64 long labels each: ~1 MB of events per version.
pub fn heavy_batch(round: usize) -> String {
    let labels: Vec<String> = (0..64)
        .map(|l| {
            format!(
                "\"label-{l:03}-{}\":\"{}\"",
                "k".repeat(100),
                "v".repeat(250)
            )
        })
        .collect();
    let ops: Vec<String> = (0..20)
        .map(|n| {
            format!(
                r#"{{"op":"registerNode","nodeId":"h{round}-{n}","address":"127.0.0.1:7000","labels":{{{}}}}}"#,
                labels.join(",")
            )
        })
        .collect();
    format!(r#"{{"operations":[{}]}}"#, ops.join(","))
}

#[test]
fn a_slow_subscriber_is_disconnected_and_a_fast_one_keeps_up() {
    let server = Server::with_config(
        "topology:\n  notifications:\n    subscriber_queue: 4\n    event_buffer_size: 100000\nhttp:\n  max_body_bytes: 16777216\n", &["--dev"]
    );
    let start = server.version();
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    // The slow one never reads; its socket buffers fill and it falls behind.
    let mut slow = SseClient::connect(server.client, &path, &[]);
    let fast = SseClient::connect(server.client, &path, &[]);
    let rounds = 24;
    let reader = std::thread::spawn(move || {
        let mut fast = fast;
        let mut seen = Vec::new();
        while let Some(e) = fast.next_event(WAIT) {
            if let Some(id) = e.id.as_deref() {
                if e.event != "Progress" {
                    seen.push(id.parse::<u64>().unwrap());
                }
            }
            if seen.len() == rounds {
                break;
            }
        }
        seen
    });
    let mut last = start;
    for round in 0..rounds {
        let r = server.send("POST", "/api/topology/batch", &[], &heavy_batch(round));
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json()["version"].as_u64().unwrap();
    }
    let seen = reader.join().unwrap();
    assert_eq!(
        seen,
        ((start + 1)..=last).collect::<Vec<_>>(),
        "the fast subscriber got every version"
    );
    // The slow one was cut off: reading now ends before the last version arrives.
    let got_everything = slow.events_through(last, Duration::from_secs(30)).is_some();
    assert!(
        !got_everything,
        "the slow subscriber should have been disconnected"
    );
    let metrics = server.get("/metrics").text();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("concord_sse_dropped_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(dropped >= 1, "{metrics}");
}

#[test]
fn an_eventsource_client_reconnects_with_last_event_id_and_loses_nothing() {
    // Streams end after ~1 s; an EventSource reconnects after `retry` with Last-Event-ID.
    let server = Server::with_config(
        "topology:\n  notifications:\n    subscription_timeout: 1s\n    heartbeat_interval: 200ms\n", &["--dev"]
    );
    let start = server.version();
    let path = "/api/topology/subscribe";
    let writer = paced_writes(server.client, "es", 30, Duration::from_millis(100));
    let mut last_id = start.to_string();
    let mut seen = Vec::new();
    let mut reconnects = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last_version = None;
    while std::time::Instant::now() < deadline {
        let mut es = SseClient::connect(server.client, path, &[("Last-Event-ID", &last_id)]);
        assert_eq!(es.status, 200);
        while let Some(e) = es.next_event(Duration::from_secs(5)) {
            if e.event != "Progress" {
                seen.push(e.clone());
            }
        }
        if let Some(id) = es.last_event_id.clone() {
            last_id = id;
        }
        reconnects += 1;
        if writer.is_finished() && last_version.is_none() {
            last_version = Some(server.version());
        }
        if last_version.is_some_and(|v| last_id.parse::<u64>().unwrap() >= v) {
            break;
        }
        std::thread::sleep(Duration::from_millis(es.retry.unwrap_or(1000).min(2000)));
    }
    let written = writer.join().unwrap();
    assert!(
        reconnects >= 2,
        "streams should have closed and been resumed"
    );
    let names: Vec<String> = seen
        .iter()
        .map(|e| e.json()["nodeId"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!("es{i}")).collect();
    assert_eq!(names, expected, "every event exactly once, in order");
    assert_eq!(ids(&seen), written);
}

#[test]
fn subscribe_errors_and_idle_progress() {
    let server = Server::with_config(
        "topology:\n  notifications:\n    heartbeat_interval: 200ms\n    max_subscribers: 2\nhttp:\n  write_timeout: 300ms\n", &["--dev"]
    );
    let current = server.version();
    // Ahead of this server: a bounded wait, then 503 so the client tries elsewhere.
    let ahead = server.get(&format!(
        "/api/topology/subscribe?sinceVersion={}",
        current + 5
    ));
    assert_eq!(ahead.status, 503);
    assert!(ahead.header("retry-after").is_some());
    let bad = server.send(
        "GET",
        "/api/topology/subscribe",
        &[("Last-Event-ID", "yesterday")],
        "",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"]
        .as_str()
        .unwrap()
        .contains("Last-Event-ID"));
    let bad = server.get("/api/topology/subscribe?sinceVersion=-1");
    assert_eq!(bad.status, 400);

    // Idle: keep-alives and Progress carrying the current version.
    let mut idle = SseClient::connect(server.client, "/api/topology/subscribe", &[]);
    let first = idle.next_event(WAIT).unwrap();
    assert_eq!(first.event, "Progress");
    assert_eq!(first.id, Some(current.to_string()));
    let again = idle.next_event(WAIT).unwrap();
    assert_eq!(again.event, "Progress");
    assert_eq!(again.json()["version"].as_u64(), Some(current));

    let _second = SseClient::connect(server.client, "/api/topology/subscribe", &[]);
    let third = server.get("/api/topology/subscribe");
    assert_eq!(third.status, 503);
    assert!(third.json()["message"]
        .as_str()
        .unwrap()
        .contains("max_subscribers"));
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("concord_sse_subscribers 2"), "{metrics}");
}

#[test]
fn subscribers_on_followers_receive_the_same_events_as_on_the_leader() {
    use crate::cluster_support::{put_node, Cluster};
    let cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let servers = cluster.ids();
    let (start, _) = cluster.converged(&servers, 0, WAIT);
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    let mut subs: Vec<(u64, SseClient)> = servers
        .iter()
        .map(|id| {
            (
                *id,
                SseClient::connect(cluster.node(*id).client, &path, &[]),
            )
        })
        .collect();
    let mut last = start;
    for i in 0..15 {
        // Writes go to every server in turn: followers forward them to the leader.
        let target = servers[i % servers.len()];
        last = put_node(cluster.node(target).client, &format!("f{i}"), None)
            .unwrap_or_else(|status| panic!("write through node {target} got {status}"));
    }
    let mut sequences = Vec::new();
    for (id, sub) in subs.iter_mut() {
        let events = sub
            .events_through(last, WAIT)
            .unwrap_or_else(|| panic!("node {id} streamed every version"));
        assert_eq!(
            ids(&events),
            ((start + 1)..=last).collect::<Vec<_>>(),
            "node {id}"
        );
        sequences.push((*id, topology_events(&events)));
    }
    let (_, on_leader) = sequences.iter().find(|(id, _)| *id == leader).unwrap();
    for (id, seq) in &sequences {
        assert_eq!(
            seq, on_leader,
            "node {id} streams exactly what the leader streams"
        );
    }
}

/// Subscribes on `watched` (the leader or a follower), kills every other server, and
/// checks that the idle stream ends soon after the election timeout.
fn stream_closes_when_left_alone(watch_the_leader: bool) {
    use crate::cluster_support::Cluster;
    let mut cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let watched = if watch_the_leader {
        leader
    } else {
        *cluster.ids().iter().find(|id| **id != leader).unwrap()
    };
    let mut sub = SseClient::connect(cluster.node(watched).client, "/api/topology/subscribe", &[]);
    assert_eq!(sub.status, 200);
    let first = sub.next_event(WAIT).expect("the opening Progress");
    assert_eq!(first.event, "Progress");
    // No quorum is left, so no leader, for ever.
    for id in cluster.ids() {
        if id != watched {
            cluster.kill(id);
        }
    }
    // The stream is idle (heartbeats every 15 s by default), yet it must end soon after
    // the election timeout, so its client moves on to a server that has a leader.
    let started = std::time::Instant::now();
    while sub.next_event(Duration::from_secs(10)).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stream kept going"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the stream should close within a few election timeouts, took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_stream_on_a_follower_closes_when_the_leader_is_gone() {
    stream_closes_when_left_alone(false);
}

#[test]
fn a_stream_on_a_leader_closes_when_it_loses_its_quorum() {
    stream_closes_when_left_alone(true);
}
