//! The client over `https://`: against the scripted fake servers of `support`
//! behind rustls (certificates made per test by `support::pki`), it follows
//! events, refuses a server its CA did not sign, presents a client certificate
//! when configured, names bad TLS files, and keeps the 100 ms idle wake-ups: read
//! timeouts pass through TLS without losing a partly received record. A C program
//! does the same through the C ABI.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use concordkv_topology::http::{parse_head, Conn, Endpoint, Read};
use concordkv_topology::{ClientOptions, RouteError, TopologyClient, WaitError};
use rustls::{ServerConnection, StreamOwned};
use support::pki::Pki;
use support::*;

/// A fake that serves `history(2)`: the snapshot of v1, then v2 and v3 as SSE.
fn serving_history(
    pki: &Pki,
    require_client_cert: bool,
) -> (Fake, Vec<concord_model::TopologyState>) {
    let (states, sets) = history(2);
    let s1 = states[0].clone();
    let fake = Fake::start_tls(
        pki.server_config(require_client_cert),
        move |req, stream, stop| {
            if req.target.starts_with("/api/topology/snapshot") {
                json_response(stream, 200, &snapshot_body(&s1));
            } else {
                let blocks = format!("{}{}", sse_set(&sets[0]), sse_set(&sets[1]));
                sse_response(stream, &blocks, stop);
            }
        },
    );
    (fake, states)
}

fn https_options(fake: &Fake, ca_file: &Path) -> ClientOptions {
    let mut o = options(&[&format!("https://{}", fake.addr)]);
    o.ca_file = Some(ca_file.to_path_buf());
    o
}

#[test]
fn the_client_follows_events_over_https() {
    let pki = Pki::new();
    let (fake, states) = serving_history(&pki, false);
    let client = TopologyClient::new(https_options(&fake, &pki.ca)).unwrap();
    assert_eq!(client.wait_for_version(3, WAIT), Ok(3));
    let stats = client.stats();
    assert_eq!(stats.snapshots_loaded, 1);
    assert_eq!(stats.versions_applied, 2);
    assert_eq!(stats.streams_opened, 1);
    assert!(stats.streaming);
    for key in [&b"a"[..], b"user:1", b"zzz"] {
        let r = client.route(key).unwrap();
        assert_eq!(r.shard_id(), states[2].shard_for_key(key).unwrap().shard_id);
    }
    let seen = fake.seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.client_certificate.is_none()));
}

#[test]
fn a_dns_name_is_verified_against_the_certificate() {
    let pki = Pki::new();
    let (fake, _) = serving_history(&pki, false);
    let port = fake.addr.rsplit_once(':').unwrap().1;
    let mut o = options(&[&format!("https://localhost:{port}")]);
    o.ca_file = Some(pki.ca.clone());
    let client = TopologyClient::new(o).unwrap();
    assert_eq!(client.wait_for_version(3, WAIT), Ok(3));
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let (fake, _) = serving_history(&pki, false);
    let client = TopologyClient::new(https_options(&fake, &pki.other_ca)).unwrap();
    let waited = client.wait_ready(Duration::from_secs(1));
    let Err(WaitError::Unreachable { last_error }) = waited else {
        panic!("a server signed by another CA was accepted: {waited:?}");
    };
    assert!(last_error.contains("certificate"), "{last_error}");
    assert!(last_error.contains("ca_file"), "{last_error}");
    assert!(matches!(client.route(b"k"), Err(RouteError::NotReady)));
    assert!(client.stats().failovers >= 1);
    assert!(client.last_error().unwrap().contains("UnknownIssuer"));
    assert!(
        fake.targets().is_empty(),
        "no request may be sent to an unverified server"
    );
}

#[test]
fn a_client_certificate_is_presented_when_configured() {
    let pki = Pki::new();
    let (fake, _) = serving_history(&pki, true);
    let mut o = https_options(&fake, &pki.ca);
    o.client_cert_file = Some(pki.client_cert.clone());
    o.client_key_file = Some(pki.client_key.clone());
    let client = TopologyClient::new(o).unwrap();
    assert_eq!(client.wait_for_version(3, WAIT), Ok(3));
    let seen = fake.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let presented = pki.client_cert_der();
    assert!(seen
        .iter()
        .all(|s| s.client_certificate.as_deref() == Some(&presented[..])));
    drop(client);

    // Without one, this server ends every session before a request gets through.
    let client = TopologyClient::new(https_options(&fake, &pki.ca)).unwrap();
    assert!(client.wait_ready(Duration::from_secs(1)).is_err());
    let error = client.last_error().unwrap();
    assert!(error.contains("client_cert_file"), "{error}");
}

