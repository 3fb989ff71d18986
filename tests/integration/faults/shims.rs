//! Tools the fault tests build at run time: an LD_PRELOAD shim that delays
//! `fsync`/`fdatasync` (compiled with the system C compiler), and a tmpfs mount that
//! is unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The C source of the fsync delay shim: each `fsync`/`fdatasync` sleeps
/// `CONCORD_FSYNC_DELAY_MS` before calling the real one, and the first one says so
/// on standard error (so a test can tell the shim was loaded).
const SLOW_FSYNC_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void delay(void) {
    static int announced;
    const char *text = getenv("CONCORD_FSYNC_DELAY_MS");
    long ms = text ? atol(text) : 0;
    if (!__atomic_exchange_n(&announced, 1, __ATOMIC_SEQ_CST)) {
        const char *line = "concord-test slow-fsync shim: delaying fsync and fdatasync\n";
        ssize_t ignored = write(2, line, strlen(line));
        (void)ignored;
    }
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    delay();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    delay();
    return real(fd);
}
"#;

/// What the shim prints once per process.
pub const SLOW_FSYNC_ANNOUNCE: &str = "concord-test slow-fsync shim";

/// Compiles the fsync delay shim into `dir`; returns the library's path.
pub fn build_slow_fsync(dir: &Path) -> PathBuf {
    let source = dir.join("slow_fsync.c");
    let library = dir.join("libslowfsync.so");
    std::fs::write(&source, SLOW_FSYNC_C).expect("shim source");
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("the system C compiler `cc` runs");
    assert!(
        output.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    library
}

/// A tmpfs mounted for one test; unmounted (and its mount point removed) on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `dir`, or `None`
    /// (after saying why, loudly) when this process may not mount.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match output {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs at {} ({}): this test needs root",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let _ = std::fs::remove_dir(dir);
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}): this test needs root and mount(8)");
                let _ = std::fs::remove_dir(dir);
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process killed a moment ago may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
