//! The dashboard at `/ui` in a real headless Chromium: it draws the ring, follows
//! topology changes live through its event stream, recovers with a Reset after being
//! cut off past the server's history, works with a read token, and aggregates a
//! 16,384-shard ring into slices.
//!
//! `CONCORD_UI_SCREENSHOTS=DIR` also writes `DIR/dashboard.png` (the sample topology)
//! and `DIR/dashboard-16k.png` (1,000 nodes, 16,384 shards): how docs/dashboard.png
//! is made.

use std::time::{Duration, Instant};

use concord_testkit::http::request;
use serde_json::{json, Value};

use crate::browser::{Browser, Relay};
use crate::support::Server;

/// A laptop screen.
const WIDTH: u32 = 1440;
const HEIGHT: u32 = 1000;

/// Start-up of the page (first snapshot, stream open), generous for a loaded machine.
const PAGE_READY: Duration = Duration::from_secs(30);

/// What the issue asks of the live path: a change shows within a second.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

/// The page's stream is open and its ring has `shards` arcs or slices drawn.
fn ready_script(shards: usize) -> String {
    format!(
        "return document.body.dataset.feed === 'live' && \
         Number(document.body.dataset.shards) === {shards} && \
         document.querySelectorAll('#ring .arc').length > 0;"
    )
}

fn open_dashboard(browser: &Browser, base: std::net::SocketAddr, shards: usize) {
    browser.open(&format!("http://{base}/ui"));
    browser.wait_until(PAGE_READY, "the dashboard is live", &ready_script(shards));
}

/// Polls `script` until it returns true and asserts that took at most
/// [`LIVE_WITHIN`] (it keeps polling for 10 s more to tell "slow" from "never").
fn shows_within_a_second(browser: &Browser, what: &str, script: &str) {
    let since = Instant::now();
    browser.wait_until(Duration::from_secs(10) + LIVE_WITHIN, what, script);
    let took = since.elapsed();
    assert!(
        took <= LIVE_WITHIN,
        "the dashboard showed {what} only after {took:?}"
    );
}

fn save_screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os("CONCORD_UI_SCREENSHOTS") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(name);
    std::fs::write(&path, browser.screenshot()).expect("screenshot file");
    eprintln!("dashboard screenshot: {}", path.display());
}

fn write(server: &Server, method: &str, path: &str, body: &Value) -> u64 {
    let answer = server.send(method, path, &[], &body.to_string());
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
    answer.json()["version"].as_u64().expect("a version")
}

