//! Pipelined requests on one connection against a real server. The client port sends
//! what one poll of a connection's task wrote in one go (`net::ready::Coalesced`), so
//! the answers to a pipelined batch leave together: every answer must still come,
//! whole and in order, with a write that waits on Raft among the reads; and a client
//! that pipelines without ever reading is held back by its socket, not buffered for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use concord_testkit::http::{parse_responses, Response};

use crate::support::Server;

/// One keep-alive request (the last of a batch says `Connection: close`).
fn request(addr: SocketAddr, method: &str, path: &str, body: &str, last: bool) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if last {
        head.push_str("Connection: close\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

/// Sends `batch` in one write and reads every answer until the server closes.
fn exchange(addr: SocketAddr, batch: &[u8]) -> Vec<Response> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(batch).expect("send the batch");
    let mut data = Vec::new();
    stream.read_to_end(&mut data).expect("read every answer");
    parse_responses(&data).expect("whole answers, back to back")
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn pipelined_requests_are_all_answered_whole_and_in_order() {
    let server = Server::start(&["--dev"]);
    let addr = server.client;
    const COUNT: usize = 120;
    const WRITE_AT: usize = 61;
    let mut batch = Vec::new();
    for i in 0..COUNT {
        let last = i == COUNT - 1;
        let one = match i % 4 {
            _ if i == WRITE_AT => request(
                addr,
                "PUT",
                "/api/topology/nodes/pipelined",
                r#"{"address":"127.0.0.1:7000"}"#,
                last,
            ),
            0 => request(addr, "GET", "/api/topology/snapshot", "", last),
            1 => request(addr, "GET", &format!("/no/such/route/{i}"), "", last),
            2 => request(addr, "GET", "/api/topology/nodes", "", last),
            _ => request(addr, "GET", "/api/topology/version", "", last),
        };
        batch.extend_from_slice(&one);
    }
    let answers = exchange(addr, &batch);
    assert_eq!(answers.len(), COUNT, "one answer per request");

    let before = json(&answers[3])["version"].as_u64().expect("a version");
    let mut written = None;
    for (i, answer) in answers.iter().enumerate() {
        if i == WRITE_AT {
            assert_eq!(answer.status, 200, "the write: {}", answer.text());
            written = Some(json(answer)["version"].as_u64().expect("its version"));
            continue;
        }
        match i % 4 {
            0 => {
                assert_eq!(answer.status, 200, "{i}: {}", answer.text());
                assert!(
                    json(answer)["snapshot"]["shardMap"].is_object(),
                    "{i}: a snapshot"
                );
            }
            1 => {
                assert_eq!(answer.status, 404, "{i}");
                assert!(
                    answer.text().contains(&format!("/no/such/route/{i}")),
                    "answer {i} is request {i}'s: {}",
                    answer.text()
                );
            }
            2 => assert!(json(answer)["nodes"].is_array(), "{i}: the nodes"),
            _ => {
                let version = json(answer)["version"].as_u64().expect("a version");
                let floor = if i > WRITE_AT {
                    written.unwrap()
                } else {
                    before
                };
                assert!(
                    version >= floor,
                    "{i}: version {version}, below {floor}: an answer older than one before it"
                );
            }
        }
    }
    assert!(written.unwrap() > before);
}

#[test]
fn a_client_that_pipelines_and_never_reads_is_held_back_not_buffered_for() {
    let server = Server::start(&["--dev"]);
    let addr = server.client;
    let rss_kib = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
    };
    let snapshot = server.get("/api/topology/snapshot");
    assert_eq!(snapshot.status, 200);
    let baseline = rss_kib();

    // 20,000 snapshots asked for (hundreds of MB of answers), none read.
    let one = request(addr, "GET", "/api/topology/snapshot", "", false);
    let asked = 20_000;
    assert!(
        (asked * snapshot.body.len()) as u64 > 200 << 20,
        "the answers asked for dwarf any sane buffer"
    );
    let mut greedy = TcpStream::connect(addr).expect("connect");
    greedy
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    for _ in 0..asked {
        // Once the server stops reading, the client's socket fills and this times out.
        if greedy.write_all(&one).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let held = rss_kib().saturating_sub(baseline);
    assert!(
        held < 24 * 1024,
        "the server holds {held} KiB more for a client that never reads"
    );
    let other = server.get("/api/topology/version");
    assert_eq!(other.status, 200, "everyone else is still served");
    drop(greedy);
}
