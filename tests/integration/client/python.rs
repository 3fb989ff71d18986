//! The Python ctypes package's own unittest suite (`bindings/python/tests`), run
//! against the built shared library and a real server.

use std::process::Command;

use super::{lib_dir, repo_root};
use crate::support::Server;

#[test]
fn python_package_tests_pass_against_a_real_server() {
    let server = Server::start(&["--dev"]);
    let root = repo_root();
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "discover", "-v", "-s"])
        .arg(root.join("bindings/python/tests"))
        .env(
            "CONCORDKV_TOPOLOGY_LIB",
            lib_dir().join("libconcordkv_topology.so"),
        )
        .env("CONCORDKV_TEST_SERVER", server.client.to_string())
        .output()
        .expect("python3 runs (ffi/ci.sh installs it on a clean machine)");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python tests failed:\n{report}");
    // Every test ran, none was skipped (the server tests skip without a server).
    assert!(report.contains("Ran 4 tests"), "{report}");
    assert!(report.trim_end().ends_with("OK"), "{report}");
}
