//! Resident memory follows what the server holds: the transient buffers of a large
//! bootstrap (request body, command, snapshot, published frames) are given back to the
//! kernel, not kept at their peak (`process::memory` in the server).

use std::time::Duration;

use crate::support::Server;

/// `VmRSS` and `VmHWM` (its peak) of `pid`, in KiB.
fn rss_and_peak_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_large_bootstrap_gives_its_transient_memory_back() {
    let server = Server::start(&[]);
    let body = concord_testkit::register::bootstrap_body(1000, 16384);
    let r = server.send("POST", "/api/topology/bootstrap", &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    // glibc's malloc alone keeps nearly all of it (about 1.5 MB of ~13 MB comes back).
    let given_back = concord_testkit::wait::poll_until(Duration::from_secs(15), || {
        let (rss, peak) = rss_and_peak_kib(server.pid());
        (rss + 6 * 1024 <= peak).then_some((rss, peak))
    });
    let (rss, peak) = rss_and_peak_kib(server.pid());
    assert!(
        given_back.is_some(),
        "RSS stayed near its peak after the bootstrap: {rss} KiB now, {peak} KiB peak"
    );
    assert_eq!(server.version(), 1, "the topology is all still there");
    assert_eq!(
        server
            .get("/api/topology/shards?shardId=shard-16383")
            .status,
        200
    );
}
