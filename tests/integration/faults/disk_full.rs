//! Disk full on one server: its data directory is a small tmpfs that a filler file
//! fills. Its Raft stops at the first log write that fails: `/readyz` turns 503
//! naming why and it exits with status 3 after the grace period (no acknowledged
//! write is lost: it acknowledged nothing it had not fsync'd); the two others go on
//! taking writes. Once space is freed and it is restarted, it catches up and holds
//! every acknowledged write.
//!
//! Needs root (mount); skipped, loudly, otherwise.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use concord_testkit::http::request_within;

use crate::cluster_support::{test_config, Cluster};
use crate::fail_loudly::bulky_node;

use super::shims::Tmpfs;
use super::{assert_has_all, write_acked, WAIT};

/// The server whose disk fills.
const FULL: u64 = 3;

/// Writes zeros to `path` until the file system refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler file");
    let mut written = 0;
    for block in [1 << 20, 4096, 512] {
        let chunk = vec![0u8; block];
        // Bounded: the tmpfs is a few MB.
        for _ in 0..10_000 {
            if file.write_all(&chunk).is_err() {
                break;
            }
            written += block as u64;
        }
    }
    let _ = file.sync_all();
    written
}

#[test]
fn a_server_whose_disk_fills_stops_loudly_and_rejoins_once_space_is_freed() {
    let mount_parent = tempfile::tempdir().expect("temp dir");
    let Some(tmpfs) = Tmpfs::mount(&mount_parent.path().join("disk"), "16m") else {
        return;
    };
    let yaml = test_config("  fatal_exit_grace: 3s\n");
    let mut cluster = Cluster::start_prepared(3, false, &yaml, |id, data_dir| {
        if id == FULL {
            std::os::unix::fs::symlink(&tmpfs.dir, data_dir).expect("data dir on the tmpfs");
        }
        Vec::new()
    });
    let mut acked = write_acked(&cluster, "before", 10);
    let filler = tmpfs.dir.join("filler");
    let filled = fill(&filler);
    eprintln!("filled the tmpfs of server {FULL} with {filled} bytes");

    // Bulky writes through another server until server FULL says its Raft stopped.
    let other = cluster.others(FULL)[0];
    let full_client = cluster.node(FULL).client;
    let mut stopped_reason = None;
    for i in 0..500 {
        if let Some((200, text)) = bulky_node(cluster.node(other).client, i) {
            let version = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|j| j["version"].as_u64())
                .expect("a write answers its version");
            acked.insert(format!("bulky-{i}"), version);
        }
        let readyz = request_within(
            full_client,
            "GET",
            "/readyz",
            &[],
            b"",
            Duration::from_secs(2),
        );
        if let Some(r) = readyz
            .ok()
            .filter(|r| r.status == 503 && r.text().contains("raft stopped"))
        {
            stopped_reason = Some(r.text());
            break;
        }
    }
    let reason = stopped_reason.expect("server on the full disk never said its raft stopped");
    eprintln!("server {FULL}: {}", reason.trim());
    // A write sent to it now is refused, saying why.
    if let Some((status, text)) = bulky_node(full_client, 99_999) {
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("raft has stopped"), "{text}");
    }

    let status = cluster.node_mut(FULL).wait_exit(WAIT, "its raft stopped");
    assert_eq!(status.code(), Some(3), "exit status {status}");

    // The others go on.
    acked.extend(write_acked(&cluster, "meanwhile", 5));

    // Space again: it restarts on its data directory, catches up, and has it all.
    std::fs::remove_file(&filler).expect("remove the filler");
    cluster.restart(FULL);
    let last = acked.values().copied().max().expect("writes");
    cluster.converged(&cluster.ids(), last, WAIT);
    assert_has_all(&cluster, FULL, &acked);
}