#[test]
fn the_dashboard_shows_a_split_and_an_offline_shard_within_a_second() {
    let server = Server::start(&["--dev"]);
    let Some(browser) = Browser::start(WIDTH, HEIGHT) else {
        return;
    };
    let page = request(server.client, "GET", "/ui", &[], b"");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    open_dashboard(&browser, server.client, 64);
    browser.wait_until(
        Duration::from_secs(10),
        "the Raft members with node 1 as the leader",
        "const row = document.querySelector('#members [data-member=\"1\"]'); \
         return row !== null && row.textContent.includes('leader');",
    );

    let version = write(
        &server,
        "POST",
        "/api/topology/shards/shard-0003/split",
        &json!({"newShardId": "shard-ui-split"}),
    );
    shows_within_a_second(
        &browser,
        "the split shard on the ring and in the event feed",
        &format!(
            "return Number(document.body.dataset.version) >= {version} && \
             document.querySelector('#ring [data-shard=\"shard-ui-split\"]') !== null && \
             document.querySelectorAll('#ring .arc').length === 65 && \
             document.querySelector('#events [data-type=\"ShardSplit\"][data-version=\"{version}\"]') !== null;"
        ),
    );

    write(
        &server,
        "PUT",
        "/api/topology/shards/shard-0005",
        &json!({"status": "offline"}),
    );
    shows_within_a_second(
        &browser,
        "shard-0005 offline on the ring and among the shards needing attention",
        "return document.querySelector('#ring [data-shard=\"shard-0005\"]')?.dataset.status === 'offline' && \
         document.querySelector('#attention [data-shard-row=\"shard-0005\"]') !== null;",
    );
    click_arc(&browser, "[data-shard=\"shard-0005\"]");
    browser.wait_until(
        Duration::from_secs(10),
        "the picked shard's details",
        "return document.querySelector('#detail [data-shard-row=\"shard-0005\"]') !== null;",
    );
    save_screenshot(&browser, "dashboard.png");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

/// Clicks the ring's arc (or slice) matching `selector`.
fn click_arc(browser: &Browser, selector: &str) {
    let clicked = browser.eval(&format!(
        "const arc = document.querySelector('#ring {selector} path'); \
         if (!arc) return false; \
         arc.dispatchEvent(new MouseEvent('click', {{ bubbles: true }})); return true;"
    ));
    assert_eq!(clicked, json!(true), "no arc {selector} to click");
}

#[test]
fn a_dashboard_cut_off_past_the_history_gets_a_reset_and_reads_the_snapshot_again() {
    let server = Server::with_config(
        "topology:\n  notifications:\n    event_buffer_size: 8\n",
        &["--dev"],
    );
    let Some(browser) = Browser::start(WIDTH, HEIGHT) else {
        return;
    };
    let relay = Relay::start(server.client);
    open_dashboard(&browser, relay.addr, 64);

    relay.cut();
    browser.wait_until(
        Duration::from_secs(10),
        "the page notices it lost its stream",
        "return document.body.dataset.feed !== 'live';",
    );
    let mut version = 0;
    for i in 0..12 {
        let path = format!("/api/topology/nodes/node-ui-{i}");
        version = write(&server, "PUT", &path, &json!({"address": "127.0.0.1:1"}));
    }
    relay.heal();
    browser.wait_until(
        Duration::from_secs(20),
        "a Reset in the feed and the snapshot read again",
        &format!(
            "return document.body.dataset.feed === 'live' && \
             Number(document.body.dataset.version) >= {version} && \
             Number(document.body.dataset.nodes) === 18 && \
             document.querySelector('#events [data-type=\"Reset\"]') !== null;"
        ),
    );
}

#[test]
fn with_read_tokens_the_dashboard_asks_for_one_and_then_follows_changes() {
    const READ: &str = "dashboard-read-token-0123";
    const WRITE: &str = "dashboard-write-token-0123";
    let dir = tempfile::tempdir().expect("temp dir");
    let (read, write_file) = (dir.path().join("read"), dir.path().join("write"));
    std::fs::write(&read, READ).expect("token file");
    std::fs::write(&write_file, WRITE).expect("token file");
    let server = Server::with_config(
        &format!(
            "auth:\n  read_token_file: {}\n  write_token_file: {}\n",
            read.display(),
            write_file.display()
        ),
        &["--dev"],
    );
    let Some(browser) = Browser::start(WIDTH, HEIGHT) else {
        return;
    };
    let page = request(server.client, "GET", "/ui/app.js", &[], b"");
    assert_eq!(page.status, 200, "the assets need no token");
    browser.open(&format!("http://{}/ui", server.client));
    browser.wait_until(
        PAGE_READY,
        "the page says it needs a read token",
        "const p = document.getElementById('problem'); \
         return !p.hidden && p.textContent.includes('read token');",
    );
    browser.eval(&format!(
        "document.getElementById('token').value = '{READ}'; \
         document.getElementById('token-form').requestSubmit(); return true;"
    ));
    browser.wait_until(PAGE_READY, "the dashboard is live", &ready_script(64));
    let kind = browser.eval("return document.getElementById('feed-state').textContent;");
    assert!(
        kind.as_str().is_some_and(|k| k.contains("token")),
        "with a token the stream is read through fetch: {kind}"
    );
    let answer = server.send(
        "POST",
        "/api/topology/shards/shard-0007/split",
        &[("Authorization", &format!("Bearer {WRITE}"))],
        "{\"newShardId\":\"shard-ui-token\"}",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    shows_within_a_second(
        &browser,
        "the split shard, streamed with the token",
        "return document.querySelector('#ring [data-shard=\"shard-ui-token\"]') !== null;",
    );
}

#[test]
fn a_ring_of_16384_shards_is_drawn_as_256_slices() {
    let server = Server::start(&[]);
    let Some(browser) = Browser::start(WIDTH, HEIGHT) else {
        return;
    };
    let nodes: Vec<Value> = (1..=1000)
        .map(|i| json!({"nodeId": format!("node-{i:04}"), "address": format!("127.0.0.1:{}", 20000 + i)}))
        .collect();
    write(
        &server,
        "POST",
        "/api/topology/bootstrap",
        &json!({"nodes": nodes, "shardCount": 16384, "replicationFactor": 3}),
    );
    let shards = server.get("/api/topology/shards").json();
    let ids: Vec<&str> = shards["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["shardId"].as_str().expect("an id"))
        .collect();
    let operations: Vec<Value> = ids
        .iter()
        .step_by(997)
        .zip(["offline", "readonly"].iter().cycle())
        .map(|(id, status)| json!({"op": "updateShard", "shardId": id, "status": status}))
        .collect();
    let version = write(
        &server,
        "POST",
        "/api/topology/batch",
        &json!({ "operations": operations }),
    );
    open_dashboard(&browser, server.client, 16384);
    browser.wait_until(
        PAGE_READY,
        "256 slices, some of them holding an offline shard",
        &format!(
            "return Number(document.body.dataset.version) >= {version} && \
             document.querySelectorAll('#ring [data-bucket]').length === 256 && \
             document.querySelectorAll('#ring [data-bucket][data-status=\"offline\"]').length > 0 && \
             document.querySelectorAll('#ring [data-shard]').length === 0;"
        ),
    );
    click_arc(&browser, "[data-bucket=\"0\"]");
    browser.wait_until(
        Duration::from_secs(10),
        "the first slice's shards, shard-00000 offline among them",
        "const rows = document.querySelectorAll('#detail [data-shard-row]'); \
         return rows.length === 64 && rows[0].dataset.shardRow === 'shard-00000' && \
         rows[0].textContent.includes('offline');",
    );
    save_screenshot(&browser, "dashboard-16k.png");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}
