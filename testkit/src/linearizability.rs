//! Linearizability of a recorded history of the topology's version register, checked
//! by stateright's `LinearizabilityTester` against a sequential model of the register.
//!
//! The model ([`VersionRegister`]): an unconditional write moves the version from `v`
//! to `v + 1` and answers `v + 1`; a compare-and-set names the version it expects and
//! does the same when it matches, answering a conflict (state unchanged) otherwise; a
//! linearizable read answers `v`.
//!
//! Operations whose outcome is unknown (timeout, reset, 503) are recorded without a
//! return ([`Recorded::returned`] is `None`). The tester keeps such an operation *in
//! flight*: it may take effect at any point after its invocation, or never. stateright
//! allows one operation in flight per thread, so every client starts a fresh thread
//! (a new generation) after an indeterminate operation, as a crashed client would.
//! Definitely refused operations (4xx other than a CAS conflict, refused connections)
//! had no effect and are simply not recorded; reads without an answer are skipped.
//!
//! The search is exponential in the worst case, and every unknown outcome that never
//! applied can be placed anywhere or nowhere, so callers that can prove an operation
//! never applied (e.g. its unique data node is absent from the committed history)
//! should leave it out.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// An operation on the version register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// An unconditional single-change write (`PUT /api/topology/nodes/<id>`).
    Write,
    /// A write with `If-Match: "<expected>"`.
    Cas(u64),
    /// `GET /api/topology/version?consistency=linearizable`.
    Read,
}

/// What an operation answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// A write or CAS was applied and produced this version.
    Written(u64),
    /// A CAS was refused (409): the version was not the expected one.
    Conflict,
    /// A read saw this version.
    Read(u64),
}

/// The sequential specification: the register holding the topology version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionRegister {
    pub version: u64,
}

impl SequentialSpec for VersionRegister {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Write => {
                self.version += 1;
                Ret::Written(self.version)
            }
            Op::Cas(expected) if expected == self.version => {
                self.version += 1;
                Ret::Written(self.version)
            }
            Op::Cas(_) => Ret::Conflict,
            Op::Read => Ret::Read(self.version),
        }
    }
}

/// One operation as a client saw it, with wall-clock invocation and return times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The client (thread) that issued it; a client's operations never overlap.
    pub client: usize,
    pub op: Op,
    /// Taken just before the request was sent.
    pub invoked: Instant,
    /// When the answer was in, and what it said; `None` when the outcome is unknown.
    pub returned: Option<(Instant, Ret)>,
}

/// Why a history was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    #[error("the history is not linearizable: no order of its {operations} operations ({indeterminate} of unknown outcome) explains every answer")]
    NotLinearizable {
        operations: usize,
        indeterminate: usize,
    },
    #[error("malformed history (a client's operations overlap?): {0}")]
    Malformed(String),
}

/// A stateright thread: one generation of one client. Threads ending in an operation
/// of unknown outcome sort last, so the search tries completed operations first and
/// inserts an indeterminate one only where nothing completed fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Thread {
    ends_in_flight: bool,
    client: usize,
    generation: u32,
}

enum Event {
    Invoke(Op),
    Return(Ret),
}

/// Checks `history` (in any order) against the register starting at `initial`; on
/// success, returns one valid sequential order of the operations that took effect or
/// returned.
pub fn check(initial: u64, history: &[Recorded]) -> Result<Vec<(Op, Ret)>, Violation> {
    let mut events = timeline(history);
    // Real-time order. At equal instants invocations go first: overlapping operations
    // are concurrent, which only ever allows more orders (no false alarm).
    events.sort_by_key(|(at, _, event)| (*at, matches!(event, Event::Return(_))));
    let mut tester = LinearizabilityTester::new(VersionRegister { version: initial });
    for (_, thread, event) in events {
        let fed = match event {
            Event::Invoke(op) => tester.on_invoke(thread, op).map(|_| ()),
            Event::Return(ret) => tester.on_return(thread, ret).map(|_| ()),
        };
        fed.map_err(Violation::Malformed)?;
    }
    tester
        .serialized_history()
        .ok_or_else(|| Violation::NotLinearizable {
            operations: history.len(),
            indeterminate: history.iter().filter(|r| r.returned.is_none()).count(),
        })
}

/// Every invocation and return, attributed to its client's generation.
fn timeline(history: &[Recorded]) -> Vec<(Instant, Thread, Event)> {
    let mut by_client: BTreeMap<usize, Vec<&Recorded>> = BTreeMap::new();
    for recorded in history {
        by_client.entry(recorded.client).or_default().push(recorded);
    }
    let mut events = Vec::with_capacity(history.len() * 2);
    for (client, mut ops) in by_client {
        ops.sort_by_key(|r| r.invoked);
        let mut generation = 0;
        for r in ops {
            if r.op == Op::Read && r.returned.is_none() {
                // A read without an answer changed nothing and constrains nothing.
                continue;
            }
            let thread = Thread {
                ends_in_flight: false,
                client,
                generation,
            };
            events.push((r.invoked, thread, Event::Invoke(r.op)));
            match r.returned {
                Some((at, ret)) => events.push((at, thread, Event::Return(ret))),
                None => generation += 1,
            }
        }
    }
    // Mark the generations that end in flight (their last event is an invocation).
    let mut open: BTreeMap<(usize, u32), bool> = BTreeMap::new();
    for (_, thread, event) in &events {
        open.insert(
            (thread.client, thread.generation),
            matches!(event, Event::Invoke(_)),
        );
    }
    for (_, thread, _) in &mut events {
        thread.ends_in_flight = open[&(thread.client, thread.generation)];
    }
    events
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.returned {
            Some((at, ret)) => write!(
                f,
                "client {} {:?} -> {:?} ({:?})",
                self.client,
                self.op,
                ret,
                at.saturating_duration_since(self.invoked)
            ),
            None => write!(f, "client {} {:?} -> unknown", self.client, self.op),
        }
    }
}

#[cfg(test)]
#[path = "linearizability_test.rs"]
mod tests;
