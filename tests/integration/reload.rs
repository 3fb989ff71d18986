//! Credential reload without a restart (SIGHUP) against real processes: a write token
//! rotated in and out (and the open event streams of a read token rotated out
//! ended), a broken token file that keeps the tokens in force, a server
//! whose credentials come only from flags and the environment, and a peer secret
//! rotated across a three-server cluster while it keeps committing. (The client-port
//! certificate swap is in `tls.rs`, beside the test's certificate authority.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use concord_testkit::{wait_for, SseClient};

use crate::cluster_support::{put_node, test_config, Cluster, Node};
use crate::peer_security::peer_post;
use crate::support::Server;

const WAIT: Duration = Duration::from_secs(20);
const OLD: &str = "write-token-old-0123456789";
const NEW: &str = "write-token-new-0123456789";
const SECRET_A: &str = "peer-secret-a-0123456789abcdef";
const SECRET_B: &str = "peer-secret-b-0123456789abcdef";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("credential file");
}

/// `(reloaded, failed)` from the server's `/metrics`.
pub(crate) fn reload_counts(metrics: &str) -> (u64, u64) {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    (
        value("concord_credential_reloads_total"),
        value("concord_credential_reload_failures_total"),
    )
}

fn counts(node: &Node) -> (u64, u64) {
    let r = node.get("/metrics").expect("/metrics answers");
    reload_counts(&r.text())
}

/// Sends SIGHUP and waits until the reload has counted; answers the new counts.
fn reload(node: &Node) -> (u64, u64) {
    let before = counts(node);
    node.signal_reload();
    wait_for(WAIT, &format!("node {} reloads", node.id), || {
        let now = counts(node);
        (now.0 + now.1 > before.0 + before.1).then_some(now)
    })
}

/// The status of a topology write through `node` presenting `token`.
fn write_as(node: &Node, token: &str, name: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let r = node
        .send(
            "PUT",
            &format!("/api/topology/nodes/{name}"),
            &[("Authorization", &auth)],
            r#"{"address":"127.0.0.1:7000"}"#,
        )
        .expect("the server answers");
    r.status
}

/// One server whose write tokens come from `<temp>/write.tokens` (holding `OLD`).
fn token_server() -> (Cluster, tempfile::TempDir, PathBuf) {
    let files = tempfile::tempdir().expect("temp dir");
    let tokens = files.path().join("write.tokens");
    write(&tokens, &format!("{OLD}\n"));
    let yaml = format!(
        "{}auth:\n  write_token_file: {}\n",
        test_config(""),
        tokens.display()
    );
    let cluster = Cluster::start_with(1, false, &yaml);
    (cluster, files, tokens)
}

#[test]
fn a_write_token_is_rotated_in_and_out_without_a_restart() {
    let (cluster, _files, tokens) = token_server();
    let node = cluster.node(1);
    assert_eq!(write_as(node, OLD, "a"), 200);
    assert_eq!(write_as(node, NEW, "a"), 401, "not configured yet");

    write(&tokens, &format!("{OLD}\n{NEW}\n"));
    assert_eq!(reload(node), (1, 0));
    assert_eq!(
        write_as(node, OLD, "b"),
        200,
        "both work during the rotation"
    );
    assert_eq!(write_as(node, NEW, "c"), 200);

    write(&tokens, &format!("{NEW}\n"));
    assert_eq!(reload(node), (2, 0));
    assert_eq!(write_as(node, OLD, "d"), 401, "the old token is refused");
    assert_eq!(write_as(node, NEW, "d"), 200);
    assert!(node.is_running());
}

/// The status a subscribe to `client` presenting `token` is answered with (on a plain
/// connection the fan-out's own path answers a subscribe, not hyper).
fn subscribe_as(client: std::net::SocketAddr, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let sse = SseClient::open(
        client,
        "/api/topology/subscribe",
        &[("Authorization", &auth)],
        Duration::from_secs(5),
    )
    .expect("the server answers the subscribe");
    sse.status
}

