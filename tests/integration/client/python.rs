//! The Python package (`bindings/python`) as a user gets it: `pip install` into a
//! fresh virtual environment (bundling the workspace's built library instead of a
//! release build, through `CONCORDKV_TOPOLOGY_PREBUILT_LIB`), then, against a real
//! server and from outside the source tree, the README's Python example verbatim
//! and the package's own unittest suite, both on the installed copy.

use std::path::Path;
use std::process::{Command, Output};

use super::{expected_route, lib_dir, repo_root};
use crate::support::Server;

/// The first ```python block after the README's "### The Python package".
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split_once("### The Python package")
        .expect("README has the Python package section")
        .1;
    let block = section
        .split_once("```python\n")
        .expect("the section has a python block")
        .1;
    block
        .split_once("```")
        .expect("the block is closed")
        .0
        .to_string()
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn succeed(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A Python of the virtual environment, run from `cwd` (outside the source tree, so
/// `import concordkv_topology` finds the installed package) without the loader's
/// environment override.
fn venv_python(venv: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.current_dir(cwd)
        .env_remove("CONCORDKV_TOPOLOGY_LIB")
        .env_remove("PYTHONPATH");
    cmd
}

#[test]
fn pip_installed_package_runs_the_readme_example_and_its_tests_against_a_real_server() {
    let server = Server::start(&["--dev"]);
    let root = repo_root();
    let temp = tempfile::tempdir().expect("temp dir");
    let venv = temp.path().join("venv");
    succeed(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (.ci/run installs python3-venv where it is missing)",
    );
    succeed(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(root.join("bindings/python"))
            .env(
                "CONCORDKV_TOPOLOGY_PREBUILT_LIB",
                lib_dir().join("libconcordkv_topology.so"),
            ),
        "pip install ./bindings/python",
    );

    // The installed copy, with its own library, is what gets imported.
    let out = succeed(
        venv_python(&venv, temp.path()).args([
            "-c",
            "import concordkv_topology as kv, concordkv_topology._native as n; \
             print(kv.__file__); print(n.find_library()); print(kv.version())",
        ]),
        "import the installed package",
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let package_dir = Path::new(&lines[0]).parent().expect("package dir");
    assert!(package_dir.starts_with(&venv), "{lines:?}");
    assert_eq!(
        Path::new(&lines[1]),
        package_dir.join("libconcordkv_topology.so"),
        "{lines:?}"
    );
    assert!(package_dir.join("py.typed").exists(), "{lines:?}");

    // The README's example, verbatim.
    let example = readme_example();
    let out = succeed(
        venv_python(&venv, temp.path())
            .args(["-c", &example])
            .env("CONCORD_SERVERS", server.client.to_string()),
        "the README's Python example",
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    for key in ["user:42", "order:7"] {
        let want = expected_route(&server, key.as_bytes());
        let line = format!(
            "{key} -> shard {} primary {} at {}",
            want.shard_id, want.primary, want.primary_address
        );
        assert!(printed.contains(&line), "want {line:?} in:\n{printed}");
    }

    // The package's unittest suite on the installed copy.
    let out = venv_python(&venv, temp.path())
        .args(["-B", "-m", "unittest", "discover", "-v", "-s"])
        .arg(root.join("bindings/python/tests"))
        .env("CONCORDKV_TEST_INSTALLED", "1")
        .env("CONCORDKV_TEST_SERVER", server.client.to_string())
        .output()
        .expect("run the unittest suite");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python tests failed:\n{report}");
    // Every test ran, none was skipped (the server tests skip without a server).
    assert!(report.contains("Ran 4 tests"), "{report}");
    assert!(report.trim_end().ends_with("OK"), "{report}");
}
