//! TLS against real processes: HTTPS on the client port (optionally requiring client
//! certificates), mutual TLS between the servers of a cluster, the handshake deadline,
//! plain HTTP sent to a TLS port, and bad certificate files at start. Certificates are
//! made here with rcgen; requests go through a small blocking rustls client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::http::{parse_response, raw_exchange_within, Response};
use concord_testkit::process::{initial_cluster, serve_args, Stderr};
use concord_testkit::sse::{SseDecoder, SseEvent};
use concord_testkit::{free_addr, server_binary, wait_for, TopoProcess};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::cluster_support::test_config;

const WAIT: Duration = Duration::from_secs(20);

/// What the test servers share as their peer secret (ignored by a server that has none).
const PEER_SECRET: &str = "tls-test-peer-secret-0123456789abcdef";

/// A certificate and its key, as PEM files.
struct Identity {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A certificate authority of the test, its certificate written to `<dir>/<name>.crt`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_file: PathBuf,
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_file = dir.join(format!("{name}.crt"));
        std::fs::write(&cert_file, cert.pem()).expect("CA file");
        Ca {
            issuer: Issuer::new(params, key),
            cert_file,
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate for 127.0.0.1 (IP SAN), good as server and as client.
    fn issue(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let identity = Identity {
            cert_file: self.dir.join(format!("{name}.crt")),
            key_file: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&identity.cert_file, cert.pem()).expect("certificate file");
        std::fs::write(&identity.key_file, key.serialize_pem()).expect("key file");
        identity
    }
}

/// A client that trusts `ca` and presents `identity` when given one.
fn client_config(ca: &Path, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let certs = CertificateDer::pem_file_iter(&id.cert_file)
                .expect("certificate file")
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate PEM");
            let key = PrivateKeyDer::from_pem_file(&id.key_file).expect("key PEM");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client identity")
        }
    })
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` (the handshake runs on first use).
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    Ok(StreamOwned::new(tls, tcp))
}

/// Sends one request (`Connection: close`) on `stream`.
fn send_request(stream: &mut impl Write, method: &str, path: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// One HTTPS exchange, read to the end of the connection.
fn https(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = connect(addr, config)?;
    send_request(&mut stream, method, path, body)?;
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    parse_response(&data)
}

/// A running server of a test, killed on drop.
struct TlsServer {
    id: u64,
    client: SocketAddr,
    peer: SocketAddr,
    process: TopoProcess,
}

/// Starts `concord-topo` with `args` plus its identity and ports, logging to a file.
fn spawn(id: u64, dir: &Path, peer: SocketAddr, args: &[String]) -> TlsServer {
    let client = free_addr();
    let mut all = serve_args(id, client, peer, &dir.join(format!("node{id}")), 1);
    all.extend(args.iter().cloned());
    let log = dir.join(format!("node{id}.log"));
    let mut process = TopoProcess::new(server_binary(), all)
        .env("CONCORD_PEER_SECRET", PEER_SECRET)
        .stderr(Stderr::File(log));
    process.spawn();
    TlsServer {
        id,
        client,
        peer,
        process,
    }
}

fn path_args(pairs: &[(&str, &Path)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
}

/// The config file every test server reads: the cluster tests' timing, and a short
/// keep-alive (the handshake deadline) so a stalled handshake is cut off quickly.
fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("concord.yaml");
    let yaml = test_config("").replace("http:\n", "http:\n  keepalive_timeout: 1s\n");
    std::fs::write(&path, yaml).expect("config file");
    path
}

/// This server's `/api/cluster/status` `cluster` object over HTTPS.
fn status(server: &TlsServer, config: &Arc<ClientConfig>) -> Option<serde_json::Value> {
    let r = https(server.client, config, "GET", "/api/cluster/status", b"").ok()?;
    (r.status == 200).then(|| r.json()["cluster"].clone())
}

fn version(server: &TlsServer, config: &Arc<ClientConfig>) -> Option<u64> {
    let r = https(server.client, config, "GET", "/api/topology/version", b"").ok()?;
    r.json()["version"].as_u64()
}

/// The next SSE events from `stream` until one completes `version`.
fn events_through(stream: &mut TlsStream, version: u64, limit: Duration) -> Vec<SseEvent> {
    let deadline = Instant::now() + limit;
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        let n = stream.read(&mut buf).expect("the event stream stays open");
        assert!(n > 0, "the event stream ended early: {events:?}");
        decoder.feed(&buf[..n]).expect("a well-formed event stream");
        assert_eq!(decoder.status(), Some(200));
        while let Some(event) = decoder.next_event().expect("a well-formed event") {
            let done = event.completed_version().is_some_and(|v| v >= version);
            events.push(event);
            if done {
                return events;
            }
        }
    }
    panic!("no event for version {version} within {limit:?}: {events:?}");
}

/// What a peer port makes of a client presenting `config`'s certificate: an HTTP
/// answer (any status: the body is junk) or nothing at all.
fn peer_answers(peer: SocketAddr, config: &Arc<ClientConfig>) -> bool {
    let exchange = || -> io::Result<Response> {
        let mut stream = connect(peer, config)?;
        send_request(&mut stream, "POST", "/raft/vote", b"\xff\xff")?;
        let mut data = Vec::new();
        stream.read_to_end(&mut data)?;
        parse_response(&data)
    };
    exchange().is_ok()
}

#[test]
fn a_cluster_with_peer_mtls_serves_https_forwards_writes_and_refuses_foreign_peers() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let ca = Ca::new(dir, "cluster-ca");
    let config = config_file(dir);
    let peers: Vec<(u64, SocketAddr)> = (1..=3).map(|id| (id, free_addr())).collect();
    let members = initial_cluster(peers.iter().copied());
    let servers: Vec<TlsServer> = peers
        .iter()
        .map(|(id, peer)| {
            let me = ca.issue(&format!("node{id}"));
            let mut args = path_args(&[
                ("--config", &config),
                ("--tls-cert", &me.cert_file),
                ("--tls-key", &me.key_file),
                ("--peer-tls-cert", &me.cert_file),
                ("--peer-tls-key", &me.key_file),
                ("--peer-tls-ca", &ca.cert_file),
            ]);
            args.extend(["--initial-cluster".to_string(), members.clone()]);
            spawn(*id, dir, *peer, &args)
        })
        .collect();
    let client = client_config(&ca.cert_file, None);

    // Raft runs over mutual TLS only: electing a leader proves the peers accept each other.
    let leader = wait_for(WAIT, "one leader named by all three over https", || {
        let seen: Vec<serde_json::Value> = servers
            .iter()
            .map(|s| status(s, &client))
            .collect::<Option<_>>()?;
        let leader = seen[0]["leader"].as_u64()?;
        seen.iter()
            .all(|s| s["leader"].as_u64() == Some(leader))
            .then_some(leader)
    });
    let follower = servers.iter().find(|s| s.id != leader).expect("a follower");
    let start = version(follower, &client).expect("a version over https");

    // An event stream over https on the follower, opened before the write.
    let mut events = connect(follower.client, &client).expect("connect");
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    send_request(&mut events, "GET", &path, b"").expect("subscribe");

    // A write over https on a follower is forwarded to the leader over the peer port.
    let written = https(
        follower.client,
        &client,
        "PUT",
        "/api/topology/nodes/tls-node",
        br#"{"address":"127.0.0.1:7000"}"#,
    )
    .expect("the follower answers over https");
    assert_eq!(written.status, 200, "{}", written.text());
    let written = written.json()["version"].as_u64().expect("a version");
    assert!(written > start);
    for server in &servers {
        wait_for(WAIT, &format!("node {} replicates", server.id), || {
            version(server, &client).filter(|v| *v >= written)
        });
    }
    let streamed = events_through(&mut events, written, WAIT);
    assert!(
        streamed
            .iter()
            .any(|e| e.completed_version() == Some(written) && e.data.contains("tls-node")),
        "the stream over https delivers the write: {streamed:?}"
    );

    // The peer port: a certificate of the cluster CA gets an HTTP answer; one from
    // another CA, or none, gets no answer at all.
    let peer = servers[0].peer;
    let insider = ca.issue("insider");
    assert!(peer_answers(
        peer,
        &client_config(&ca.cert_file, Some(&insider))
    ));
    let rogue_ca = Ca::new(dir, "rogue-ca");
    let rogue = rogue_ca.issue("rogue");
    assert!(!peer_answers(
        peer,
        &client_config(&ca.cert_file, Some(&rogue))
    ));
    assert!(!peer_answers(peer, &client));

    // Plain HTTP to either TLS port is answered with a 400 that says what to do.
    for port in [follower.client, peer] {
        let r = raw_exchange_within(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", WAIT)
            .expect("an answer in plain HTTP");
        assert_eq!(r.status, 400);
        assert!(r.text().contains("https://"), "{}", r.text());
    }

    // The C example routes keys against the cluster over https://, trusting its CA,
    // and refuses the cluster when given another CA.
    let shard = br#"{"shardId":"s1","keyRange":{"start":"0000000000000000","end":""},"primaryNode":"tls-node"}"#;
    let r = https(
        follower.client,
        &client,
        "POST",
        "/api/topology/shards",
        shard,
    )
    .expect("shard");
    assert_eq!(r.status, 200, "{}", r.text());
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("https://{}", s.client))
        .collect();
    let routed = route_example(dir, &urls.join(","), &ca.cert_file);
    let text = String::from_utf8_lossy(&routed.stdout);
    assert!(
        routed.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&routed.stderr)
    );
    assert!(text.contains("user:1 -> s1"), "{text}");
    let refused = route_example(dir, &urls.join(","), &rogue_ca.cert_file);
    assert!(
        !refused.status.success(),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(servers.iter().all(|s| s.process.is_running()));
}

/// Runs `bindings/examples/route.c` (compiled into `dir`) on `servers` with `--cacert`.
fn route_example(dir: &Path, servers: &str, ca_file: &Path) -> std::process::Output {
    use crate::client::native::{compile, Lang};
    let program = compile(Lang::C, "bindings/examples/route.c", false, dir);
    std::process::Command::new(&program)
        .args(["-w", "1", "--cacert"])
        .arg(ca_file)
        .args([servers, "user:1"])
        .output()
        .expect("the example runs")
}

/// A server in `dir` with certificate `server_id` whose client port requires client
/// certificates signed by `ca`; returns once it answers `client` over https.
fn start_requiring_client_certs(
    dir: &Path,
    ca: &Ca,
    server_id: &Identity,
    client: &Identity,
) -> TlsServer {
    let config = config_file(dir);
    let args = path_args(&[
        ("--config", &config),
        ("--tls-cert", &server_id.cert_file),
        ("--tls-key", &server_id.key_file),
        ("--tls-client-ca", &ca.cert_file),
    ]);
    let mut server = spawn(1, dir, free_addr(), &args);
    let with_cert = client_config(&ca.cert_file, Some(client));
    let addr = server.client;
    server
        .process
        .wait_until(WAIT, "/readyz answers 200 over https", || {
            https(addr, &with_cert, "GET", "/readyz", b"").is_ok_and(|r| r.status == 200)
        });
    server
}

#[test]
fn client_certificates_are_required_when_configured_and_stalled_handshakes_are_cut_off() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let ca = Ca::new(dir, "ca");
    let server_id = ca.issue("server");
    let server = start_requiring_client_certs(dir, &ca, &server_id, &ca.issue("client"));
    let addr = server.client;
    let without_cert = client_config(&ca.cert_file, None);
    assert!(https(addr, &without_cert, "GET", "/readyz", b"").is_err());
    let foreign = Ca::new(dir, "foreign");
    let foreign_cert = client_config(&ca.cert_file, Some(&foreign.issue("stranger")));
    assert!(https(addr, &foreign_cert, "GET", "/readyz", b"").is_err());

    // A client that connects and never handshakes (nothing sent, or half a record) is
    // disconnected after the keep-alive timeout (1 s here), not held open.
    for opening in [&b""[..], &b"\x16\x03\x01"[..]] {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        tcp.write_all(opening).expect("write");
        let started = Instant::now();
        let mut rest = Vec::new();
        let outcome = tcp.read_to_end(&mut rest);
        assert!(
            outcome.is_ok() || outcome.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "the server closed the socket"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "cut off after {:?}",
            started.elapsed()
        );
    }
    assert!(server.process.is_running());
}

/// `(reloaded, failed)` credential reloads, over https trusting `config`'s CA.
fn reloads_over_https(addr: SocketAddr, config: &Arc<ClientConfig>) -> Option<(u64, u64)> {
    let r = https(addr, config, "GET", "/metrics", b"").ok()?;
    Some(crate::reload::reload_counts(&r.text()))
}

#[test]
fn a_client_port_certificate_is_swapped_under_a_running_server() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let (first_ca, next_ca) = (Ca::new(dir, "first-ca"), Ca::new(dir, "next-ca"));
    let served = first_ca.issue("served");
    let args = path_args(&[
        ("--config", &config_file(dir)),
        ("--tls-cert", &served.cert_file),
        ("--tls-key", &served.key_file),
    ]);
    let mut server = spawn(1, dir, free_addr(), &args);
    let addr = server.client;
    let (trusts_first, trusts_next) = (
        client_config(&first_ca.cert_file, None),
        client_config(&next_ca.cert_file, None),
    );
    server
        .process
        .wait_until(WAIT, "/readyz answers 200 over https", || {
            https(addr, &trusts_first, "GET", "/readyz", b"").is_ok_and(|r| r.status == 200)
        });
    assert!(https(addr, &trusts_next, "GET", "/readyz", b"").is_err());

    // The files are replaced in place (as a certificate renewal does), then SIGHUP.
    let next = next_ca.issue("next");
    std::fs::copy(&next.cert_file, &served.cert_file).expect("new certificate");
    std::fs::copy(&next.key_file, &served.key_file).expect("new key");
    server.process.signal_reload();
    let counts = wait_for(WAIT, "the new certificate is served", || {
        reloads_over_https(addr, &trusts_next)
    });
    assert_eq!(counts, (1, 0));
    let r = https(addr, &trusts_next, "GET", "/readyz", b"").expect("new handshakes");
    assert_eq!(r.status, 200);
    assert!(
        https(addr, &trusts_first, "GET", "/readyz", b"").is_err(),
        "the old certificate is no longer presented"
    );

    // A certificate that does not go with the key keeps the one in force.
    std::fs::copy(&first_ca.issue("mismatch").cert_file, &served.cert_file).expect("copy");
    server.process.signal_reload();
    wait_for(WAIT, "the failed reload is counted", || {
        reloads_over_https(addr, &trusts_next).filter(|c| *c == (1, 1))
    });
    let r = https(addr, &trusts_next, "GET", "/readyz", b"").expect("still served");
    assert_eq!(r.status, 200);
    assert!(server.process.is_running());
}

#[test]
fn unusable_certificate_files_stop_the_server_naming_the_key() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let ca = Ca::new(dir, "ca");
    let a = ca.issue("a");
    let b = ca.issue("b");
    let missing = dir.join("missing.crt");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            path_args(&[("--tls-cert", &a.cert_file), ("--tls-key", &b.key_file)]),
            "tls.key_file",
        ),
        (
            path_args(&[("--tls-cert", &missing), ("--tls-key", &a.key_file)]),
            "tls.cert_file",
        ),
        (
            path_args(&[("--tls-cert", &a.key_file), ("--tls-key", &a.key_file)]),
            "tls.cert_file",
        ),
        (
            path_args(&[
                ("--peer-tls-cert", &a.cert_file),
                ("--peer-tls-key", &a.key_file),
            ]),
            "peer_tls.ca_file",
        ),
        (
            path_args(&[
                ("--peer-tls-cert", &a.cert_file),
                ("--peer-tls-key", &a.key_file),
                ("--peer-tls-ca", &a.key_file),
            ]),
            "peer_tls.ca_file",
        ),
    ];
    for (i, (args, key)) in cases.iter().enumerate() {
        let id = i as u64 + 1;
        let mut server = spawn(id, dir, free_addr(), args);
        let status = wait_for(WAIT, "the server exits", || server.process.exited());
        let log = std::fs::read_to_string(dir.join(format!("node{id}.log"))).expect("log");
        assert_eq!(status.code(), Some(2), "{args:?}: {log}");
        assert!(log.contains(key), "{args:?} names {key}: {log}");
    }
}

#[test]
fn ctl_speaks_https_with_cacert_and_presents_its_client_certificate() {
    use crate::ctl::ctl;

    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let ca = Ca::new(dir, "ca");
    let server_id = ca.issue("server");
    let client_id = ca.issue("operator");
    let server = start_requiring_client_certs(dir, &ca, &server_id, &client_id);
    let addr = server.client;
    let eps = format!("https://{addr}");
    let tls = path_args(&[
        ("--cacert", &ca.cert_file),
        ("--cert", &client_id.cert_file),
        ("--key", &client_id.key_file),
    ]);
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let out = ctl(&eps, &all);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "ctl {extra:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };

    let status: serde_json::Value = serde_json::from_str(&run(&["-o", "json", "status"])).unwrap();
    assert_eq!(status["cluster"]["leader"], 1, "{status}");
    run(&[
        "bootstrap",
        "--nodes",
        "d1=127.0.0.1:9001",
        "--shards",
        "2",
        "--replication",
        "1",
    ]);
    let backup = dir.join("backup.ckv").display().to_string();
    let saved: serde_json::Value =
        serde_json::from_str(&run(&["-o", "json", "snapshot", "save", &backup])).unwrap();
    assert_eq!(saved["shards"], 2, "{saved}");

    // Without what the server needs, a one-line reason and the documented code.
    let refused = |args: &[String], code: i32, says: &str| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push("status");
        let out = ctl(&eps, &all);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        stderr
    };
    let one_line = |stderr: String| assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    one_line(refused(&[], 2, "needs --cacert"));
    one_line(refused(
        &path_args(&[("--cacert", &ca.cert_file)]),
        3,
        "no server answered",
    ));
    let foreign = Ca::new(dir, "foreign");
    one_line(refused(
        &path_args(&[
            ("--cacert", &foreign.cert_file),
            ("--cert", &client_id.cert_file),
            ("--key", &client_id.key_file),
        ]),
        3,
        "certificate",
    ));
    one_line(refused(
        &path_args(&[("--cacert", &server_id.key_file)]),
        2,
        "--cacert",
    ));
    // clap's own usage error (several lines with the usage).
    let cert_only = path_args(&[
        ("--cacert", &ca.cert_file),
        ("--cert", &client_id.cert_file),
    ]);
    refused(&cert_only, 2, "--key");
}
