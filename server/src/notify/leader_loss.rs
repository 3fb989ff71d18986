//! The rule "SSE streams close when no leader is heard": once this server has heard
//! no leader (or, leading, no quorum) for longer than the election timeout, every
//! stream ends, so its subscriber reconnects to a server that still hears one.
//!
//! The control executor runs [`watch`] (and [`refresh`] on every Raft metrics change);
//! the streams ask [`lost`] and wake by [`closes_at`].

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::executor::Shared;
use crate::raft::RaftHandle;

/// Tells the executors, every heartbeat interval, whether this server still hears a
/// leader (silence makes no metrics change, so it takes a clock).
pub async fn watch(raft: Rc<RaftHandle>, shared: Arc<Shared>) {
    let tick = shared.config.raft.heartbeat_interval;
    loop {
        refresh(&raft, &shared);
        let asleep = Instant::now();
        glommio::timer::sleep(tick).await;
        let late = asleep.elapsed().saturating_sub(tick);
        if let Some(count) = shared.raft.record_tick(late, tick) {
            // Once per doubling: a storm makes many late ticks, the log keeps a few lines.
            if count.is_power_of_two() {
                tracing::warn!(
                    "executor 0 ran its {tick:?} tick {late:?} late ({count} late ticks so far): Raft's heartbeats wait behind other work the same way"
                );
            }
        }
    }
}

/// Records whether this server hears a leader now. Also called on every change of
/// Raft's metrics before the executors' view of the leader is updated, so that no
/// stream sees a leader named while the leaderless clock still runs (at start, the
/// clock runs from the process's start until a leader is first heard).
pub fn refresh(raft: &RaftHandle, shared: &Shared) {
    let limit = shared.config.raft.election_timeout_max;
    let reachable = raft.leader_silence().is_none_or(|silence| silence <= limit);
    if shared.raft.set_leader_reachable(reachable) {
        // Wake every executor's idle SSE streams so they see it and schedule their close.
        shared.hub.poke();
    }
}

/// True when streams must close: no leader heard for longer than the election timeout.
pub fn lost(shared: &Shared) -> bool {
    let limit = shared.config.raft.election_timeout_max;
    shared.raft.leaderless_for().is_some_and(|d| d > limit)
}

/// While no leader is heard: when the streams must close (an idle stream wakes then).
pub fn closes_at(shared: &Shared, now: Instant) -> Option<Instant> {
    let limit = shared.config.raft.election_timeout_max;
    let for_how_long = shared.raft.leaderless_for()?;
    Some(now + limit.saturating_sub(for_how_long) + Duration::from_millis(1))
}
