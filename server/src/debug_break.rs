//! Faults a test can switch on to break a server on purpose, so the suite can show
//! that its checks fail on a broken server. Compiled into debug builds only: a
//! release binary has neither this module nor its call sites.
//!
//! `CONCORD_DEBUG_BREAK` names the break (read once, at first use):
//! - `stale-linearizable-reads`: `?consistency=linearizable` reads skip the Raft
//!   read-index round and answer from this server's applied state, as a plain read
//!   does; a lagging follower or a deposed leader then answers stale versions.

use std::sync::OnceLock;

/// The environment variable naming the break.
pub const ENV: &str = "CONCORD_DEBUG_BREAK";

/// A way to break the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    StaleLinearizableReads,
}

impl Break {
    fn parse(name: &str) -> Option<Break> {
        match name {
            "stale-linearizable-reads" => Some(Break::StaleLinearizableReads),
            _ => None,
        }
    }
}

/// The break switched on for this process, if any. An unknown name is logged and
/// ignored (the knob must never stop a server from starting).
pub fn active() -> Option<Break> {
    static ACTIVE: OnceLock<Option<Break>> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let name = std::env::var(ENV).ok()?;
        let found = Break::parse(&name);
        match found {
            Some(b) => tracing::warn!("{ENV}={name}: this server is broken on purpose ({b:?})"),
            None => tracing::warn!("{ENV}={name}: unknown break, ignored"),
        }
        found
    })
}

/// Whether `wanted` is switched on.
pub fn is(wanted: Break) -> bool {
    active() == Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_do_not() {
        assert_eq!(
            Break::parse("stale-linearizable-reads"),
            Some(Break::StaleLinearizableReads)
        );
        assert_eq!(Break::parse("ack-before-fsync"), None);
        assert_eq!(Break::parse(""), None);
    }
}
