//! Free loopback ports for servers to bind later.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Lowest port handed out.
const LOW: u32 = 12_000;
/// How many ports above [`LOW`]: the range ends at 32000, below Linux's ephemeral range.
const SPAN: u32 = 20_000;

/// A free loopback port for a server to bind later.
///
/// Chosen below Linux's ephemeral range (32768+): a port taken from the ephemeral range
/// and released can be grabbed by any outgoing connection of a parallel test before the
/// server binds it. Ports here are only ever handed out by this function (a counter from
/// a per-process random start, so parallel test binaries rarely collide, each one
/// checked by a bind).
pub fn free_port() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| fastrand::u32(..SPAN));
    for _ in 0..SPAN {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A free loopback address ([`free_port`]).
pub fn free_addr() -> SocketAddr {
    loopback(free_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            assert!((12_000..32_000).contains(&port), "{port}");
            assert!(TcpListener::bind(loopback(port)).is_ok());
        }
    }
}
