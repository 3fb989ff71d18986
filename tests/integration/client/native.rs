//! The C ABI from real C and C++ programs: each is compiled with
//! `-Wall -Wextra -Werror -pedantic`, once plain (linked with the static library)
//! and once with AddressSanitizer + UndefinedBehaviorSanitizer (shared library,
//! leak checker on), then run against a real server. Their routes are compared with
//! the server's shard map, and a write made here must reach their callback.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{expected_route, lib_dir, repo_root, set_status, toggle_status};
use crate::support::Server;

/// Keys without spaces (the programs print them in space-separated lines).
const KEYS: [&str; 5] = ["user:1", "user:2", "order:77", "a", "zebra"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lang {
    C,
    Cpp,
}

/// Compiles `source` into a temp dir; `sanitize` adds ASan + UBSan.
pub(crate) fn compile(lang: Lang, source: &str, sanitize: bool, out_dir: &Path) -> PathBuf {
    let root = repo_root();
    let lib = lib_dir();
    let (compiler, std) = match lang {
        Lang::C => ("cc", "-std=c11"),
        Lang::Cpp => ("c++", "-std=c++17"),
    };
    let stem = Path::new(source)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = out_dir.join(format!(
        "{stem}-{}",
        if sanitize { "asan" } else { "plain" }
    ));
    let mut cmd = Command::new(compiler);
    cmd.args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("bindings/cpp").display()))
        .arg(root.join(source))
        .arg("-o")
        .arg(&out);
    if sanitize {
        cmd.args([
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ])
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lconcordkv_topology", "-lpthread"]);
    } else {
        cmd.arg(lib.join("libconcordkv_topology.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    }
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("{compiler} not runnable: {e}"));
    assert!(
        result.status.success(),
        "{compiler} failed on {source}:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Runs a test program: checks its routes at READY, writes a change, tells it the
/// version, and checks the change reached its callback and it exited cleanly.
fn run_protocol(program: &Path, server: &Server) {
    let mut child = Command::new(program)
        .arg(server.client.to_string())
        .args(KEYS)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=23",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test program starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines
        .last()
        .is_some_and(|l: &String| l.starts_with("READY"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{} gave no READY line; output {lines:?}; stderr:\n{}",
                    program.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    for (key, line) in KEYS
        .iter()
        .zip(lines.iter().filter(|l| l.starts_with("ROUTE")))
    {
        let fields: Vec<&str> = line.split(' ').collect();
        let want = expected_route(server, key.as_bytes());
        assert_eq!(fields[1], *key, "{line}");
        assert_eq!(fields[2], want.shard_id, "{line}");
        assert_eq!(fields[3], want.epoch.to_string(), "{line}");
        assert_eq!(fields[4], want.primary, "{line}");
        assert_eq!(fields[5], want.primary_address, "{line}");
        assert_eq!(fields[6..].to_vec(), want.replicas, "{line}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("ROUTE")).count(),
        KEYS.len()
    );

    let shard = expected_route(server, b"user:2").shard_id;
    let version = toggle_status(server, &shard);
    writeln!(child.stdin.as_mut().unwrap(), "WAIT {version}").unwrap();
    let out = child.wait_with_output().expect("the program ends");
    // The reader thread ends at EOF, after the program exited.
    lines.extend(rx.iter());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}): output {lines:?}\nstderr:\n{stderr}",
        program.display(),
        out.status
    );
    let wanted = format!("EVENT {version} ConfigChange {shard} -");
    assert!(lines.contains(&wanted), "no `{wanted}` in {lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("DONE"), "{lines:?}");
}

fn run_language(lang: Lang, source: &str) {
    let temp = tempfile::tempdir().unwrap();
    let plain = compile(lang, source, false, temp.path());
    let sanitized = compile(lang, source, true, temp.path());
    let server = Server::start(&["--dev"]);
    run_protocol(&plain, &server);
    run_protocol(&sanitized, &server);
}

#[test]
fn c_program_plain_and_under_asan_ubsan() {
    run_language(Lang::C, "bindings/tests/c/client_test.c");
}

#[test]
fn cpp_program_plain_and_under_asan_ubsan() {
    run_language(Lang::Cpp, "bindings/tests/cpp/client_test.cpp");
}

#[test]
fn each_header_compiles_alone() {
    let temp = tempfile::tempdir().unwrap();
    let root = repo_root();
    let cases = [
        ("c", "cc", "-std=c99", "concordkv_topology.h"),
        ("c", "cc", "-std=c11", "concordkv_topology.h"),
        ("cpp", "c++", "-std=c++17", "concordkv_topology.h"),
        ("cpp", "c++", "-std=c++17", "concordkv_topology.hpp"),
    ];
    for (ext, compiler, std, header) in cases {
        let source = temp.path().join(format!("alone.{ext}"));
        std::fs::write(
            &source,
            format!("#include \"{header}\"\nint concordkv_alone;\n"),
        )
        .unwrap();
        let out = Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
            ])
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-I{}", root.join("bindings/cpp").display()))
            .arg(&source)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{header} alone with {compiler} {std}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let root = repo_root();
    let header = std::fs::read_to_string(root.join("include/concordkv_topology.h")).unwrap();
    let macro_value = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        header
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} missing from the header"))
            .trim()
            .to_string()
    };
    let version = format!(
        "{}.{}.{}",
        macro_value("CONCORDKV_TOPOLOGY_VERSION_MAJOR"),
        macro_value("CONCORDKV_TOPOLOGY_VERSION_MINOR"),
        macro_value("CONCORDKV_TOPOLOGY_VERSION_PATCH")
    );
    // The ffi crate takes the workspace version.
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let in_cargo = cargo
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.trim().strip_prefix("version = "))
        .expect("workspace.package.version")
        .trim_matches('"');
    assert_eq!(version, in_cargo);
    let ffi = std::fs::read_to_string(root.join("ffi/Cargo.toml")).unwrap();
    assert!(ffi.contains("version.workspace = true"));
}

#[test]
fn example_routes_keys_and_prints_changes() {
    let temp = tempfile::tempdir().unwrap();
    let program = compile(Lang::C, "bindings/examples/route.c", false, temp.path());
    let server = Server::start(&["--dev"]);
    let child = Command::new(&program)
        .args(["-w", "4"])
        .arg(server.client.to_string())
        .args(["user:1", "zebra"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it route and subscribe, then change the shard of "zebra".
    std::thread::sleep(Duration::from_millis(1500));
    let shard = expected_route(&server, b"zebra").shard_id;
    let version = set_status(&server, &shard, "offline");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = expected_route(&server, b"user:1");
    assert!(
        text.contains(&format!(
            "user:1 -> {} (epoch {}",
            want.shard_id, want.epoch
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "change: version {version} ConfigChange shard={shard}"
        )),
        "{text}"
    );
}
