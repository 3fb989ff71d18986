//! Smoke runs of every `perf` scenario with tiny numbers (seconds each), so the
//! harness cannot rot: each must finish, exit 0 and write a sane JSON report.

use std::path::Path;
use std::process::Command;

fn run(out: &Path, args: &[&str]) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_perf"))
        .arg("--out")
        .arg(out)
        .args(args)
        .status()
        .expect("run perf");
    assert!(status.success(), "perf {args:?} failed: {status}");
    let name = if args[0] == "memory" {
        "memory"
    } else {
        args[0]
    };
    let text = std::fs::read_to_string(out.join(format!("{name}.json"))).expect("a JSON report");
    serde_json::from_str(&text).expect("the report is JSON")
}

#[test]
fn read_at_a_fixed_rate() {
    let out = tempfile::tempdir().unwrap();
    let r = run(
        out.path(),
        &[
            "read",
            "--rate",
            "500",
            "--duration",
            "1",
            "--connections",
            "4",
        ],
    );
    let ours = &r["concord_topo"];
    assert_eq!(ours["errors"], 0);
    assert_eq!(ours["completed"], 500);
    assert!(ours["latency"]["p99_us"].as_u64().unwrap() > 0);
    assert!(out.path().join("concord-topo-latency.svg").exists());
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn reference_side_by_side_with_a_short_ladder() {
    let out = tempfile::tempdir().unwrap();
    let r = run(
        out.path(),
        &[
            "reference",
            "--route",
            "snapshot304",
            "--max",
            "--rate",
            "300",
            "--max-rate",
            "500",
            "--duration",
            "0.5",
            "--connections",
            "4",
            "--p99-target-ms",
            "1000",
        ],
    );
    assert!(r["concord_topo"]["ladder"].as_array().unwrap().len() >= 2);
    assert!(r["may_minihttp"]["max_throughput"].as_f64().unwrap() > 0.0);
    assert!(r["ratio_ours_over_reference"].as_f64().unwrap() > 0.0);
}

/// 10 subscribers, 5 writes at 20/s: 50 deliveries; RSS sampled without settling.
const SMALL_SUBSCRIBE: [&str; 9] = [
    "subscribe",
    "--subscribers",
    "10",
    "--writes",
    "5",
    "--write-rate",
    "20",
    "--settle",
    "0",
];

#[test]
fn subscribe_loses_nothing() {
    let out = tempfile::tempdir().unwrap();
    let r = run(out.path(), &SMALL_SUBSCRIBE);
    assert_eq!(r["subscriber_io"], "epoll", "{r}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert_eq!(r["sent_to_delivered"]["count"], 50);
}

#[test]
fn subscribe_with_glommio_subscribers_loses_nothing() {
    let out = tempfile::tempdir().unwrap();
    let mut args = SMALL_SUBSCRIBE.to_vec();
    args.extend(["--subscriber-io", "uring"]);
    let r = run(out.path(), &args);
    assert_eq!(r["subscriber_io"], "uring", "{r}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert_eq!(r["sent_to_delivered"]["count"], 50);
}

#[test]
fn subscribe_pinned_in_a_child_process_reports_server_cpu() {
    let out = tempfile::tempdir().unwrap();
    let last_cpu = (std::thread::available_parallelism().map_or(1, |n| n.get()) - 1).to_string();
    let mut args = SMALL_SUBSCRIBE.to_vec();
    args.extend(["--server-cpus", "0", "--subscriber-cpus", &last_cpu]);
    let r = run(out.path(), &args);
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
    assert_eq!(r["acked_to_delivered"]["count"], 50, "{r}");
    assert_eq!(r["server_cpus"], "0", "{r}");
    assert!(
        r["cost"]["server_cpu_us_per_delivery"].as_f64().unwrap() >= 0.0,
        "{r}"
    );
    // etcd runs beside it only where it is installed; otherwise the report says why.
    if r["etcd"]["skipped"].is_string() {
        println!("etcd side-by-side skipped: {}", r["etcd"]["skipped"]);
    } else {
        assert_eq!(r["etcd"]["lost"], 0, "{r}");
        assert_eq!(r["etcd"]["acked_to_delivered"]["count"], 50, "{r}");
        assert!(r["etcd"]["version"].is_string(), "{r}");
    }
}

#[test]
fn memory_reports_the_server_rss() {
    let out = tempfile::tempdir().unwrap();
    let r = run(
        out.path(),
        &[
            "memory",
            "--subscribers",
            "20",
            "--writes",
            "3",
            "--nodes",
            "50",
            "--shards",
            "256",
            "--settle",
            "0",
        ],
    );
    assert!(
        r["server_rss_bytes"]["subscribers_connected"]
            .as_u64()
            .unwrap()
            > 1 << 20
    );
    assert_eq!(r["lost"], 0);
}

#[test]
fn bandwidth_compares_full_and_incremental() {
    let out = tempfile::tempdir().unwrap();
    let r = run(
        out.path(),
        &[
            "bandwidth",
            "--changes",
            "5",
            "--nodes",
            "20",
            "--shards",
            "64",
        ],
    );
    assert_eq!(r["changes"], 5.0);
    let saved = r["saved_vs_identity"].as_f64().unwrap();
    assert!(saved > 0.5 && saved < 1.0, "{r}");
}

#[test]
fn health_probes_simulated_data_nodes() {
    let out = tempfile::tempdir().unwrap();
    let r = run(
        out.path(),
        &[
            "health",
            "--nodes",
            "20",
            "--interval-ms",
            "200",
            "--timeout-ms",
            "100",
            "--seconds",
            "1",
            "--failing",
            "2",
        ],
    );
    assert_eq!(r["steady"]["versions_committed"], 0, "{r}");
    assert!(r["steady"]["probes"].as_u64().unwrap() >= 20, "{r}");
    assert_eq!(r["manual_round"]["latency"]["count"], 20, "{r}");
    // Three steps (degraded, its count, unhealthy), one more when the two nodes'
    // failures straddle a round.
    let versions = r["failure"]["versions_committed"].as_u64().unwrap();
    assert!((3..=4).contains(&versions), "{r}");
    assert!(r["failure"]["recovered_ms"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn failover_measures_writes_and_subscribers() {
    let out = tempfile::tempdir().unwrap();
    let r = run(out.path(), &["failover", "--runs", "1"]);
    assert_eq!(r["each"].as_array().unwrap().len(), 1);
    let write = r["write_accepted"]["max_us"].as_u64().unwrap();
    let resumed = r["subscriber_resumed"]["max_us"].as_u64().unwrap();
    assert!(write > 0 && resumed >= write, "{r}");
}
