//! Pure health decisions: the outcomes of one round of checks plus the committed
//! [`NodeStatus`] of each node → each node's new state and the [`HealthUpdate`]s worth
//! committing. No I/O and no clock: times come in with the outcomes.
//!
//! The state machine:
//!
//! - `unknown` until the first check; the first pass makes a node `healthy`, the first
//!   failure `degraded` (there is no history of health to dampen);
//! - one failed check makes a `healthy` node `degraded`;
//! - `failure_threshold` consecutive failed checks make it `unhealthy`;
//! - `success_threshold` consecutive passes make a `degraded` or `unhealthy` node
//!   `healthy` again; fewer passes leave it where it is;
//! - a node whose address `allowed_targets` does not allow is never probed: it is
//!   (or becomes) `unknown`, with `lastError` saying why.
//!
//! What is committed, and why: a commit is a Raft round trip and a new topology version
//! that every subscriber receives, so a steady node never produces one. A node is
//! committed when its health changes, and while it is `degraded` when its consecutive
//! failure count changes (that count is what makes it `unhealthy`, and a new leader
//! continues from the committed value). Counts of an `unhealthy` node, pass streaks and
//! `lastSeen` of a steady node live only in the leader's memory ([`Tracker`]), so
//! `lastSeen` in the topology is the time of the last pass known when the node was last
//! committed. Each round yields at most one update per node.

use std::collections::{BTreeMap, HashMap};

use concord_model::{Health, HealthUpdate, NodeMap, NodeStatus, MAX_ERROR_LEN};

/// The two thresholds of `topology.health_check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failed checks that make a node unhealthy (≥ 1).
    pub failure: u32,
    /// Consecutive passed checks that make a degraded or unhealthy node healthy (≥ 1).
    pub success: u32,
}

/// The result of one check (all attempts of one node in one round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Why the check failed (the last attempt's error).
    Fail(String),
    /// The node was not probed: its address is outside the allow-list (why).
    NotAllowed(String),
}

/// One node's check in a round, finished at `at_ms` (wall clock, ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub node_id: String,
    pub outcome: Outcome,
    pub at_ms: u64,
}

/// What the leader remembers about one node between rounds (never replicated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Memory {
    /// Consecutive failed checks (keeps counting past the threshold).
    failures: u32,
    /// Consecutive passed checks.
    successes: u32,
    /// Time of the last pass, ms; 0 = never.
    last_seen: u64,
    last_error: Option<String>,
}

impl Memory {
    /// A node first seen by this leader starts from what the topology holds.
    fn from_committed(node: &NodeStatus) -> Memory {
        Memory {
            failures: node.failure_count,
            successes: 0,
            last_seen: node.last_seen,
            last_error: node.last_error.clone(),
        }
    }
}

/// One node's state after a round, as `POST /api/topology/health` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub node_id: String,
    pub passed: bool,
    /// This check's error, when it failed.
    pub error: Option<String>,
    /// Committed health before the round.
    pub previous: Health,
    /// Health after the round (what is committed when `update` is true).
    pub health: Health,
    pub failure_count: u32,
    pub success_count: u32,
    pub last_seen: u64,
    pub last_error: Option<String>,
    /// True when this round's decision includes an update of this node.
    pub update: bool,
}

/// The decision of one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// One verdict per checked node that still exists, ordered by node id.
    pub verdicts: Vec<Verdict>,
    /// What to commit, as one change set; empty when nothing changed.
    pub updates: Vec<HealthUpdate>,
}

/// The leader's health bookkeeping; one per leadership term (a new leader starts a new
/// tracker and continues from the committed state).
#[derive(Debug)]
pub struct Tracker {
    thresholds: Thresholds,
    memory: HashMap<String, Memory>,
}

