//! A short `perf soak` (15 s, one fault, debug build) so CI covers the scenario: it
//! must exit 0 and its report must hold every verdict, computed.

use std::process::Command;

#[test]
fn a_short_soak_with_one_fault_loses_nothing_and_computes_every_verdict() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_perf"))
        .arg("--out")
        .arg(out.path())
        .args([
            "soak",
            "--duration",
            "15",
            "--fault-every",
            "4",
            "--routers",
            "3",
        ])
        .args([
            "--write-rate",
            "10",
            "--read-rate",
            "5",
            "--sample-every",
            "1",
        ])
        .status()
        .expect("run perf soak");
    assert!(status.success(), "perf soak failed: {status}");
    let text = std::fs::read_to_string(out.path().join("soak.json")).expect("a JSON report");
    let r: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");

    assert_eq!(r["faults"].as_array().unwrap().len(), 1, "{}", r["faults"]);
    // A leader kill; paused instead when the leader is the spared server 1.
    let fault = &r["faults"][0];
    match fault["fault"].as_str().unwrap() {
        "KillLeader" => assert_ne!(fault["server"], 1, "{fault}"),
        "PauseLeader" => assert_eq!(fault["server"], 1, "{fault}"),
        other => panic!("first fault {other}"),
    }
    // The spared server ran as one process all along; its growth is reported (a run
    // this short does not judge it).
    let whole_run = r["whole_run"].as_array().unwrap();
    assert!(
        whole_run.iter().any(|w| w["server"] == 1),
        "{}",
        r["whole_run"]
    );
    assert_eq!(r["grown"], 0);
    // Writes cycle over the pool: 4 writers x 25 data nodes at most.
    assert!(
        r["nodes_at_end"].as_u64().unwrap() <= 100,
        "{}",
        r["nodes_at_end"]
    );
    assert_eq!(r["lost"], 0);
    assert_eq!(r["misplaced"], 0);
    let lin = &r["linearizability"];
    assert_eq!(lin["violations"], 0);
    assert!(lin["windows"].as_u64().unwrap() >= 1);
    // Every acknowledged write and answered read went through the checker.
    assert!(lin["operations"].as_u64().unwrap() >= r["acknowledged"].as_u64().unwrap());
    assert!(r["acknowledged"].as_u64().unwrap() > 0);
    let sse = &r["sse"];
    for key in ["gaps", "duplicates", "reorders", "behind", "broken_routers"] {
        assert_eq!(sse[key], 0, "sse {key}: {sse}");
    }
    assert_eq!(sse["routers"].as_array().unwrap().len(), 3);
    let availability = r["availability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&availability));
    assert!(r["writes_scheduled"].as_u64().unwrap() > 0);
    // Every server was sampled at the start and at the end.
    assert_eq!(
        r["resources"].as_array().unwrap().len(),
        3,
        "{}",
        r["resources"]
    );
    for chart in ["soak-rss.svg", "soak-fds.svg", "soak-availability.svg"] {
        assert!(out.path().join(chart).exists(), "{chart}");
    }
}
