//! A torn write at the end of a server's Raft log (the write in flight when the
//! machine died), made by hand after SIGKILL.
//!
//! What the server does, on raft-log's replay at start:
//! - an incomplete last record (a partial record appended, or the last record cut
//!   short) was never completely written, so never fsync'd, so never acknowledged:
//!   it is cut off and the server starts, catches up from the leader and serves;
//! - a complete record that does not decode (garbage that is no prefix of a
//!   record) is damage, not a torn write: the server refuses to start with one line
//!   naming the log directory and exits 1, rather than guess which entries it may
//!   drop (they may be ones it acknowledged).
//!
//! In every case the cluster keeps every acknowledged write and goes on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster_support::Cluster;

use super::{assert_has_all, write_acked};

const WAIT: Duration = Duration::from_secs(20);

/// The last (open) chunk file of the Raft log under `data_dir`.
fn last_wal_file(data_dir: &Path) -> PathBuf {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "wal") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(data_dir, &mut found);
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no .wal file under {}", data_dir.display()))
}

/// Kills server `victim`, damages the tail of its log with `damage`, writes more
/// through the others, and restarts it: it must come back, catch up and hold every
/// acknowledged write.
fn torn_tail_is_cut_and_the_server_rejoins(victim_is_leader: bool, damage: fn(&Path)) {
    let mut cluster = Cluster::start(3, false, "");
    let mut acked = write_acked(&cluster, "before", 20);
    let leader = cluster.leader(WAIT);
    let victim = if victim_is_leader {
        leader
    } else {
        cluster.others(leader)[0]
    };
    // A torn write is one that was in flight, never fsync'd, never acknowledged. Cutting
    // an entry the victim had acknowledged is not that: it is a disk losing durable
    // data (openraft's leader then stops on the follower's log reversion). So the
    // victim first applies every write and its log stops growing: its last record is
    // then the commit hint written after the last entry, which nothing depends on.
    let last_before = acked.values().copied().max().expect("writes");
    cluster.converged(&cluster.ids(), last_before, WAIT);
    log_settled(&last_wal_file(&cluster.data_dir(victim)));
    cluster.kill(victim);
    let wal = last_wal_file(&cluster.data_dir(victim));
    let size = std::fs::metadata(&wal).expect("wal file").len();
    damage(&wal);
    eprintln!(
        "server {victim}: {} went from {size} to {} bytes",
        wal.display(),
        std::fs::metadata(&wal).expect("wal file").len()
    );
    acked.extend(write_acked(&cluster, "during", 5));

    cluster.restart(victim);
    let last = acked.values().copied().max().expect("writes");
    cluster.converged(&cluster.ids(), last, WAIT);
    assert_has_all(&cluster, victim, &acked);
    // And it takes part again: a write with every server up reaches it too.
    let after = write_acked(&cluster, "after", 1);
    cluster.converged(&cluster.ids(), *after.values().next().unwrap(), WAIT);
    assert_has_all(&cluster, victim, &after);
}

/// Waits until `wal` has kept its size for 300 ms (nothing more is being written).
fn log_settled(wal: &Path) {
    let size = || std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    let deadline = std::time::Instant::now() + WAIT;
    let (mut last, mut since) = (size(), std::time::Instant::now());
    while since.elapsed() < Duration::from_millis(300) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} keeps growing",
            wal.display()
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = size();
        if now != last {
            (last, since) = (now, std::time::Instant::now());
        }
    }
}

fn append(wal: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(wal)
        .expect("open wal file");
    file.write_all(bytes).expect("append to wal file");
}

/// The first bytes of an Append record (type 1, a 40-byte log id announced, 5 of
/// them written): what a write cut short by a crash leaves.
fn append_partial_record(wal: &Path) {
    append(
        wal,
        &[0, 0, 0, 1, 0, 0, 0, 40, 0xde, 0xad, 0xbe, 0xef, 0x01],
    );
}

/// The last record loses its last 3 bytes (part of its checksum).
fn cut_last_record(wal: &Path) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(wal)
        .expect("open wal file");
    let len = file.metadata().expect("wal size").len();
    assert!(len > 3, "{} holds no record", wal.display());
    file.set_len(len - 3).expect("truncate wal file");
}

#[test]
fn a_partial_record_after_the_leaders_log_is_cut_and_it_rejoins() {
    torn_tail_is_cut_and_the_server_rejoins(true, append_partial_record);
}

#[test]
fn a_followers_last_record_cut_short_is_dropped_and_it_rejoins() {
    torn_tail_is_cut_and_the_server_rejoins(false, cut_last_record);
}

#[test]
fn a_damaged_record_at_the_tail_is_refused_with_one_line_and_the_cluster_goes_on() {
    let mut cluster = Cluster::start(3, false, "");
    let mut acked = write_acked(&cluster, "before", 10);
    let leader = cluster.leader(WAIT);
    let victim = cluster.others(leader)[0];
    cluster.kill(victim);
    // A complete record of a type raft-log never writes: no torn write looks like this.
    append(
        &last_wal_file(&cluster.data_dir(victim)),
        &[
            0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
    );
    cluster.spawn_again(victim);
    let status = cluster
        .node_mut(victim)
        .wait_exit(WAIT, "its log was damaged");
    assert_eq!(status.code(), Some(1), "exit status {status}");
    let log = cluster.node(victim).log();
    let reasons: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("concord-topo:"))
        .collect();
    assert_eq!(reasons.len(), 1, "one line saying why; log:\n{log}");
    eprintln!("server {victim} refused to start: {}", reasons[0]);
    let data_dir = cluster.data_dir(victim).display().to_string();
    assert!(
        reasons[0].contains("raft log") && reasons[0].contains(&data_dir),
        "the line names the raft log in {data_dir}: {}",
        reasons[0]
    );
    // The two others go on with every acknowledged write.
    acked.extend(write_acked(&cluster, "without", 5));
    let others = cluster.others(victim);
    let last = acked.values().copied().max().expect("writes");
    cluster.converged(&others, last, WAIT);
    for id in others {
        assert_has_all(&cluster, id, &acked);
    }
}
