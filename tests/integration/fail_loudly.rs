//! A server whose Raft stops (here: its log cannot grow, as on a full disk) must not
//! linger as "ready": `/readyz` turns 503 naming why, writes are refused, and the
//! process exits non-zero after `raft.fatal_exit_grace`, for its supervisor to
//! restart it.
//!
//! The storage error is real: the server runs under a file-size limit (`ulimit -f`,
//! with SIGXFSZ ignored, so a write past it fails with EFBIG the way one on a full
//! disk fails with ENOSPC), which needs no privileges.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use concord_testkit::http::request_within;
use concord_testkit::process::{answers_200, serve_args};
use concord_testkit::{eventually, free_addr, server_binary, Stderr, TopoProcess};

/// The grace period the server is configured with.
const GRACE: Duration = Duration::from_secs(2);

/// How large a file the server may write, in 512-byte blocks (`ulimit -f` of sh).
const FILE_SIZE_BLOCKS: u32 = 128;

/// A single server limited to files of [`FILE_SIZE_BLOCKS`], logging to `log`.
fn limited_server(dir: &Path, client: SocketAddr, log: &Path) -> TopoProcess {
    let config = dir.join("concord.yaml");
    let yaml = format!(
        "raft:\n  fatal_exit_grace: {}ms\ntopology:\n  health_check:\n    enabled: false\n",
        GRACE.as_millis()
    );
    std::fs::write(&config, yaml).expect("config");
    let mut args = vec![
        "-c".to_string(),
        format!("trap '' XFSZ; ulimit -f {FILE_SIZE_BLOCKS} && exec \"$0\" \"$@\""),
        server_binary().display().to_string(),
    ];
    args.extend(serve_args(1, client, free_addr(), &dir.join("data"), 2));
    args.extend(["--config".to_string(), config.display().to_string()]);
    TopoProcess::new("/bin/sh".into(), args).stderr(Stderr::File(log.to_path_buf()))
}

/// A data node with a few kilobytes of labels: each write grows the log by that much.
pub fn bulky_node(client: SocketAddr, i: usize) -> Option<(u16, String)> {
    let labels: Vec<String> = (0..16)
        .map(|l| format!(r#""label-{l}":"{}""#, "x".repeat(200)))
        .collect();
    let body = format!(
        r#"{{"address":"127.0.0.1:{}","labels":{{{}}}}}"#,
        10000 + i,
        labels.join(",")
    );
    let r = request_within(
        client,
        "PUT",
        &format!("/api/topology/nodes/bulky-{i}"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .ok()?;
    Some((r.status, r.text()))
}

#[test]
fn a_server_whose_raft_stops_turns_unready_and_exits_non_zero() {
    let temp = tempfile::tempdir().unwrap();
    let client = free_addr();
    let log = temp.path().join("server.log");
    let mut server = limited_server(temp.path(), client, &log);
    server.spawn();
    server.wait_ready(client, Duration::from_secs(30));

    // Write until the log cannot grow any more.
    let mut refused = None;
    for i in 0..2000 {
        match bulky_node(client, i) {
            Some((200, _)) => continue,
            other => {
                refused = Some((i, other));
                break;
            }
        }
    }
    let (writes, answer) = refused.expect("the file-size limit was never reached");
    let failed_at = Instant::now();
    eprintln!("write {writes} refused: {answer:?}");
    assert!(writes > 0, "no write succeeded under the limit: {answer:?}");

    // Not ready at once, naming why.
    let readyz = request_within(client, "GET", "/readyz", &[], b"", Duration::from_secs(1))
        .expect("the server still answers during its grace period");
    assert_eq!(readyz.status, 503, "{}", readyz.text());
    assert!(readyz.text().contains("raft stopped"), "{}", readyz.text());
    // Writes are refused, naming why.
    let (status, text) = bulky_node(client, 99_999).expect("a write is answered");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("raft has stopped"), "{text}");

    // And the process exits non-zero within the grace period (plus slack for a loaded machine).
    let deadline = failed_at + GRACE + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = server.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {:?} after raft stopped",
            failed_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "exit status {status}");
    assert!(
        failed_at.elapsed() + Duration::from_millis(200) >= GRACE,
        "exited after {:?}, before the grace period",
        failed_at.elapsed()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("raft stopped"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line saying why; log:\n{text}");
}

#[test]
fn a_server_that_cannot_become_ready_says_why_in_its_log() {
    // A server waiting to be added to a cluster that never adds it hears no leader.
    let temp = tempfile::tempdir().unwrap();
    let client = free_addr();
    let log = temp.path().join("server.log");
    let mut args = serve_args(7, client, free_addr(), &temp.path().join("data"), 1);
    args.push("--join".into());
    // A joining server needs the cluster's peer secret to start at all.
    let mut server = TopoProcess::new(server_binary(), args)
        .env("CONCORD_PEER_SECRET", crate::cluster_support::PEER_SECRET)
        .stderr(Stderr::File(log.clone()));
    server.spawn();
    server.wait_until(Duration::from_secs(30), "/healthz answers 200", || {
        answers_200(client, "/healthz")
    });
    let readyz = request_within(client, "GET", "/readyz", &[], b"", Duration::from_secs(5))
        .expect("/readyz answers");
    assert_eq!(readyz.status, 503);
    assert!(
        readyz.text().contains("no Raft leader heard"),
        "{}",
        readyz.text()
    );
    let said_why = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("not ready: no Raft leader heard")
    });
    assert!(
        said_why,
        "no log line saying why; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