/// One server whose read tokens come from `<temp>/read.tokens` (holding `read`) and
/// write tokens from `<temp>/write.tokens` (holding `NEW`), with `extra` YAML.
fn read_token_server(read: &[&str], extra: &str) -> (Server, tempfile::TempDir, PathBuf) {
    let files = tempfile::tempdir().expect("temp dir");
    let (reads, writes) = (
        files.path().join("read.tokens"),
        files.path().join("write.tokens"),
    );
    write(&reads, &format!("{}\n", read.join("\n")));
    write(&writes, &format!("{NEW}\n"));
    let yaml = format!(
        "auth:\n  read_token_file: {}\n  write_token_file: {}\n{extra}",
        reads.display(),
        writes.display()
    );
    (Server::with_config(&yaml, &["--dev"]), files, reads)
}

/// Sends SIGHUP to `server` and waits until one more group has reloaded.
fn reload_server(server: &Server) {
    let before = reload_counts(&server.get("/metrics").text());
    server.signal_reload();
    wait_for(WAIT, "the server reloads", || {
        (reload_counts(&server.get("/metrics").text()) == (before.0 + 1, before.1)).then_some(())
    });
}

#[test]
fn a_read_token_rotated_out_no_longer_opens_a_stream() {
    const OLD_READ: &str = "read-token-old-0123456789";
    const NEW_READ: &str = "read-token-new-0123456789";
    let (server, _files, reads) = read_token_server(&[OLD_READ], "");
    assert_eq!(subscribe_as(server.client, OLD_READ), 200);
    assert_eq!(subscribe_as(server.client, NEW_READ), 401);

    write(&reads, &format!("{NEW_READ}\n"));
    reload_server(&server);
    assert_eq!(
        subscribe_as(server.client, OLD_READ),
        401,
        "a token rotated out opens no stream"
    );
    assert_eq!(subscribe_as(server.client, NEW_READ), 200);
}

/// Reads `sse` until it ends; panics when it is still open after `WAIT` (events such
/// as `Progress` may come first).
fn assert_ends(sse: &mut SseClient, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match sse.read_event(left) {
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("{what}: still open {WAIT:?} after its token was rotated out")
            }
            // A reset also ends it; the server closed the socket.
            Err(_) => return,
        }
    }
}