/// Truncates an error message to the model's limit (counted in characters).
pub fn truncate_error(message: &str) -> String {
    if message.chars().count() <= MAX_ERROR_LEN {
        return message.to_string();
    }
    // Keep room for the ellipsis inside the limit.
    let keep = message
        .char_indices()
        .nth(MAX_ERROR_LEN - 1)
        .map_or(message.len(), |(i, _)| i);
    format!("{}…", &message[..keep])
}

impl Tracker {
    pub fn new(thresholds: Thresholds) -> Tracker {
        assert!(
            thresholds.failure >= 1 && thresholds.success >= 1,
            "thresholds are validated to be positive"
        );
        Tracker {
            thresholds,
            memory: HashMap::new(),
        }
    }

    /// Decides one round. `nodes` is the committed topology the round is judged
    /// against; checks of nodes it no longer holds are dropped (and forgotten), and
    /// so is the memory of every node it no longer holds. A node checked twice in
    /// one round counts once, with its last check.
    pub fn decide(&mut self, nodes: &NodeMap, checks: &[Check]) -> Decision {
        self.memory.retain(|id, _| nodes.contains_key(id));
        let mut last: BTreeMap<&str, &Check> = BTreeMap::new();
        for check in checks {
            last.insert(check.node_id.as_str(), check);
        }
        let mut decision = Decision::default();
        for (id, check) in last {
            let Some(committed) = nodes.get(id) else {
                continue;
            };
            let verdict = self.judge(committed, check);
            if verdict.update {
                decision.updates.push(HealthUpdate {
                    node_id: verdict.node_id.clone(),
                    health: verdict.health,
                    failure_count: verdict.failure_count,
                    last_seen: verdict.last_seen,
                    last_error: verdict.last_error.clone(),
                });
            }
            decision.verdicts.push(verdict);
        }
        decision
    }

    fn judge(&mut self, committed: &NodeStatus, check: &Check) -> Verdict {
        let t = self.thresholds;
        let previous = committed.health;
        let memory = self
            .memory
            .entry(committed.node_id.clone())
            .or_insert_with(|| Memory::from_committed(committed));
        // `unknown` is the state of a node no probe has reached (never probed, or kept
        // away by the allow-list), so any memory is of an earlier node with the same
        // id, or of probes that did not happen.
        if previous == Health::Unknown {
            *memory = Memory::from_committed(committed);
        }
        let health = match &check.outcome {
            Outcome::Pass => {
                memory.failures = 0;
                memory.successes = memory.successes.saturating_add(1);
                memory.last_seen = memory.last_seen.max(check.at_ms);
                match previous {
                    Health::Unknown | Health::Healthy => Health::Healthy,
                    Health::Degraded | Health::Unhealthy if memory.successes >= t.success => {
                        Health::Healthy
                    }
                    held => held,
                }
            }
            Outcome::Fail(error) => {
                memory.successes = 0;
                memory.failures = memory.failures.saturating_add(1);
                memory.last_error = Some(truncate_error(error));
                if memory.failures >= t.failure || previous == Health::Unhealthy {
                    Health::Unhealthy
                } else {
                    Health::Degraded
                }
            }
            Outcome::NotAllowed(why) => {
                memory.successes = 0;
                memory.failures = 0;
                memory.last_error = Some(truncate_error(why));
                Health::Unknown
            }
        };
        let update = health != previous
            || (health == Health::Degraded && memory.failures != committed.failure_count)
            || (health == Health::Unknown && memory.last_error != committed.last_error);
        let (passed, error) = match &check.outcome {
            Outcome::Pass => (true, None),
            Outcome::Fail(e) | Outcome::NotAllowed(e) => (false, Some(truncate_error(e))),
        };
        Verdict {
            node_id: committed.node_id.clone(),
            passed,
            error,
            previous,
            health,
            failure_count: memory.failures,
            success_count: memory.successes,
            last_seen: memory.last_seen,
            last_error: memory.last_error.clone(),
            update,
        }
    }
}

#[cfg(test)]
#[path = "tracker_test.rs"]
mod tests;
