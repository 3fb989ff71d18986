//! The caching router client (`ffi/`, crate `concord-client`) against real
//! `concord-topo` processes: its Rust API, its C ABI from C and C++ programs (plain
//! and under ASan/UBSan), the Python ctypes package, and failover between three
//! servers. Routes are compared with the server's own shard map for the same key
//! hash.

mod failover;
pub(crate) mod native;
mod python;
mod rust_api;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::Server;

/// Where a key goes according to a server's own `/shards` and `/nodes` answers.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub shard_id: String,
    pub epoch: u64,
    pub primary: String,
    pub primary_address: String,
    pub replicas: Vec<String>,
}

fn hex(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Looks the key's hash up in the server's shard list (not through the client).
pub fn expected_route(server: &Server, key: &[u8]) -> Expected {
    let hash = concordkv_topology::key_hash(key);
    let shards = server.get("/api/topology/shards").json();
    let nodes = server.get("/api/topology/nodes").json();
    let shard = shards["shards"]
        .as_array()
        .expect("shards is an array")
        .iter()
        .find(|s| {
            let start = hex(&s["keyRange"]["start"]).unwrap_or(0);
            let end = hex(&s["keyRange"]["end"]);
            hash >= start && end.is_none_or(|e| hash < e)
        })
        .unwrap_or_else(|| panic!("the server's shards do not cover hash {hash:016x}"))
        .clone();
    let primary = shard["primaryNode"].as_str().unwrap().to_string();
    let primary_address = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == primary.as_str())
        .map(|n| n["address"].as_str().unwrap().to_string())
        .expect("the primary is a registered node");
    Expected {
        shard_id: shard["shardId"].as_str().unwrap().to_string(),
        epoch: shard["epoch"].as_u64().unwrap(),
        primary,
        primary_address,
        replicas: shard["replicaNodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect(),
    }
}

/// Sets a shard's status through the write API; returns the new version.
pub fn set_status(server: &Server, shard: &str, status: &str) -> u64 {
    let r = server.send(
        "PUT",
        &format!("/api/topology/shards/{shard}"),
        &[("Content-Type", "application/json")],
        &format!(r#"{{"status":"{status}"}}"#),
    );
    assert_eq!(r.status, 200, "write failed: {}", r.text());
    r.json()["version"]
        .as_u64()
        .expect("a write answers its version")
}

/// Flips a shard between active and readonly; returns the new version.
pub fn toggle_status(server: &Server, shard: &str) -> u64 {
    let current = server
        .get(&format!("/api/topology/shards?shardId={shard}"))
        .json();
    let next = match current["shard"]["status"].as_str() {
        Some("readonly") => "active",
        _ => "readonly",
    };
    set_status(server, shard, next)
}

pub fn server_version(server: &Server) -> (u64, String) {
    let v = server.get("/api/topology/version").json();
    (
        v["version"].as_u64().unwrap(),
        v["configHash"].as_str().unwrap().to_string(),
    )
}

/// `target/<profile>`, holding a fresh `libconcordkv_topology.{so,a}`.
///
/// `cargo test` builds the ffi crate only as an rlib for its dependents, never its
/// cdylib/staticlib, so the C, C++ and Python tests would link a stale library (or
/// none on a clean machine). The first caller therefore runs `cargo build` of the
/// library for this profile; cargo holds no build lock while tests run, and the
/// build is incremental (about a second when nothing changed).
pub fn lib_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable lives in target/<profile>/deps")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "concord-client", "--lib"])
                .current_dir(repo_root());
            if dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let out = build.output().expect("cargo runs");
            assert!(
                out.status.success(),
                "cargo build -p concord-client failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for lib in ["libconcordkv_topology.so", "libconcordkv_topology.a"] {
                assert!(
                    dir.join(lib).exists(),
                    "{} is missing",
                    dir.join(lib).display()
                );
            }
            dir
        })
        .clone()
}

/// The repository root (the tests crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub const KEYS: [&str; 6] = [
    "user:1",
    "user:2",
    "order:77",
    "a",
    "zebra",
    "key with spaces",
];