#[test]
fn tls_options_name_the_bad_file_and_what_is_wrong() {
    let pki = Pki::new();
    let server = "https://127.0.0.1:1";
    let error = |o: ClientOptions| TopologyClient::new(o).err().unwrap().to_string();

    let e = error(ClientOptions::new([server]));
    assert!(e.contains(server) && e.contains("ca_file"), "{e}");

    let missing = pki.path("missing.pem");
    let mut o = ClientOptions::new([server]);
    o.ca_file = Some(missing.clone());
    let e = error(o);
    assert!(
        e.contains("ca_file") && e.contains(&*missing.to_string_lossy()),
        "{e}"
    );
    assert!(e.contains("cannot be read"), "{e}");

    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let mut o = ClientOptions::new([server]);
    o.ca_file = Some(garbage.clone());
    let e = error(o);
    assert!(
        e.contains(&*garbage.to_string_lossy()) && e.contains("no PEM certificate"),
        "{e}"
    );

    let mut o = ClientOptions::new([server]);
    o.ca_file = Some(pki.ca.clone());
    o.client_cert_file = Some(pki.client_cert.clone());
    let e = error(o.clone());
    assert!(e.contains("client_key_file"), "{e}");

    o.client_key_file = Some(pki.client_cert.clone());
    let e = error(o.clone());
    assert!(
        e.contains("client_key_file") && e.contains("private key"),
        "{e}"
    );

    // The server's key with the client's certificate.
    o.client_key_file = Some(pki.server_key.clone());
    let e = error(o.clone());
    assert!(
        e.contains("client_key_file") && e.contains("client_cert_file"),
        "{e}"
    );

    o.client_key_file = Some(pki.client_key.clone());
    assert!(TopologyClient::new(o).is_ok());
}

/// A TLS server of one connection that answers the first request with
/// `response`, handing the TLS records to the socket in two parts `pause` apart:
/// the cut lies inside a record.
fn split_record_server(pki: &Pki, response: &'static [u8], pause: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = pki.server_config(false);
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
        concordkv_topology::testkit::read_request_head(&mut tls).unwrap();
        tls.conn.writer().write_all(response).unwrap();
        let mut records = Vec::new();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut records).unwrap();
        }
        let (first, rest) = records.split_at(records.len() / 2);
        tls.sock.write_all(first).unwrap();
        std::thread::sleep(pause);
        tls.sock.write_all(rest).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    addr
}

#[test]
fn read_timeouts_pass_through_tls_and_a_split_record_survives_them() {
    let pki = Pki::new();
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let pause = Duration::from_millis(600);
    let addr = split_record_server(&pki, response, pause);
    let ep = Endpoint::parse(&format!("https://{addr}")).unwrap();
    let config = pki.client_config();
    let mut conn = Conn::connect(&ep, Duration::from_secs(5), Some(&config)).unwrap();
    conn.send_get(&ep, "/", &[]).unwrap();

    let started = Instant::now();
    let mut idle = 0;
    let mut wakeups = Vec::new();
    while conn.pending().len() < response.len() {
        let before = Instant::now();
        match conn.fill().unwrap() {
            Read::Idle => idle += 1,
            Read::Data => {}
            Read::Eof => panic!("the connection ended early"),
        }
        wakeups.push(before.elapsed());
        assert!(started.elapsed() < Duration::from_secs(5), "no response");
    }
    // Half a record cannot be decrypted, so nothing arrives until the rest does;
    // meanwhile the reads return as idle, each within a few ticks.
    assert!(idle >= 2, "{idle} idle wake-ups in {wakeups:?}");
    assert!(
        wakeups.iter().all(|w| *w < Duration::from_millis(450)),
        "{wakeups:?}"
    );
    assert!(started.elapsed() >= pause - Duration::from_millis(100));
    // The record's first half was kept across the timeouts: the bytes are intact.
    assert_eq!(conn.pending(), response);
    let (head, n) = parse_head(conn.pending(), |_, _| {}).unwrap().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(&conn.pending()[n..], b"hello");
}

/// Compiles a C program of the repository against the static library this test
/// binary was built with (cargo builds the crate's staticlib next to it).
fn compile_c(source: &str, out_dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let lib = deps.join("libconcordkv_topology.a");
    assert!(lib.exists(), "{} is missing", lib.display());
    let out = out_dir.join(Path::new(source).file_stem().unwrap());
    let result = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join(source))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .output()
        .expect("cc runs");
    assert!(
        result.status.success(),
        "cc failed on {source}:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Runs a program to its end; its standard output, after it exited with 0.
fn stdout_of_success(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn c_programs_set_the_ca_file_through_the_c_abi() {
    let pki = Pki::new();
    let (fake, states) = serving_history(&pki, false);
    let url = format!("https://{}", fake.addr);
    let shard = &states[2].shard_for_key(b"user:1").unwrap().shard_id;

    let program = compile_c("bindings/tests/c/tls_test.c", &pki.path(""));
    let text = stdout_of_success(
        Command::new(&program)
            .arg(&url)
            .arg(&pki.ca)
            .arg(&pki.other_ca)
            .arg(&pki.client_cert)
            .arg(&pki.client_key)
            .arg("user:1"),
    );
    assert!(
        text.contains("REFUSED ") && text.contains("certificate"),
        "{text}"
    );
    assert!(text.contains(&format!("ROUTE user:1 {shard} ")), "{text}");
    assert!(text.ends_with("DONE\n"), "{text}");

    // The example takes the CA file from --cacert or from CONCORD_CACERT.
    let example = compile_c("bindings/examples/route.c", &pki.path(""));
    for (args, env) in [
        (vec!["--cacert", pki.ca.to_str().unwrap()], None),
        (vec![], Some(pki.ca.to_str().unwrap())),
    ] {
        let mut cmd = Command::new(&example);
        cmd.args(["-w", "0"])
            .args(&args)
            .args([url.as_str(), "user:1"]);
        if let Some(ca) = env {
            cmd.env("CONCORD_CACERT", ca);
        }
        let text = stdout_of_success(&mut cmd);
        assert!(
            text.contains(&format!("user:1 -> {shard} (epoch")),
            "{text}"
        );
    }
}
