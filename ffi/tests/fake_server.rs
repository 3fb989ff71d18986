//! The client's synchronisation logic against scripted fake servers on loopback:
//! exact byte streams, so each rule (apply each version once, skip duplicates,
//! resynchronise on a gap, take a `Reset`, fail over on 503, coalesce stale
//! reports) is checked deterministically, independent of the real server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use concordkv_topology::TopologyClient;
use support::*;

#[test]
fn each_version_is_applied_once_in_order_and_duplicates_are_skipped() {
    let (states, sets) = history(3);
    let (s1, sets2) = (states[0].clone(), sets.clone());
    let fake = Fake::start(move |req, stream, stop| {
        if req.target.starts_with("/api/topology/snapshot") {
            slow_snapshot(stream, &s1);
        } else {
            // v2, v3, v2 again (a resend), v4, then Progress.
            let blocks = format!(
                "retry: 1500\n\n{}{}: keep-alive\n\n{}{}event: Progress\nid: 4\ndata: {{\"version\":4}}\n\n",
                sse_set(&sets2[0]),
                sse_set(&sets2[1]),
                sse_set(&sets2[0]),
                sse_set(&sets2[2])
            );
            sse_response(stream, &blocks, stop);
        }
    });
    let client = TopologyClient::new(options(&[&fake.addr])).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    client.on_change(move |c| {
        seen2
            .lock()
            .unwrap()
            .push((c.previous_version, c.version, c.reset))
    });
    assert_eq!(client.wait_for_version(4, WAIT), Ok(4));
    let stats = client.stats();
    assert_eq!(stats.versions_applied, 3);
    assert_eq!(stats.duplicates_skipped, 1);
    assert_eq!(stats.snapshots_loaded, 1);
    assert_eq!(stats.streams_opened, 1);
    assert!(stats.streaming);
    assert_eq!(client.config_hash().unwrap(), states[3].config_hash());
    // Listeners run right after the table is published: give them a moment.
    let deadline = std::time::Instant::now() + WAIT;
    while seen.lock().unwrap().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls[0], (0, 1, true));
    let tail: Vec<_> = calls[1..].to_vec();
    assert_eq!(tail, vec![(1, 2, false), (2, 3, false), (3, 4, false)]);
    let sub = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.target.contains("subscribe"))
        .cloned();
    assert_eq!(sub.unwrap().last_event_id.as_deref(), Some("1"));
    for key in [&b"a"[..], b"user:1", b"zzz"] {
        let r = client.route(key).unwrap();
        assert_eq!(r.shard_id(), states[3].shard_for_key(key).unwrap().shard_id);
        assert_eq!(r.epoch(), states[3].shard_for_key(key).unwrap().epoch);
        assert_eq!(r.version(), 4);
    }
}

#[test]
fn a_gap_resynchronises_from_the_events_since_the_local_version() {
    let (states, sets) = history(3);
    let (s1, sets2) = (states[0].clone(), sets.clone());
    let fake = Fake::start(move |req, stream, stop| {
        if req.target == "/api/topology/snapshot" {
            json_response(stream, 200, &snapshot_body(&s1));
        } else if req.target == "/api/topology/snapshot?since=2" {
            let events: Vec<_> = sets2[1..].concat();
            json_response(stream, 200, &delta_body(2, 4, &events));
        } else if req.last_event_id.as_deref() == Some("1") {
            // v2, then v4: v3 was lost.
            sse_response(
                stream,
                &format!("{}{}", sse_set(&sets2[0]), sse_set(&sets2[2])),
                stop,
            );
        } else {
            sse_response(stream, "", stop);
        }
    });
    let client = TopologyClient::new(options(&[&fake.addr])).unwrap();
    assert_eq!(client.wait_for_version(4, WAIT), Ok(4));
    let stats = client.stats();
    assert_eq!(stats.resyncs, 1);
    assert_eq!(
        stats.versions_applied, 3,
        "v2 from the stream, v3 and v4 from the delta"
    );
    assert_eq!(client.config_hash().unwrap(), states[3].config_hash());
    let targets = fake.targets();
    assert!(
        targets.contains(&"/api/topology/snapshot?since=2".to_string()),
        "{targets:?}"
    );
}

#[test]
fn a_reset_replaces_the_local_copy() {
    let (states, _) = history(5);
    let (s1, s6) = (states[0].clone(), states[5].clone());
    let fake = Fake::start(move |req, stream, stop| {
        if req.target.starts_with("/api/topology/snapshot") {
            json_response(stream, 200, &snapshot_body(&s1));
        } else if req.last_event_id.as_deref() == Some("1") {
            let snapshot = serde_json::to_string(&s6.to_snapshot()).unwrap();
            sse_response(
                stream,
                &format!("event: Reset\nid: 6\ndata: {snapshot}\n\n"),
                stop,
            );
        } else {
            sse_response(stream, "", stop);
        }
    });
    let client = TopologyClient::new(options(&[&fake.addr])).unwrap();
    assert_eq!(client.wait_for_version(6, WAIT), Ok(6));
    assert_eq!(client.stats().snapshots_loaded, 2);
    assert_eq!(client.snapshot().unwrap(), states[5].to_snapshot());
}

