//! Client-port credentials and health-probe targets against the real binary: scopes
//! (read < write < admin) from token files and the environment, 401 versus 403, the
//! start-up refusals (bad tokens, an open non-loopback client port), the open probe
//! routes, the probe allow-list and the probe errors: the topology holds only their
//! kind in every mode, the probe's own words go only to a health round's caller.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concord_testkit::http::{request, Response};
use concord_testkit::process::{answers_200, serve_args};
use concord_testkit::sse::SseClient;
use concord_testkit::{free_addr, free_port, server_binary};
use serde_json::Value;

use crate::data_node::DataNode;
use crate::support::Server;

const READ: &str = "read-token-4f1c2b7a9e";
const WRITE: &str = "write-token-8d3e6a1f0c";
const WRITE_NEXT: &str = "write-token-next-77aa10";
const ADMIN: &str = "admin-token-2b9d5e4c13";

/// Token files for every scope (the write file holds two tokens, as during a
/// rotation), in `dir`; answers the `auth:` section naming them.
fn token_files(dir: &Path) -> String {
    let file = |name: &str, text: String| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("token file");
        path
    };
    let read = file("read.tokens", format!("{READ}\n"));
    let write = file(
        "write.tokens",
        format!("# current, then the one being rolled out\n{WRITE}\n\n{WRITE_NEXT}\n"),
    );
    let admin = file("admin.tokens", format!("{ADMIN}\n"));
    format!(
        "auth:\n  read_token_file: {}\n  write_token_file: {}\n  admin_token_file: {}\n",
        read.display(),
        write.display(),
        admin.display()
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends a request as `token`'s holder (anonymous when `None`).
fn send_as(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> Response {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    server.send(method, path, &headers, body)
}

fn status(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> u16 {
    let r = send_as(server, method, path, token, body);
    if r.status == 401 {
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{}", r.text());
    }
    r.status
}

const LEARNER: &str = r#"{"nodeId":9,"address":"127.0.0.1:1"}"#;
const BOOTSTRAP_BATCH: &str = r#"{"operations":[{"op":"bootstrap","nodes":[{"nodeId":"n1","address":"127.0.0.1:9001"}],"shardCount":1,"replicationFactor":1}]}"#;

#[test]
fn membership_and_bootstrap_need_the_admin_scope_writes_the_write_scope() {
    let dir = tempfile::tempdir().unwrap();
    // `--dev` readiness polls the version without a token: start without read tokens.
    let yaml = token_files(dir.path()).replace("  read_token_file:", "  # read_token_file:");
    let server = Server::with_config(&yaml, &[]);
    let s = |method, path, token, body| status(&server, method, path, token, body);

    assert_eq!(s("POST", "/api/cluster/learners", None, LEARNER), 401);
    assert_eq!(
        s(
            "POST",
            "/api/cluster/learners",
            Some("wrong-token-0123456789"),
            LEARNER
        ),
        401
    );
    assert_eq!(
        s("POST", "/api/cluster/learners", Some(WRITE), LEARNER),
        403
    );
    assert_eq!(
        s(
            "POST",
            "/api/cluster/membership",
            Some(WRITE),
            r#"{"voters":[1]}"#
        ),
        403
    );
    // The admin token passes the scope check; the body is then judged (no field `x`).
    assert_eq!(
        s("POST", "/api/cluster/learners", Some(ADMIN), r#"{"x":1}"#),
        400
    );
    let r = server.send(
        "POST",
        "/api/cluster/learners",
        &[("Authorization", &bearer(WRITE))],
        LEARNER,
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("admin scope"),
        "{}",
        r.text()
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\"")
    );

    // Bootstrap, as its own route or inside a batch, is an admin operation.
    assert_eq!(s("POST", "/api/topology/bootstrap", Some(WRITE), "{}"), 403);
    assert_eq!(
        s("POST", "/api/topology/batch", Some(WRITE), BOOTSTRAP_BATCH),
        403
    );
    assert_eq!(server.version(), 0, "nothing was applied");
    assert_eq!(
        s("POST", "/api/topology/batch", Some(ADMIN), BOOTSTRAP_BATCH),
        200
    );

    // Writes: either write token of the file (rotation), the admin token; not none.
    let node = r#"{"address":"127.0.0.1:9002"}"#;
    assert_eq!(s("PUT", "/api/topology/nodes/n2", None, node), 401);
    assert_eq!(s("PUT", "/api/topology/nodes/n2", Some(WRITE), node), 200);
    assert_eq!(
        s("PUT", "/api/topology/nodes/n3", Some(WRITE_NEXT), node),
        200
    );
    assert_eq!(s("PUT", "/api/topology/nodes/n4", Some(ADMIN), node), 200);
    // Reads are open without read tokens.
    assert_eq!(s("GET", "/api/topology/nodes", None, ""), 200);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start(&["--auth-token", WRITE]);
    let node = r#"{"address":"127.0.0.1:9002"}"#;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {WRITE}");
        let r = server.send(
            "PUT",
            "/api/topology/nodes/n1",
            &[("Authorization", &value)],
            node,
        );
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    let r = server.send(
        "PUT",
        "/api/topology/nodes/n1",
        &[("Authorization", &format!("Basic {WRITE}"))],
        node,
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn with_read_tokens_reads_and_sse_need_a_token_and_probe_routes_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(&token_files(dir.path()), &[]);
    for path in [
        "/api/topology/snapshot",
        "/api/topology/nodes",
        "/api/topology/version",
        "/api/topology/events",
        "/api/topology/stats",
        "/api/cluster/status",
    ] {
        assert_eq!(status(&server, "GET", path, None, ""), 401, "{path}");
        assert_eq!(
            status(&server, "GET", path, Some("wrong-token-0123456789"), ""),
            401,
            "{path}"
        );
        for token in [READ, WRITE, ADMIN] {
            assert_eq!(status(&server, "GET", path, Some(token), ""), 200, "{path}");
        }
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(status(&server, "GET", path, None, ""), 200, "{path}");
    }
    let node = r#"{"address":"127.0.0.1:9002"}"#;
    assert_eq!(
        status(&server, "PUT", "/api/topology/nodes/n1", Some(READ), node),
        403
    );

    let refused = SseClient::connect(server.client, "/api/topology/subscribe", &[]);
    assert_eq!(refused.status, 401);
    let auth = bearer(READ);
    let mut stream = SseClient::connect(
        server.client,
        "/api/topology/subscribe",
        &[("Authorization", &auth)],
    );
    assert_eq!(stream.status, 200);
    assert_eq!(
        status(&server, "PUT", "/api/topology/nodes/n1", Some(WRITE), node),
        200
    );
    let change = stream.next_event(Duration::from_secs(10));
    assert!(change.is_some(), "the subscriber receives the change");
}

/// A server process started outside the test kit (own environment, or expected to
/// refuse to start); killed on drop.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(client: SocketAddr, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Spawned {
    let mut args = serve_args(1, client, free_addr(), data_dir, 1);
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(server_binary())
        .args(&args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn,openraft=error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concord-topo");
    Spawned(child)
}

/// The exit code and standard error of a server that must refuse to start.
fn refused(client: SocketAddr, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(client, &dir.path().join("data"), extra, env);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.0.try_wait().expect("wait") {
            let mut stderr = String::new();
            use std::io::Read;
            server
                .0
                .stderr
                .take()
                .expect("piped")
                .read_to_string(&mut stderr)
                .unwrap();
            return (exit.code().unwrap_or(-1), stderr);
        }
        assert!(
            Instant::now() < deadline,
            "concord-topo {extra:?} {env:?} started; it must refuse"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_ready(server: &mut Spawned, client: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers_200(client, "/readyz") {
        if let Some(exit) = server.0.try_wait().expect("wait") {
            panic!("concord-topo exited during start-up: {exit}");
        }
        assert!(Instant::now() < deadline, "not ready within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_come_from_the_environment_and_bad_ones_refuse_the_start() {
    let client = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(
        client,
        &dir.path().join("data"),
        &[],
        &[
            ("CONCORD_WRITE_TOKEN", WRITE),
            ("CONCORD_ADMIN_TOKEN", ADMIN),
        ],
    );
    wait_ready(&mut server, client);
    let put = |token: &str| {
        let auth = bearer(token);
        request(
            client,
            "PUT",
            "/api/topology/nodes/n1",
            &[("Authorization", &auth)],
            br#"{"address":"127.0.0.1:9002"}"#,
        )
        .status
    };
    assert_eq!(put(WRITE), 200);
    assert_eq!(put("not-the-token-0123456789"), 401);
    drop(server);

    let check = |extra: &[&str], env: &[(&str, &str)], key: &str, why: &str| {
        let (code, stderr) = refused(free_addr(), extra, env);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(key) && stderr.contains(why), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    };
    check(
        &[],
        &[("CONCORD_WRITE_TOKEN", "w\u{1b}[0mrite-token-0123")],
        "CONCORD_WRITE_TOKEN",
        "visible ASCII",
    );
    check(
        &[],
        &[("CONCORD_ADMIN_TOKEN", "short")],
        "CONCORD_ADMIN_TOKEN",
        "at least 16",
    );
    let token_file = dir.path().join("write.tokens");
    std::fs::write(&token_file, "caf\u{e9}-au-lait-0123456789\n").unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        format!("auth:\n  write_token_file: {}\n", token_file.display()),
    )
    .unwrap();
    check(
        &["--config", config.to_str().unwrap()],
        &[],
        "auth.write_token_file",
        "visible ASCII",
    );
    check(
        &["--auth-token", "has space"],
        &[],
        "auth_token",
        "visible ASCII",
    );
}

#[test]
fn an_open_client_port_off_loopback_refuses_to_start_unless_insecure() {
    // Listens on every interface; the test talks to it on 127.0.0.1 only.
    let port = free_port();
    let everywhere: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let (code, stderr) = refused(everywhere, &[], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("client_addr") && stderr.contains("insecure"),
        "{stderr}"
    );

    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut open = spawn(everywhere, &dir.path().join("a"), &["--insecure"], &[]);
    wait_ready(&mut open, local);
    drop(open);
    let mut guarded = spawn(
        everywhere,
        &dir.path().join("b"),
        &[],
        &[("CONCORD_WRITE_TOKEN", WRITE)],
    );
    wait_ready(&mut guarded, local);
    let r = request(
        local,
        "POST",
        "/api/cluster/learners",
        &[],
        LEARNER.as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

const PROBING: &str = "topology:
  health_check:
    interval: 200ms
    timeout: 100ms
    retry_count: 0
";

fn node(server: &Server, id: &str) -> Value {
    let r = server.get(&format!("/api/topology/nodes?nodeId={id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["node"].clone()
}

/// Registers data node `id` at `address`; the registration is never refused for
/// where the address points (the topology may hold any address).
fn register(server: &Server, id: &str, address: &str, token: Option<&str>) {
    let body = format!(r#"{{"address":"{address}"}}"#);
    let path = format!("/api/topology/nodes/{id}");
    assert_eq!(status(server, "PUT", &path, token, &body), 200);
}

/// Polls until `id`'s `lastError` is set; answers the node.
fn wait_for_error(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = node(server, id);
        if n["lastError"].is_string() {
            return n;
        }
        assert!(Instant::now() < deadline, "{id} has no lastError: {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn probes_never_leave_the_allow_list() {
    let listening = DataNode::start();
    let only_ten = format!(
        "{PROBING}    allowed_targets:\n      - network: 10.0.0.0/8\n        ports: 1024-65535\n"
    );
    let server = Server::with_config(&only_ten, &[]);
    register(&server, "outside", &listening.address(), None);
    let n = wait_for_error(&server, "outside");
    assert_eq!(n["health"], "unknown", "{n}");
    assert!(
        n["lastError"]
            .as_str()
            .unwrap()
            .contains("address not allowed by health_check.allowed_targets"),
        "{n}"
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(listening.requests(), 0, "the node was never probed");
    assert_eq!(node(&server, "outside")["health"], "unknown");
}

#[test]
fn by_default_a_privileged_port_is_never_probed() {
    // The default list: loopback yes, but not a privileged port.
    let server = Server::with_config(PROBING, &[]);
    register(&server, "ssh", "127.0.0.1:22", None);
    let n = wait_for_error(&server, "ssh");
    assert_eq!(n["health"], "unknown", "{n}");
    assert!(
        n["lastError"].as_str().unwrap().contains("not allowed"),
        "{n}"
    );
}

#[test]
fn probe_errors_are_generic_for_callers_without_a_write_token() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}{PROBING}",
        token_files(dir.path()).replace("  read_token_file:", "  # read_token_file:")
    );
    let server = Server::with_config(&yaml, &[]);
    let closed = free_addr();
    register(&server, "gone", &closed.to_string(), Some(WRITE));
    let n = wait_for_error(&server, "gone");
    assert_eq!(n["lastError"], "connection refused", "{n}");
    assert!(!n.to_string().contains("os error"), "{n}");

    // The round's caller holds a write token: it sees the probe's own words.
    let auth = bearer(WRITE);
    let r = server.send(
        "POST",
        "/api/topology/health?nodeId=gone",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let result = &r.json()["results"][0];
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("connect to {closed} failed")),
        "{result}"
    );
}

/// Asks for a health round of `id` as `token`'s holder; answers the status and body.
fn round_of(server: &Server, id: &str, token: Option<&str>) -> (u16, Value) {
    let path = format!("/api/topology/health?nodeId={id}");
    let r = send_as(server, "POST", &path, token, "");
    let body = if r.status == 200 {
        r.json()
    } else {
        Value::Null
    };
    (r.status, body)
}

/// The round's own words for a refused connection to `closed`: the address is there.
fn assert_round_words(body: &Value, closed: SocketAddr) {
    let result = &body["results"][0];
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("connect to {closed} failed")),
        "{result}"
    );
    assert_eq!(result["lastError"], "connection refused", "{result}");
}

#[test]
fn without_tokens_the_topology_still_holds_only_the_kind_of_a_probe_error() {
    // Development mode: no tokens at all, so anyone reads and anyone writes.
    let server = Server::with_config(PROBING, &[]);
    let closed = free_addr();
    register(&server, "gone", &closed.to_string(), None);
    let n = wait_for_error(&server, "gone");
    assert_eq!(n["lastError"], "connection refused", "{n}");
    let snapshot = server.get("/api/topology/snapshot").text();
    assert!(!snapshot.contains("os error"), "{snapshot}");
    assert!(
        snapshot.contains(r#""lastError":"connection refused""#),
        "{snapshot}"
    );
    // Writes are open here, so every caller of a round has the write scope.
    let (status, body) = round_of(&server, "gone", None);
    assert_eq!(status, 200);
    assert_round_words(&body, closed);
}

#[test]
fn with_read_tokens_a_reader_sees_the_kind_and_cannot_run_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("{}{PROBING}", token_files(dir.path()));
    let server = Server::with_config(&yaml, &[]);
    let closed = free_addr();
    register(&server, "gone", &closed.to_string(), Some(WRITE));
    let path = "/api/topology/nodes?nodeId=gone";
    assert_eq!(status(&server, "GET", path, None, ""), 401, "anonymous");
    let deadline = Instant::now() + Duration::from_secs(20);
    let n = loop {
        let r = send_as(&server, "GET", path, Some(READ), "");
        assert_eq!(r.status, 200, "{}", r.text());
        let n = r.json()["node"].clone();
        if n["lastError"].is_string() {
            break n;
        }
        assert!(Instant::now() < deadline, "no lastError: {n}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(n["lastError"], "connection refused", "{n}");

    assert_eq!(round_of(&server, "gone", None).0, 401, "anonymous");
    assert_eq!(round_of(&server, "gone", Some(READ)).0, 403, "read scope");
    let (status, body) = round_of(&server, "gone", Some(WRITE));
    assert_eq!(status, 200);
    assert_round_words(&body, closed);
}
