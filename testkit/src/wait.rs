//! Bounded polling: every wait in a test ends, with what it waited for.

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` every 20 ms until it gives a value, or `limit` passes (then `None`,
/// after one last try).
pub fn poll_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(value) = probe() {
            return Some(value);
        }
        std::thread::sleep(POLL);
    }
    probe()
}

/// Polls `probe` until it gives a value; panics naming `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll_until(limit, probe)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for: {what}"))
}

/// Polls `condition` until it holds or `limit` passes; whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll_until(limit, || condition().then_some(())).is_some()
}
