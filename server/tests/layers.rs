//! The layering rule of `server/src`, checked on every test run.
//!
//! Each top-level module sits on a layer; a module may import (`crate::x`) only from
//! its own layer or below, and `crate::http` (the client front) only from the process
//! wiring. A new top-level module must be added to [`LAYERS`] before it builds green.

use std::path::{Path, PathBuf};

/// Top-level modules of `concord_topo`, lowest layer first.
///
/// 0. ground floor: socket/HTTP adapters and clock (`net`), configuration, metrics;
/// 1. what the control executor hands the serving executors (`publish`) and the
///    vocabulary of the service boundary (`service`);
/// 2. Raft (`raft`) and what the serving executors share (`executor`);
/// 3. the control side built on Raft (`node_health`, `dispatch`) and SSE
///    subscribers (`notify`);
/// 4. the client HTTP front (`http`);
/// 5. process wiring (`process`) and `restore` (its command line), and the binary.
const LAYERS: &[(&str, u8)] = &[
    ("net", 0),
    ("config", 0),
    ("config_test", 0),
    ("metrics", 0),
    ("debug_break", 0),
    ("publish", 1),
    ("service", 1),
    ("raft", 2),
    ("executor", 2),
    ("node_health", 3),
    ("dispatch", 3),
    ("notify", 3),
    ("http", 4),
    ("process", 5),
    ("restore", 5),
    ("main", 6),
];

/// The only module allowed to import the client HTTP front.
const WIRING: &str = "process";

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("server/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs`, which only declares).
fn owner(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib").then_some(name)
}

/// The top-level modules a line names after `crate::` (or `concord_topo::` in the binary).
fn imported(line: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Every import that breaks the rule, as `file:line: why`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let Some(module) = owner(src, &file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            bad.push(format!(
                "{}: module `{module}` has no layer in LAYERS",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("source is readable");
        let prefix = if module == "main" {
            "concord_topo::"
        } else {
            "crate::"
        };
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for target in imported(code, prefix) {
                if target == module {
                    continue;
                }
                let place = format!("{}:{}", file.display(), n + 1);
                match layer_of(&target) {
                    None => bad.push(format!("{place}: `{target}` has no layer in LAYERS")),
                    Some(l) if l > own => bad.push(format!(
                        "{place}: `{module}` (layer {own}) imports `{target}` (layer {l}) upwards"
                    )),
                    Some(_) if target == "http" && module != WIRING && module != "main" => bad
                        .push(format!(
                            "{place}: only `{WIRING}` may import `http`, not `{module}`"
                        )),
                    Some(_) => {}
                }
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_upwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_scanner_sees_plain_and_grouped_imports() {
    assert_eq!(
        imported("use crate::http::io::HyperIo;", "crate::"),
        ["http"]
    );
    assert_eq!(
        imported("use crate::{net, raft::wire};", "crate::"),
        ["net", "raft"]
    );
    assert_eq!(
        imported("let x = concord_topo::process::run(c);", "concord_topo::"),
        ["process"]
    );
    assert!(imported("use mycrate::http;", "crate::").is_empty());
}
