//! The peer port against forged requests: real servers, real postcard-encoded openraft
//! messages POSTed by a test that is not a topology server.
//!
//! Only the cluster's peer secret opens the peer port (a client token does not, and
//! the peer secret does not open the client port); a single server with no secret
//! configured generates one; callers must be members; terms are bounded before
//! openraft sees them (a term of 2^64-1 used to panic the server on every restart);
//! only the leader hands leadership over; a forwarded write cannot choose its
//! timestamp; a server with another secret takes no part in the cluster.

use std::time::Duration;

use concord_model::{Command, Operation as Change};
use concord_testkit::http::request_within;
use concord_testkit::Response;
use concord_topo::raft::types::LogId;
use concord_topo::raft::wire;
use concord_topo::raft::TopoConfig;
use concord_topo::service::{Answer, Operation, Outcome};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::Vote;

use crate::cluster_support::{put_node, test_config, Cluster, Node, PEER_SECRET};

const WAIT: Duration = Duration::from_secs(20);
/// A client write token, to show that it does not open the peer port.
const CLIENT_TOKEN: &str = "client-write-token-0123456789";

/// POSTs `body` to `path` on `node`'s peer port, as `from` with `secret`.
pub(crate) fn peer_post(
    node: &Node,
    path: &str,
    from: Option<&str>,
    secret: Option<&str>,
    body: &[u8],
) -> Response {
    let bearer = secret.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("Content-Type", wire::CONTENT_TYPE)];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    if let Some(from) = from {
        headers.push((wire::FROM_HEADER, from));
    }
    request_within(node.advertised, "POST", path, &headers, body, WAIT)
        .expect("the peer port answers")
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    wire::encode(value).expect("encodable").to_vec()
}

/// A forwarded write registering data node `name`, stamped `timestamp_ms`.
fn forged_write(name: &str, timestamp_ms: u64) -> Vec<u8> {
    encode(&Operation::Write(Command::single(
        timestamp_ms,
        Change::RegisterNode {
            node_id: name.into(),
            address: "127.0.0.1:1".into(),
            labels: None,
        },
    )))
}

fn vote_request(term: u64, candidate: u64, transfer: bool) -> Vec<u8> {
    let mut rpc = VoteRequest::<TopoConfig>::new(Vote::new(term, candidate), None);
    rpc.leadership_transfer = transfer;
    encode(&rpc)
}

