//! Backup and restore: `ctl snapshot save` on a live 3-server cluster, then the
//! disaster: every server killed and every data directory wiped; `concord-topo
//! restore` on each, start, and the new cluster serves the same version, configHash
//! and event history tail, and takes new writes after them. Damaged files are
//! refused by `restore` and `ctl snapshot inspect` alike, with nothing written.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use concord_testkit::process::initial_cluster;
use concord_testkit::server_binary;
use serde_json::Value;

use crate::cluster_support::{put_node, Cluster};
use crate::ctl::{ctl_code, ctl_json, endpoints};

const WAIT: Duration = Duration::from_secs(20);

/// The event history a server serves, from the start (`/api/topology/events`).
fn history(cluster: &Cluster, id: u64) -> Value {
    let r = cluster
        .node(id)
        .get("/api/topology/events?sinceVersion=0&limit=1000")
        .expect("events answer");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"].clone()
}

/// Runs `concord-topo restore ARGS...`: (exit code, stdout, stderr).
fn restore(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(server_binary())
        .arg("restore")
        .args(args)
        .output()
        .expect("run concord-topo restore");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A damaged copy of `good` at `path`.
fn damaged(good: &[u8], path: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = good.to_vec();
    damage(&mut bytes);
    std::fs::write(path, bytes).expect("write damaged copy");
    path.display().to_string()
}

#[test]
fn a_cluster_restored_from_a_backup_after_losing_every_server_serves_the_same_state() {
    let mut cluster = Cluster::start(3, false, "");
    let eps = endpoints(&cluster, &cluster.ids());
    ctl_code(
        &eps,
        &[
            "bootstrap",
            "--nodes",
            "d1=127.0.0.1:9001,d2=127.0.0.1:9002",
            "--shards",
            "4",
            "--replication",
            "2",
        ],
        0,
    );
    let mut version = 0;
    for name in ["d3", "d4", "d5"] {
        version = put_node(cluster.node(1).client, name, None).expect("write");
    }
    let (version, config_hash) = cluster.converged(&cluster.ids(), version, WAIT);

    let temp = tempfile::tempdir().expect("tempdir");
    let file = temp.path().join("topology.ckv");
    let file_arg = file.display().to_string();
    let saved = ctl_json(&eps, &["snapshot", "save", &file_arg]);
    assert_eq!(saved["version"], version, "{saved}");
    assert_eq!(saved["configHash"], config_hash.as_str(), "{saved}");
    assert_eq!(saved["nodes"], 5, "{saved}");
    let before = history(&cluster, 1);
    assert!(before.as_array().is_some_and(|e| !e.is_empty()), "{before}");

    // A backup tells what it holds, offline.
    let inspected = ctl_json(&eps, &["snapshot", "inspect", &file_arg]);
    assert_eq!(inspected, saved, "inspect reads back what save wrote");
    let table = ctl_code(&eps, &["snapshot", "inspect", &file_arg], 0);
    assert!(
        table.contains(&config_hash) && table.contains("ok"),
        "{table}"
    );

    // Damaged copies are refused by inspect and restore, and restore writes nothing.
    let good = std::fs::read(&file).expect("read backup");
    let bad = [
        (
            damaged(&good, &temp.path().join("magic.ckv"), |b| b[0] = b'X'),
            "wrong magic",
        ),
        (
            damaged(&good, &temp.path().join("cut.ckv"), |b| {
                b.truncate(b.len() - 10)
            }),
            "truncated",
        ),
        (
            damaged(&good, &temp.path().join("flip.ckv"), |b| {
                let last = b.len() - 1;
                b[last] ^= 1
            }),
            "checksum mismatch",
        ),
        (
            damaged(&good, &temp.path().join("newer.ckv"), |b| {
                b[8..12].copy_from_slice(&99u32.to_le_bytes())
            }),
            "newer",
        ),
    ];
    let unused = temp.path().join("unused-data");
    let unused_arg = unused.display().to_string();
    for (path, why) in &bad {
        let (code, _, stderr) = restore(&["--from", path, "--data-dir", &unused_arg]);
        assert_eq!(code, Some(2), "{path}: {stderr}");
        assert!(stderr.contains(why), "{path}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!unused.exists(), "{path}: restore wrote something");
        let err = ctl_code(&eps, &["snapshot", "inspect", path], 2);
        assert!(err.is_empty(), "{err}");
    }

    // Disaster: every server lost, with its data.
    let initial = initial_cluster(cluster.nodes.iter().map(|n| (n.id, n.advertised)));
    for id in cluster.ids() {
        cluster.kill(id);
        std::fs::remove_dir_all(cluster.data_dir(id)).expect("wipe data dir");
    }
    for id in cluster.ids() {
        let data = cluster.data_dir(id).display().to_string();
        let node_id = id.to_string();
        let args = [
            "--from",
            &file_arg,
            "--data-dir",
            &data,
            "--node-id",
            &node_id,
            "--initial-cluster",
            &initial,
        ];
        let (code, stdout, stderr) = restore(&args);
        assert_eq!(code, Some(0), "{stdout} {stderr}");
        assert!(
            stdout.contains(&format!("restored version {version}")),
            "{stdout}"
        );
        // A data directory is restored once: a second run is refused.
        let (again, _, stderr) = restore(&args);
        assert_eq!(again, Some(2), "{stderr}");
        assert!(stderr.contains("not empty"), "{stderr}");
    }
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.leader(WAIT);
    let restored = cluster.converged(&cluster.ids(), 0, WAIT);
    assert_eq!(restored, (version, config_hash.clone()));
    for id in cluster.ids() {
        assert_eq!(
            history(&cluster, id),
            before,
            "event history on server {id}"
        );
    }

    // The new cluster takes writes, its versions following the restored one.
    let leader = cluster.leader(WAIT);
    let next = put_node(cluster.node(leader).client, "d6", None).expect("write after restore");
    assert_eq!(next, version + 1);
    cluster.converged(&cluster.ids(), next, WAIT);
}
