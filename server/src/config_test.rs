use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let config = Config::from_yaml(text, Path::new("test.yaml"))?;
    config.validate()?;
    Ok(config)
}

fn error_of(text: &str) -> String {
    parse(text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn example_file_parses_and_matches_defaults() {
    let text = include_str!("../config/example.yaml");
    let config = parse(text).expect("example.yaml is valid");
    let default = Config::default();
    assert_eq!(config.client_addr, default.client_addr);
    assert_eq!(config.http.max_body_bytes, default.http.max_body_bytes);
    assert_eq!(
        config.raft.election_timeout_max,
        default.raft.election_timeout_max
    );
    assert_eq!(
        config.topology.health_check.interval,
        default.topology.health_check.interval
    );
    assert_eq!(
        config.topology.notifications.event_buffer_size,
        default.topology.notifications.event_buffer_size
    );
    assert_eq!(
        config.topology.cache.compression,
        default.topology.cache.compression
    );
    assert_eq!(config.initial_cluster.len(), 1);
}

#[test]
fn empty_document_gives_defaults() {
    let config = parse("{}").unwrap();
    assert_eq!(config.node_id, 1);
    assert_eq!(config.topology.health_check.failure_threshold, 3);
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let msg = error_of("topology:\n  health_check:\n    intervall: 5s\n");
    assert!(msg.contains("topology.health_check"), "{msg}");
    assert!(msg.contains("intervall"), "{msg}");
}

#[test]
fn bad_duration_is_rejected_with_its_path() {
    let msg = error_of("topology:\n  notifications:\n    heartbeat_interval: soon\n");
    assert!(
        msg.contains("topology.notifications.heartbeat_interval"),
        "{msg}"
    );
}

#[test]
fn wrong_type_is_rejected_with_its_path() {
    let msg = error_of("http:\n  max_body_bytes: lots\n");
    assert!(msg.contains("http.max_body_bytes"), "{msg}");
}

#[test]
fn zero_and_inconsistent_values_are_rejected() {
    assert!(error_of("node_id: 0").contains("node_id"));
    assert!(error_of("topology:\n  health_check:\n    interval: 0s\n").contains("interval"));
    assert!(error_of("raft:\n  election_timeout_min: 10ms\n").contains("raft.election_timeout_min"));
    assert!(error_of("topology:\n  health_check:\n    timeout: 10s\n").contains("timeout"));
    assert!(error_of("initial_cluster:\n  2: 127.0.0.1:7071\n").contains("initial_cluster"));
    assert!(error_of("auth_token: ''").contains("auth_token"));
    assert!(
        error_of("sample_topology: {nodes: 2, replication_factor: 3}")
            .contains("replication_factor")
    );
}

#[test]
fn initial_cluster_flag_parses_and_rejects_garbage() {
    let members = parse_initial_cluster("1=127.0.0.1:7071, 2=127.0.0.1:7072").unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[&2].port(), 7072);
    for bad in [
        "",
        "1",
        "x=127.0.0.1:1",
        "0=127.0.0.1:1",
        "1=nohost",
        "1=127.0.0.1:1,1=127.0.0.1:2",
    ] {
        assert!(
            parse_initial_cluster(bad).is_err(),
            "{bad} should be rejected"
        );
    }
}

#[test]
fn flags_override_the_file_and_no_flags_means_dev() {
    let cli = Cli::parse_from([
        "concord-topo",
        "--node-id",
        "2",
        "--client-addr",
        "127.0.0.1:9999",
        "--initial-cluster",
        "1=127.0.0.1:7071,2=127.0.0.1:7071",
        "--executors",
        "3",
        "--auth-token",
        "t",
        "--insecure",
    ]);
    let config = Config::load(&cli).unwrap();
    assert_eq!(config.node_id, 2);
    assert_eq!(config.client_addr.port(), 9999);
    assert_eq!(config.executor_count(), 3);
    assert_eq!(config.auth_token.as_deref(), Some("t"));
    assert!(config.sample_topology.is_none());

    let dev = Config::load(&Cli::parse_from(["concord-topo"])).unwrap();
    assert_eq!(dev.sample_topology, Some(SampleTopology::default()));
    assert_eq!(dev.members().len(), 1);
}

#[test]
fn join_and_advertised_peer_address() {
    let cli = Cli::parse_from([
        "concord-topo",
        "--node-id",
        "4",
        "--peer-addr",
        "0.0.0.0:7071",
        "--advertise-peer-addr",
        "10.0.0.4:7071",
        "--join",
        "--insecure",
    ]);
    let config = Config::load(&cli).unwrap();
    assert!(config.join);
    assert!(config.sample_topology.is_none(), "--join is not --dev");
    assert!(
        config.members().is_empty(),
        "a joining server initialises nothing"
    );
    assert_eq!(config.advertised_peer_addr().to_string(), "10.0.0.4:7071");

    // With an advertised address, this server's initial_cluster entry must be exactly it.
    let ok =
        "node_id: 1\nadvertise_peer_addr: 127.0.0.1:9001\ninitial_cluster:\n  1: 127.0.0.1:9001\n";
    assert_eq!(parse(ok).unwrap().members()[&1].port(), 9001);
    let bad =
        "node_id: 1\nadvertise_peer_addr: 127.0.0.1:9001\ninitial_cluster:\n  1: 127.0.0.1:7071\n";
    assert!(error_of(bad).contains("initial_cluster"));
    assert!(error_of("raft:\n  max_message_bytes: 10\n").contains("raft.max_message_bytes"));
    assert!(error_of("raft:\n  snapshot_timeout: 0s\n").contains("raft.snapshot_timeout"));
}

#[test]
fn a_cluster_without_a_peer_secret_needs_insecure() {
    for flags in [
        &[
            "--node-id",
            "1",
            "--initial-cluster",
            "1=127.0.0.1:7071,2=127.0.0.1:7072",
        ][..],
        &["--node-id", "4", "--join"][..],
    ] {
        let cli = Cli::parse_from(std::iter::once("concord-topo").chain(flags.iter().copied()));
        let e = Config::load(&cli).unwrap_err().to_string();
        assert!(e.starts_with("auth.peer_secret_file:"), "{e}");
        assert!(e.contains("--insecure"), "{e}");
    }
    // Alone, a server needs nothing configured: it generates its secret at start.
    let alone = Cli::parse_from([
        "concord-topo",
        "--node-id",
        "1",
        "--initial-cluster",
        "1=127.0.0.1:7071",
    ]);
    let config = Config::load(&alone).unwrap();
    assert!(config.is_single_server() && config.peer_secret.is_none());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peer.secret");
    std::fs::write(&file, "# current\npeer-secret-0123456789\n").unwrap();
    let yaml = format!("auth:\n  peer_secret_file: {}\n", file.display());
    std::fs::write(dir.path().join("c.yaml"), yaml).unwrap();
    let config_path = dir.path().join("c.yaml");
    let with_file = |extra: &[&str]| {
        let config = ["concord-topo", "--config", config_path.to_str().unwrap()];
        Config::load(&Cli::parse_from(config.iter().chain(extra)))
    };
    let config = with_file(&["--node-id", "4", "--join"]).unwrap();
    assert_eq!(
        config.peer_secret.as_ref().unwrap().presented(),
        "peer-secret-0123456789"
    );
    assert!(!format!("{config:?}").contains("peer-secret-0123456789"));

    // Not a client token.
    std::fs::write(&file, "client-token-0123456789\n").unwrap();
    let e = with_file(&["--auth-token", "client-token-0123456789"]).unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");
}