#[test]
fn open_streams_whose_read_token_is_rotated_out_end_at_the_reload() {
    const LEAKED: &str = "read-token-leaked-0123456789";
    const KEPT: &str = "read-token-kept-0123456789";
    // Heartbeats (which would also make a stream check its token) are far apart: the
    // reload itself must end the streams.
    let (server, _files, reads) = read_token_server(
        &[LEAKED, KEPT],
        "topology:\n  notifications:\n    heartbeat_interval: 120s\n",
    );
    let leaked = format!("Bearer {LEAKED}");
    let kept = format!("Bearer {KEPT}");
    let open = |auth: &str| {
        SseClient::open(
            server.client,
            "/api/topology/subscribe",
            &[("Authorization", auth)],
            WAIT,
        )
        .expect("subscribe")
    };
    // The fan-out writer's path (a subscribe first on its connection) and hyper's (a
    // subscribe after a read on the same connection).
    let mut raw = open(&leaked);
    let mut through_hyper = SseClient::open_after(
        server.client,
        "/api/topology/version",
        "/api/topology/subscribe",
        &[("Authorization", &leaked)],
        WAIT,
    )
    .expect("subscribe after a read");
    let mut survivor = open(&kept);
    assert_eq!(
        (raw.status, through_hyper.status, survivor.status),
        (200, 200, 200)
    );

    write(&reads, &format!("{KEPT}\n"));
    reload_server(&server);
    assert_ends(&mut raw, "the fan-out writer's stream");
    assert_ends(&mut through_hyper, "the stream served through hyper");

    // The stream whose token is still in force carries on, and gets the next change.
    let auth = format!("Bearer {NEW}");
    let put = server.send(
        "PUT",
        "/api/topology/nodes/after-rotation",
        &[("Authorization", &auth)],
        r#"{"address":"127.0.0.1:7000"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let version = server.version();
    assert!(
        survivor.events_through(version, WAIT).is_some(),
        "the stream with a kept token carries version {version}"
    );
}

#[test]
fn a_broken_token_file_keeps_the_tokens_in_force() {
    let (cluster, _files, tokens) = token_server();
    let node = cluster.node(1);
    let shown = tokens.display().to_string();

    write(&tokens, &format!("{NEW}\nshort\n"));
    assert_eq!(reload(node), (0, 1));
    assert_eq!(write_as(node, OLD, "a"), 200, "the old set stays in force");
    assert_eq!(
        write_as(node, NEW, "a"),
        401,
        "nothing of the bad file applied"
    );
    let failure = node
        .log()
        .lines()
        .find(|l| l.contains("credential reload"))
        .map(str::to_string)
        .expect("a log line for the failed reload");
    assert!(
        failure.contains("auth.write_token_file") && failure.contains(&format!("{shown} line 2")),
        "{failure}"
    );
    assert!(
        !failure.contains(NEW),
        "never a token in the log: {failure}"
    );

    std::fs::remove_file(&tokens).expect("remove");
    assert_eq!(reload(node), (0, 2));
    assert_eq!(write_as(node, OLD, "b"), 200);

    write(&tokens, &format!("{NEW}\n"));
    assert_eq!(reload(node), (1, 2));
    assert_eq!(write_as(node, NEW, "c"), 200);
    assert_eq!(write_as(node, OLD, "c"), 401);
}

#[test]
fn credentials_from_flags_and_the_environment_survive_sighup_unchanged() {
    // The dev token and the peer secret from the environment (what the cluster sets).
    let yaml = format!("{}auth_token: {OLD}\n", test_config(""));
    let cluster = Cluster::start_with(1, false, &yaml);
    let node = cluster.node(1);
    node.signal_reload();
    let said = wait_for(WAIT, "the reload says nothing is file-based", || {
        node.log()
            .lines()
            .find(|l| l.contains("no credential comes from a file"))
            .map(str::to_string)
    });
    assert!(
        said.contains("auth_token") && said.contains("CONCORD_PEER_SECRET"),
        "{said}"
    );
    assert_eq!(counts(node), (0, 0));
    assert!(node.is_running(), "SIGHUP does not stop the server");
    assert_eq!(write_as(node, OLD, "a"), 200);
}

/// A write through a follower (forwarded to the leader over the peer port), then
/// every server converges on it (replication over the peer port).
fn commits_through_the_peer_port(cluster: &Cluster, name: &str) {
    let leader = cluster.leader(WAIT);
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let version = wait_for(
        WAIT,
        &format!("{name} is written through a follower"),
        || put_node(cluster.node(follower).client, name, None).ok(),
    );
    cluster.converged(&cluster.ids(), version, WAIT);
}

#[test]
fn a_peer_secret_is_rotated_across_a_cluster_without_a_restart() {
    let files = tempfile::tempdir().expect("temp dir");
    let secret = files.path().join("peer.secret");
    write(&secret, &format!("{SECRET_A}\n"));
    let yaml = format!(
        "{}auth:\n  peer_secret_file: {}\n",
        test_config(""),
        secret.display()
    );
    // No CONCORD_PEER_SECRET (empty): the file is the secret's only source.
    let cluster = Cluster::spawn(3, false, &yaml, |_| "");
    commits_through_the_peer_port(&cluster, "before");

    // 1. Every server accepts the new secret (still presenting the old one).
    write(&secret, &format!("{SECRET_A}\n{SECRET_B}\n"));
    for id in cluster.ids() {
        assert_eq!(reload(cluster.node(id)).1, 0);
    }
    commits_through_the_peer_port(&cluster, "accepting-both");
    // 2. Server by server, present the new one: the others accept either meanwhile.
    write(&secret, &format!("{SECRET_B}\n{SECRET_A}\n"));
    for id in cluster.ids() {
        assert_eq!(reload(cluster.node(id)).1, 0);
        commits_through_the_peer_port(&cluster, &format!("presenting-new-{id}"));
    }
    // 3. Drop the old secret everywhere.
    write(&secret, &format!("{SECRET_B}\n"));
    for id in cluster.ids() {
        assert_eq!(reload(cluster.node(id)), (3, 0));
    }
    commits_through_the_peer_port(&cluster, "after");
    for id in cluster.ids() {
        let node = cluster.node(id);
        let old = peer_post(node, "/raft/vote", Some("2"), Some(SECRET_A), b"\xff");
        assert_eq!(old.status, 401, "node {id}: the old secret is refused");
        let new = peer_post(node, "/raft/vote", Some("2"), Some(SECRET_B), b"\xff");
        assert_ne!(new.status, 401, "node {id}: the new secret is accepted");
        assert!(node.is_running());
    }
}