#[test]
fn a_503_moves_the_client_to_the_next_server() {
    let busy = Fake::start(|_, stream, _| {
        json_response(
            stream,
            503,
            r#"{"success":false,"message":"behind, try another server"}"#,
        )
    });
    let (states, _) = history(0);
    let s1 = states[0].clone();
    let good = Fake::start(move |req, stream, stop| {
        if req.target.starts_with("/api/topology/snapshot") {
            json_response(stream, 200, &snapshot_body(&s1));
        } else {
            sse_response(
                stream,
                "event: Progress\nid: 1\ndata: {\"version\":1}\n\n",
                stop,
            );
        }
    });
    let client = TopologyClient::new(options(&[&busy.addr, &good.addr])).unwrap();
    assert_eq!(client.wait_ready(WAIT), Ok(1));
    let stats = client.stats();
    assert_eq!(stats.current_server, 1);
    assert!(stats.failovers >= 1);
    let error = client.last_error().unwrap();
    assert!(
        error.contains("503") && error.contains(&busy.addr),
        "{error}"
    );
}

#[test]
fn stale_reports_coalesce_into_one_rate_limited_refresh() {
    let (states, sets) = history(1);
    let (s1, sets2) = (states[0].clone(), sets.clone());
    let fake = Fake::start(move |req, stream, stop| {
        if req.target == "/api/topology/snapshot" {
            json_response(stream, 200, &snapshot_body(&s1));
        } else if req.target.starts_with("/api/topology/snapshot?since=1") {
            json_response(stream, 200, &delta_body(1, 2, &sets2[0]));
        } else if req.target.starts_with("/api/topology/snapshot?since=2") {
            json_response(stream, 200, &delta_body(2, 2, &[]));
        } else {
            sse_response(stream, ": nothing new\n\n", stop);
        }
    });
    let mut o = options(&[&fake.addr]);
    o.stale_refresh_interval = Duration::from_secs(30);
    o.auth_token = Some("s3cret".into());
    let client = TopologyClient::new(o).unwrap();
    assert_eq!(client.wait_ready(WAIT), Ok(1));
    let shard = sets[0][0].shard_id.clone().unwrap();
    let epoch = client.table().unwrap().epoch_of(&shard).unwrap();
    for _ in 0..10 {
        assert!(client.report_stale(&shard, epoch));
    }
    assert_eq!(client.wait_for_version(2, WAIT), Ok(2));
    // An epoch older than the local one needs no refresh.
    assert!(!client.report_stale(&shard, epoch));
    // A newer report is rate limited: no second refresh within the interval.
    assert!(client.report_stale(&shard, epoch + 100));
    std::thread::sleep(Duration::from_millis(500));
    let stats = client.stats();
    assert_eq!(stats.refreshes, 1);
    assert_eq!(stats.stale_reports, 12);
    let refreshes: Vec<_> = fake
        .targets()
        .into_iter()
        .filter(|t| t.contains("consistency=linearizable"))
        .collect();
    assert_eq!(
        refreshes,
        vec!["/api/topology/snapshot?since=1&consistency=linearizable"]
    );
    // The bearer token goes with every request, the stream included.
    let seen = fake.seen.lock().unwrap().clone();
    assert!(seen.len() >= 3);
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer s3cret")));
}

#[test]
fn listeners_can_be_removed_and_the_client_dropped_from_inside_a_callback() {
    let (states, _) = history(0);
    let s1 = states[0].clone();
    let fake = Fake::start(move |req, stream, stop| {
        if req.target.starts_with("/api/topology/snapshot") {
            slow_snapshot(stream, &s1);
        } else {
            sse_response(stream, "", stop);
        }
    });
    let client = Arc::new(Mutex::new(None::<TopologyClient>));
    let c = TopologyClient::new(options(&[&fake.addr])).unwrap();
    let slot = client.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let id = c.on_change(move |change| {
        // Drops the client from its own thread: must not deadlock.
        drop(slot.lock().unwrap().take());
        let _ = tx.send(change.version);
    });
    *client.lock().unwrap() = Some(c);
    assert_eq!(rx.recv_timeout(WAIT), Ok(1));
    assert!(client.lock().unwrap().is_none());
    let _ = id;
}
