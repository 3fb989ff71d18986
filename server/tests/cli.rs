//! The command-line contract: bad configuration, busy ports and help, against the
//! real binary. (Being an integration test of this package, it also makes
//! `cargo test --workspace` build `concord-topo` for the cross-crate tests.)

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_concord-topo"))
        .args(args)
        .output()
        .expect("run concord-topo")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_contract_flags() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--node-id",
        "--client-addr",
        "--peer-addr",
        "--data-dir",
        "--initial-cluster",
        "--executors",
        "--auth-token",
        "--dev",
    ] {
        assert!(text.contains(flag), "--help should list {flag}");
    }
}

#[test]
fn bad_config_exits_2_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "topology:\n  health_check:\n    interval: often\n").unwrap();
    let output = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("topology.health_check.interval"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
}

#[test]
fn missing_config_file_and_bad_flags_are_reported() {
    let output = run(&["--config", "/nonexistent/concord.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/concord.yaml"));
    let output = run(&["--initial-cluster", "1=nowhere"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--initial-cluster"));
    let output = run(&["--node-id", "zero"]);
    assert!(!output.status.success());
}

#[test]
fn busy_client_port_exits_non_zero() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = run(&[
        "--client-addr",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains(&addr), "{err}");
}
