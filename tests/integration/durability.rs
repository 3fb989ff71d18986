//! Crash safety: every acknowledged write survives SIGKILL and restart.

use crate::support::Server;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut server = Server::start_in(&data_dir, &["--dev"]);
    let mut last_version = 0;
    for i in 0..40 {
        let r = server.send(
            "PUT",
            &format!("/api/topology/nodes/extra-{i}"),
            &[],
            &format!(r#"{{"address":"127.0.0.1:{}"}}"#, 20000 + i),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        last_version = r.json()["version"].as_u64().unwrap();
    }
    let before = server.get("/api/topology/version").json();
    assert_eq!(before["version"].as_u64(), Some(last_version));
    let snapshot_before = server.get("/api/topology/snapshot").json();

    server.kill();
    server.restart();

    let after = server.get("/api/topology/version").json();
    assert_eq!(after["version"], before["version"], "version after restart");
    assert_eq!(
        after["configHash"], before["configHash"],
        "configHash after restart"
    );
    let snapshot_after = server.get("/api/topology/snapshot").json();
    assert_eq!(
        snapshot_after["snapshot"]["nodeStatus"], snapshot_before["snapshot"]["nodeStatus"],
        "every node after restart"
    );
    // The history survived too: a resume from before the writes still works.
    let events = server
        .get(&format!(
            "/api/topology/events?sinceVersion={}&limit=1000",
            last_version - 40
        ))
        .json();
    assert_eq!(events["events"].as_array().unwrap().len(), 40);
    // And the restarted server accepts writes again.
    let r = server.send(
        "PUT",
        "/api/topology/nodes/after",
        &[],
        r#"{"address":"127.0.0.1:1"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"].as_u64(), Some(last_version + 1));
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let _first = Server::start_in(&data_dir, &[]);
    let output = std::process::Command::new(concord_testkit::server_binary())
        .args([
            "--data-dir",
            &data_dir.display().to_string(),
            "--client-addr",
        ])
        .arg(format!("127.0.0.1:{}", concord_testkit::free_port()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("locked"), "{stderr}");
}
