//! `concord-topo` processes for tests and the harness: find the binary, build the
//! command line, spawn, wait until ready, kill (SIGKILL, like a crash) and restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::http::request_within;

/// The server binary, next to the running executable: `target/<profile>/` holds
/// `concord-topo`, the harness binary and, one level down in `deps/`, test binaries.
/// Cargo builds it for `cargo test --workspace` (the server package's own
/// integration tests need it) and for `cargo build --workspace`.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own executable path");
    let dir = exe.parent().expect("the executable lives in a directory");
    for candidate in [dir.join("concord-topo"), dir.join("../concord-topo")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "concord-topo not found next to {}: run `cargo test --workspace` or \
         `cargo build -p concord-topo` (with --release for a release harness) first",
        exe.display()
    )
}

/// The flags every server needs: identity, ports, data directory, executors.
pub fn serve_args(
    node_id: u64,
    client: SocketAddr,
    peer: SocketAddr,
    data_dir: &Path,
    executors: usize,
) -> Vec<String> {
    vec![
        "--node-id".into(),
        node_id.to_string(),
        "--client-addr".into(),
        client.to_string(),
        "--peer-addr".into(),
        peer.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--executors".into(),
        executors.to_string(),
    ]
}

/// The `--initial-cluster` value for members `(node id, advertised peer address)`.
pub fn initial_cluster(members: impl IntoIterator<Item = (u64, SocketAddr)>) -> String {
    members
        .into_iter()
        .map(|(id, peer)| format!("{id}={peer}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a server's standard error goes.
#[derive(Clone, Debug)]
pub enum Stderr {
    /// The test's own output (the test harness shows it on failure).
    Inherit,
    Null,
    /// A log file, truncated at each start (read it back after a failure).
    File(PathBuf),
}

/// One `concord-topo` process with its command line; killed on drop.
pub struct TopoProcess {
    bin: PathBuf,
    args: Vec<String>,
    rust_log: String,
    env: Vec<(String, String)>,
    stderr: Stderr,
    child: Option<Child>,
}

impl TopoProcess {
    /// Not started yet: `RUST_LOG=warn,openraft=error`, standard error inherited.
    pub fn new(bin: PathBuf, args: Vec<String>) -> TopoProcess {
        TopoProcess {
            bin,
            args,
            rust_log: "warn,openraft=error".into(),
            env: Vec::new(),
            stderr: Stderr::Inherit,
            child: None,
        }
    }

    pub fn rust_log(mut self, filter: &str) -> TopoProcess {
        self.rust_log = filter.to_string();
        self
    }

    /// Sets an environment variable of the process (e.g. `CONCORD_PEER_SECRET`).
    pub fn env(mut self, key: &str, value: &str) -> TopoProcess {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn stderr(mut self, to: Stderr) -> TopoProcess {
        self.stderr = to;
        self
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Starts the process (again, after [`TopoProcess::kill`]: same flags, so the
    /// same ports and data directory). Standard output is discarded.
    pub fn spawn(&mut self) {
        let stderr = match &self.stderr {
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Null => Stdio::null(),
            Stderr::File(path) => Stdio::from(
                std::fs::File::create(path)
                    .unwrap_or_else(|e| panic!("server log file {}: {e}", path.display())),
            ),
        };
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if the process was started and has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Polls `ready` every 50 ms; panics if the process exits or `limit` passes first.
    pub fn wait_until(&mut self, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                panic!("concord-topo exited during start-up ({what}): {status}");
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "concord-topo: {what} not within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `GET /readyz` on `client` answers 200 (see [`TopoProcess::wait_until`]).
    pub fn wait_ready(&mut self, client: SocketAddr, limit: Duration) {
        self.wait_until(limit, "/readyz answers 200", || {
            answers_200(client, "/readyz")
        });
    }

    /// SIGHUP: the server re-reads its credential files.
    pub fn signal_reload(&self) {
        self.signal(libc::SIGHUP, "HUP");
    }

    /// SIGSTOP: the process freezes (a long GC pause, a stalled VM) with its sockets
    /// open; peers see silence, not a closed connection.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP, "STOP");
    }

    /// SIGCONT after [`TopoProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT, "CONT");
    }

    /// Sends `signal` (named `SIG{name}` in messages). Panics if the process is not running.
    fn signal(&self, signal: libc::c_int, name: &str) {
        let Some(pid) = self.pid() else {
            panic!("SIG{name} to a process that is not running");
        };
        // SAFETY: a plain syscall; the pid is our own child, not yet reaped.
        let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(
            sent,
            0,
            "SIG{name} to {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// SIGKILL: no shutdown path runs, exactly like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TopoProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when `GET path` on `addr` answers 200 within 5 s.
pub fn answers_200(addr: SocketAddr, path: &str) -> bool {
    request_within(addr, "GET", path, &[], b"", Duration::from_secs(5))
        .is_ok_and(|r| r.status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::loopback;

    #[test]
    fn command_lines_name_every_member_and_flag() {
        let members = [(1, loopback(7001)), (2, loopback(7002))];
        assert_eq!(
            initial_cluster(members),
            "1=127.0.0.1:7001,2=127.0.0.1:7002"
        );
        let args = serve_args(3, loopback(1), loopback(2), Path::new("/d"), 2);
        assert_eq!(
            args.join(" "),
            "--node-id 3 --client-addr 127.0.0.1:1 --peer-addr 127.0.0.1:2 --data-dir /d --executors 2"
        );
    }
}
