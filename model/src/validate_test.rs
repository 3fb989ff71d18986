use super::*;

#[test]
fn ids() {
    for ok in ["a", "shard-0000", "N_1.x", &"x".repeat(128)] {
        assert!(check_id(ok).is_ok(), "{ok}");
    }
    let cases = [
        ("", "empty"),
        (&*"x".repeat(129), "129 characters"),
        ("a b", "' ' at position 1"),
        ("a/b", "'/'"),
        ("é", "'é'"),
        ("a\n", "'\\n'"),
    ];
    for (bad, want) in cases {
        let e = check_id(bad).unwrap_err();
        assert!(e.contains(want), "{bad:?}: {e}");
    }
}

#[test]
fn addresses() {
    for ok in [
        "localhost:7000",
        "10.0.0.1:1",
        "db-1.example.com:65535",
        "[::1]:7070",
        "[fe80::1%eth0]:80",
        "node_1:8080",
    ] {
        assert!(check_address(ok).is_ok(), "{ok}");
    }
    let cases = [
        ("localhost", "no ':port'"),
        ("localhost:", "port"),
        ("localhost:0", "port"),
        ("localhost:65536", "port"),
        ("localhost:+80", "port"),
        ("localhost:123456", "port"),
        (":80", "host is empty"),
        ("[::1:80", "IPv6"),
        ("[]:80", "IPv6"),
        ("[1.2.3.4]:80", "IPv6"),
        ("[::1%]:80", "IPv6"),
        ("a b:80", "host may only"),
        ("http://x:80", "host may only"),
        ("-x:80", "malformed"),
        ("a..b:80", "malformed"),
    ];
    for (bad, want) in cases {
        let e = check_address(bad).unwrap_err();
        assert!(e.contains(want), "{bad:?}: {e}");
    }
}

#[test]
fn labels() {
    let mut l = BTreeMap::new();
    l.insert(
        "topology.kubernetes.io/zone".to_string(),
        "eu-1a".to_string(),
    );
    assert!(check_labels(&l).is_ok());
    l.insert("".into(), "x".into());
    assert!(check_labels(&l).unwrap_err().1.contains("label key"));
    let mut l = BTreeMap::new();
    l.insert("k".to_string(), "v".repeat(257));
    assert!(check_labels(&l).unwrap_err().1.contains("256"));
    l.insert("k".to_string(), "a\u{7}".into());
    assert!(check_labels(&l).unwrap_err().1.contains("control"));
    let many: BTreeMap<String, String> =
        (0..65).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(check_labels(&many).unwrap_err().1.contains("at most 64"));
}

#[test]
fn placement() {
    let mut nodes = NodeMap::new();
    for n in ["n1", "n2", "n3"] {
        nodes.insert(n.into(), crate::types::NodeStatus::new(n, "h:1"));
    }
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(check_placement("n1", &r(&["n2", "n3"]), &nodes).is_ok());
    assert!(check_placement("n1", &[], &nodes).is_ok());
    let (f, d) = check_placement("n9", &[], &nodes).unwrap_err();
    assert_eq!(f, PlacementField::Primary);
    assert!(d.contains("not registered"));
    let (f, d) = check_placement("n1", &r(&["n2", "n1"]), &nodes).unwrap_err();
    assert_eq!(f, PlacementField::Replica(1));
    assert!(d.contains("is the primary"));
    let (f, d) = check_placement("n1", &r(&["n2", "n2"]), &nodes).unwrap_err();
    assert_eq!(f, PlacementField::Replica(1));
    assert!(d.contains("twice"));
    let (f, _) = check_placement("n1", &r(&["bad id"]), &nodes).unwrap_err();
    assert_eq!(f, PlacementField::Replica(0));
}