fn has_data_node(node: &Node, name: &str) -> bool {
    let r = node.get("/api/topology/nodes").expect("nodes answer");
    r.json()["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .any(|n| n["nodeId"] == name)
}

/// The ids of the servers of `cluster` other than `leader`.
fn followers(cluster: &Cluster, leader: u64) -> Vec<u64> {
    cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect()
}

fn term_of(node: &Node) -> u64 {
    node.status().expect("status")["term"]
        .as_u64()
        .expect("term")
}

#[test]
fn only_the_peer_secret_opens_the_peer_port() {
    let yaml = format!("{}auth_token: {CLIENT_TOKEN}\n", test_config(""));
    let cluster = Cluster::start_with(1, false, &yaml);
    let node = cluster.node(1);
    let write = forged_write("forged", 1);
    for (secret, what) in [
        (Some(CLIENT_TOKEN), "a client token"),
        (None, "no credential"),
    ] {
        let r = peer_post(node, "/raft/write", Some("1"), secret, &write);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert!(r.text().contains("peer secret"), "{}", r.text());
    }
    let r = peer_post(
        node,
        wire::VOTE,
        Some("1"),
        Some("bearer nope-nope-nope-nope"),
        &vote_request(2, 1, false),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        !has_data_node(node, "forged"),
        "a refused write is never committed"
    );

    // The peer secret does not open the client port.
    let peer_bearer = format!("Bearer {PEER_SECRET}");
    let r = node
        .send(
            "PUT",
            "/api/topology/nodes/by-peer",
            &[("Authorization", &peer_bearer)],
            r#"{"address":"127.0.0.1:1"}"#,
        )
        .expect("client port answers");
    assert_eq!(r.status, 401, "{}", r.text());

    // A member presenting the secret is served.
    let r = peer_post(node, "/raft/write", Some("1"), Some(PEER_SECRET), &write);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Answer = wire::decode(&r.body).expect("an answer");
    assert!(matches!(answer, Ok(Outcome::Written { .. })), "{answer:?}");
    assert!(has_data_node(node, "forged"));
}

#[test]
fn a_server_without_a_configured_secret_generates_one() {
    // No CONCORD_PEER_SECRET, no auth_token, no auth section: the old default.
    let cluster = Cluster::spawn(1, false, &test_config(""), |_| "");
    cluster.leader(WAIT);
    let node = cluster.node(1);
    let write = forged_write("forged", 1);
    let r = peer_post(node, "/raft/write", Some("1"), None, &write);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        !has_data_node(node, "forged"),
        "a forged write is never committed"
    );

    let file = cluster.data_dir(1).join("peer-secret");
    let generated = std::fs::read_to_string(&file).expect("the generated secret");
    let generated = generated.trim();
    assert_eq!(generated.len(), 64, "32 random bytes in hex");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    let r = peer_post(
        node,
        wire::PRE_VOTE,
        Some("1"),
        Some(generated),
        &vote_request(1, 1, false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn peer_rpcs_from_non_members_are_refused() {
    let mut cluster = Cluster::start(1, false, "");
    let node = cluster.node(1);
    let secret = Some(PEER_SECRET);
    let vote = vote_request(1_000, 7, true);
    let r = peer_post(node, wire::VOTE, None, secret, &vote);
    assert_eq!(r.status, 400, "missing sender: {}", r.text());
    let r = peer_post(node, wire::VOTE, Some("seven"), secret, &vote);
    assert_eq!(r.status, 400, "unparsable sender: {}", r.text());
    let r = peer_post(node, wire::VOTE, Some("7"), secret, &vote);
    assert_eq!(r.status, 403, "non-member: {}", r.text());
    assert!(r.text().contains("not a member"), "{}", r.text());
    let write = forged_write("from-7", 1);
    let r = peer_post(node, "/raft/write", Some("7"), secret, &write);
    assert_eq!(r.status, 403, "{}", r.text());
    // A member cannot speak in another's name either.
    let r = peer_post(node, wire::VOTE, Some("1"), secret, &vote);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(term_of(node) < 1_000, "no forged vote was persisted");
    assert!(!has_data_node(node, "from-7"));

    // A server that is not a member of anything yet (`--join`) takes any
    // authenticated caller: the leader that adds it is not known to it.
    let joining = cluster.start_joining(2);
    let stranger = vote_request(1, 9, false);
    for (secret, status) in [(secret, 200), (None, 401)] {
        let r = peer_post(joining, wire::PRE_VOTE, Some("9"), secret, &stranger);
        assert_eq!(r.status, status, "{}", r.text());
    }
}

#[test]
fn huge_terms_are_refused_and_never_persisted() {
    let mut cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let [target, sender] = followers(&cluster, leader)[..] else {
        panic!("two followers");
    };
    let from = sender.to_string();
    let node = cluster.node(target);
    let secret = Some(PEER_SECRET);
    let huge = |term: u64| {
        LogId::new(
            LeaderId {
                term,
                node_id: sender,
            },
            1,
        )
    };

    let mut append = AppendEntriesRequest::<TopoConfig> {
        vote: Vote::new_committed(u64::MAX, sender),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    let mut cases = vec![
        (wire::VOTE, vote_request(u64::MAX, sender, true)),
        (wire::VOTE, vote_request(1 << 62, sender, true)),
        (wire::PRE_VOTE, vote_request(u64::MAX, sender, false)),
        (wire::APPEND, encode(&append)),
    ];
    append.vote = Vote::new_committed(2, sender);
    append.prev_log_id = Some(huge(u64::MAX));
    cases.push((wire::APPEND, encode(&append)));
    let vote = VoteRequest::<TopoConfig>::new(Vote::new(3, sender), Some(huge(u64::MAX)));
    cases.push((wire::VOTE, encode(&vote)));
    let transfer = TransferLeaderRequest::<TopoConfig>::new(
        Vote::new_committed(u64::MAX, sender),
        target,
        None,
    );
    cases.push((wire::TRANSFER_LEADER, encode(&transfer)));
    for (path, body) in &cases {
        let r = peer_post(node, path, Some(&from), secret, body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains("out of range"), "{}", r.text());
    }
    assert!(term_of(node) < 1_000, "no huge term reached openraft");

    // The server survives a restart (a persisted term of 2^64-1 panicked it on every
    // start) and the cluster still takes writes.
    cluster.restart(target);
    let node = cluster.node(target);
    concord_testkit::wait_for(WAIT, "the restarted server is ready", || {
        node.get("/readyz").filter(|r| r.status == 200)
    });
    let leader = cluster.leader(WAIT);
    let v = put_node(cluster.node(leader).client, "after-huge-terms", None).expect("write");
    cluster.converged(&cluster.ids(), v, WAIT);
    assert!(term_of(cluster.node(target)) < 1_000);
}

#[test]
fn only_the_leader_hands_leadership_over() {
    let cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let term = term_of(cluster.node(leader));
    let followers = followers(&cluster, leader);
    let (target, impostor) = (followers[0], followers[1]);
    // A follower claiming to be leader, asking `target` to take over.
    let forged =
        TransferLeaderRequest::<TopoConfig>::new(Vote::new_committed(term, impostor), target, None);
    let r = peer_post(
        cluster.node(target),
        wire::TRANSFER_LEADER,
        Some(&impostor.to_string()),
        Some(PEER_SECRET),
        &encode(&forged),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("not the leader"), "{}", r.text());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cluster.leader(WAIT), leader, "leadership did not move");
    assert_eq!(term_of(cluster.node(target)), term);
}

#[test]
fn a_forwarded_write_cannot_pin_the_timestamp_in_the_future() {
    let cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let follower = followers(&cluster, leader)[0];
    let year_2100 = 4_102_444_800_000;
    let (from, write) = (follower.to_string(), forged_write("future", year_2100));
    let r = peer_post(
        cluster.node(leader),
        "/raft/write",
        Some(&from),
        Some(PEER_SECRET),
        &write,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Answer = wire::decode(&r.body).expect("an answer");
    assert!(matches!(answer, Ok(Outcome::Written { .. })), "{answer:?}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let version = cluster
        .node(leader)
        .get("/api/topology/version")
        .expect("version")
        .json();
    let timestamp = version["timestamp"].as_u64().expect("timestamp");
    assert!(
        timestamp <= now_ms + 60_000,
        "the leader's clock, not the forwarder's: {version}"
    );
    assert!(timestamp + 60_000 >= now_ms, "{version}");
}

#[test]
fn a_server_with_another_secret_cannot_vote_or_join() {
    let cluster = Cluster::spawn(3, false, &test_config(""), |id| {
        if id == 3 {
            "another-peer-secret-0123456789"
        } else {
            PEER_SECRET
        }
    });
    // The two that share the secret elect a leader and replicate.
    let leader = cluster.leader_among(&[1, 2], WAIT);
    let v = put_node(cluster.node(leader).client, "shared-secret", None).expect("write");
    cluster.converged(&[1, 2], v, WAIT);
    // The third never learns of it, never takes part, and holds nothing.
    std::thread::sleep(Duration::from_secs(2));
    let outsider = cluster.node(3).status().expect("status");
    assert!(outsider["leader"].is_null(), "{outsider}");
    assert_ne!(outsider["state"], "Leader");
    assert_eq!(cluster.node(3).version().expect("version").0, 0);
    let status = cluster.node(leader).status().expect("status");
    assert_eq!(status["leader"].as_u64(), Some(leader));
}

/// The membership check must not cut off a server whose membership is merely old: one
/// that was down while a server was added and promoted still hears that server as a
/// candidate (a longer log) and as leader (a newer committed vote).
#[test]
fn a_lagging_member_hears_a_server_added_while_it_was_down() {
    let mut cluster = Cluster::start(3, false, "");
    let leader = cluster.leader(WAIT);
    let followers = followers(&cluster, leader);
    let (late, gone) = (followers[0], followers[1]);
    cluster.kill(late);

    // Node 4 replaces `gone` while `late` is down.
    let address = cluster.start_joining(4).advertised.to_string();
    let post = |path: &str, body: String| {
        let r = cluster
            .node(leader)
            .send("POST", path, &[], &body)
            .expect("the leader answers");
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
    };
    post(
        "/api/cluster/learners",
        format!(r#"{{"nodeId":4,"address":"{address}","wait":true}}"#),
    );
    post(
        "/api/cluster/membership",
        format!(r#"{{"members":[{leader},{late},4]}}"#),
    );
    cluster.kill(gone);
    put_node(cluster.node(leader).client, "before", None).expect("write");

    // Only `late`, which never heard of node 4, and node 4 remain: they need each other.
    cluster.kill(leader);
    cluster.restart(late);
    let new_leader = cluster.leader_among(&[late, 4], Duration::from_secs(30));
    assert_eq!(new_leader, 4, "late's own membership has no quorum left");
    let v = put_node(cluster.node(4).client, "after", None).expect("write");
    cluster.converged(&[late, 4], v, WAIT);
}

/// Starts the server with `args` (`PEER` stands for its peer address) and `env`; its
/// exit code and standard error, if it exits within 10 s (`None`: still running, killed).
fn start_up(args: &[&str], env: &[(&str, &str)]) -> Option<(i32, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr.log");
    let peer = concord_testkit::free_addr();
    let mut all: Vec<String> = concord_testkit::process::serve_args(
        1,
        concord_testkit::free_addr(),
        peer,
        &dir.path().join("data"),
        1,
    );
    all.extend(args.iter().map(|a| a.replace("PEER", &peer.to_string())));
    let mut process = env.iter().fold(
        concord_testkit::TopoProcess::new(concord_testkit::server_binary(), all)
            .stderr(concord_testkit::process::Stderr::File(log.clone())),
        |p, (k, v)| p.env(k, v),
    );
    process.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(status) = process.exited() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            return Some((status.code().unwrap_or(-1), stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_cluster_without_a_peer_secret_refuses_to_start() {
    let others = format!("1=PEER,2={}", concord_testkit::free_addr());
    let (code, stderr) = start_up(
        &["--initial-cluster", &others],
        &[("CONCORD_PEER_SECRET", "")],
    )
    .expect("exits at once");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("auth.peer_secret_file") && stderr.contains("--insecure"),
        "{stderr}"
    );
    let (code, stderr) =
        start_up(&["--join"], &[("CONCORD_PEER_SECRET", "")]).expect("exits at once");
    assert_eq!(code, 2, "{stderr}");
    // A secret that is too short or not visible ASCII is refused, naming its source.
    let (code, stderr) = start_up(&["--join"], &[("CONCORD_PEER_SECRET", "short")]).expect("exits");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CONCORD_PEER_SECRET"), "{stderr}");
    // Said explicitly, an insecure joining server starts (and waits to be added).
    assert!(start_up(&["--join", "--insecure"], &[("CONCORD_PEER_SECRET", "")]).is_none());
}
