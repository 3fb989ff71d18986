//! Resident memory that follows what the server holds, not its past peaks.
//!
//! glibc's malloc keeps freed chunks in its arenas and returns memory to the kernel
//! only from the top of a heap, so after a transient peak (a 16,384-shard bootstrap
//! frees ~11 MB of request, command and snapshot buffers; a burst of connections frees
//! their first-head buffers) RSS stays at the peak. And it gives every thread that
//! meets contention an arena of its own (up to 8 per core), each holding its own free
//! memory. Two measures, both measured in perf/README.md ("Memory"):
//!
//! - at most one arena per executor plus one ([`limit_arenas`]), unless the operator
//!   set `MALLOC_ARENA_MAX`;
//! - a thread that gives free pages back (`malloc_trim(0)`: whole free pages anywhere
//!   in the heaps, by `madvise`, not only at their top) whenever RSS has grown by
//!   [`TRIM_GROWTH`] since the last trim, checked every [`CHECK_EVERY`], and at least
//!   every [`TRIM_EVERY`] ([`spawn_trimmer`]). A trim of a 50 MB heap takes well
//!   under a millisecond; reading RSS is one small `/proc` read.
//!
//! Other allocators were tried: mimalloc held 83 MB idle where glibc with trimming
//! holds 41 MB, as it purges only when the thread that freed allocates again.

use std::time::{Duration, Instant};

/// How often RSS is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Growth since the last trim that triggers one.
const TRIM_GROWTH: u64 = 4 << 20;
/// The longest time between two trims.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Caps malloc's arenas at `executors + 1` (the executors and everything else).
/// Must run before the server starts its threads.
pub fn limit_arenas(executors: usize) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let arenas = libc::c_int::try_from(executors + 1).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a malloc tunable; no memory is touched.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) } != 1 {
        tracing::debug!(arenas, "malloc did not take M_ARENA_MAX");
    }
}

/// Gives free heap pages back to the kernel (see the module header), for the life of
/// the process, on a thread of its own.
pub fn spawn_trimmer() {
    let spawned = std::thread::Builder::new()
        .name("concord-trim".into())
        .spawn(|| {
            let mut after_last = resident_bytes();
            let mut last = Instant::now();
            loop {
                std::thread::sleep(CHECK_EVERY);
                let grown = resident_bytes().saturating_sub(after_last) >= TRIM_GROWTH;
                if grown || last.elapsed() >= TRIM_EVERY {
                    let started = Instant::now();
                    // SAFETY: malloc_trim only releases memory malloc holds free.
                    unsafe { libc::malloc_trim(0) };
                    after_last = resident_bytes();
                    last = Instant::now();
                    tracing::trace!(took = ?started.elapsed(), rss = after_last, "malloc_trim");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the memory trim thread: RSS keeps its peaks");
    }
}

/// This process's resident set, from `/proc/self/statm` (0 if unreadable).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}
