//! The Rust API of the client against one real server: routes equal the server's
//! own shard map, a write reaches the change callback over SSE, `report_stale`
//! refreshes, and the local copy ends equal to the server's snapshot.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use concordkv_topology::{ClientOptions, ReadConsistency, TopologyClient};

use concord_testkit::eventually;

use super::{expected_route, server_version, set_status, KEYS};
use crate::support::Server;

const WAIT: Duration = Duration::from_secs(20);

fn client_for(server: &Server) -> TopologyClient {
    TopologyClient::new(ClientOptions::new([server.client.to_string()])).expect("valid options")
}

#[test]
fn client_routes_like_the_server_and_follows_writes_over_sse() {
    let server = Server::start(&["--dev"]);
    let client = client_for(&server);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    client.on_change(move |c| {
        let shards: Vec<String> = c.events.iter().filter_map(|e| e.shard_id.clone()).collect();
        sink.lock().unwrap().push((c.version, c.reset, shards));
    });
    client.wait_ready(WAIT).expect("a topology within 20 s");
    assert!(
        eventually(WAIT, || client.stats().streaming),
        "the client streams from /subscribe"
    );
    for key in KEYS {
        let want = expected_route(&server, key.as_bytes());
        let got = client.route(key.as_bytes()).unwrap();
        assert_eq!(got.shard_id(), want.shard_id, "key {key}");
        assert_eq!(got.epoch(), want.epoch, "key {key}");
        assert_eq!(got.primary().node_id, want.primary, "key {key}");
        assert_eq!(got.primary().address, want.primary_address, "key {key}");
        let replicas: Vec<&str> = got.replicas().map(|n| n.node_id).collect();
        assert_eq!(replicas, want.replicas, "key {key}");
    }

    // A write through the HTTP API reaches the callback and the routes.
    let key = b"user:1";
    let shard = client.route(key).unwrap().shard_id().to_string();
    let old_epoch = client.route(key).unwrap().epoch();
    let version = set_status(&server, &shard, "readonly");
    assert!(client.wait_for_version(version, WAIT).is_ok());
    let r = client.route(key).unwrap();
    assert_eq!(r.status(), concordkv_topology::ShardStatus::Readonly);
    assert!(r.epoch() > old_epoch);
    assert!(eventually(WAIT, || seen.lock().unwrap().iter().any(
        |(v, reset, shards)| *v == version && !reset && shards.contains(&shard)
    )));
    assert_eq!(
        client.stats().snapshots_loaded,
        1,
        "followed by events, no reload"
    );

    // The local copy is the server's topology: same version, same configHash.
    assert!(eventually(WAIT, || {
        let (v, hash) = server_version(&server);
        client.version() == v && client.config_hash().as_deref() == Some(hash.as_str())
    }));
    let local: serde_json::Value = serde_json::from_str(&client.snapshot_json().unwrap()).unwrap();
    let remote = server.get("/api/topology/snapshot").json()["snapshot"].clone();
    if local["version"] == remote["version"] {
        assert_eq!(local["shardMap"], remote["shardMap"]);
        assert_eq!(local["configHash"], remote["configHash"]);
    }
}

#[test]
fn report_stale_refreshes_once_and_linearizable_start_works() {
    let server = Server::start(&["--dev"]);
    let mut options = ClientOptions::new([server.client.to_string()]);
    options.consistency = ReadConsistency::Linearizable;
    // Long enough that no second refresh can happen during the test.
    options.stale_refresh_interval = Duration::from_secs(30);
    let client = TopologyClient::new(options).unwrap();
    client.wait_ready(WAIT).unwrap();
    let route = client.route(b"order:77").unwrap();
    let (shard, epoch) = (route.shard_id().to_string(), route.epoch());
    drop(route);
    // A data node that saw an older epoch than ours: nothing to refresh.
    assert!(!client.report_stale(&shard, epoch - 1));
    for _ in 0..50 {
        assert!(client.report_stale(&shard, epoch));
    }
    assert!(eventually(WAIT, || client.stats().refreshes >= 1));
    std::thread::sleep(Duration::from_millis(500));
    let stats = client.stats();
    assert_eq!(stats.stale_reports, 51);
    assert_eq!(stats.refreshes, 1, "50 reports coalesce into one refresh");
}

#[test]
fn an_unreachable_server_list_is_reported_as_such() {
    let client = TopologyClient::new(ClientOptions::new(["127.0.0.1:1", "127.0.0.1:2"])).unwrap();
    match client.wait_ready(Duration::from_millis(500)) {
        Err(concordkv_topology::WaitError::Unreachable { last_error }) => {
            assert!(last_error.contains("connect"), "{last_error}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(client.stats().failovers >= 1);
    assert!(matches!(
        client.route(b"k"),
        Err(concordkv_topology::RouteError::NotReady)
    ));
}
