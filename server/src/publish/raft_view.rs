//! [`RaftView`]: this server's view of Raft (term, leader, applied index, how long
//! no leader has been heard), mirrored into atomics by the control executor and read
//! by every serving executor without a round trip.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// This server's view of Raft, refreshed by the control executor on every metrics change.
pub struct RaftView {
    term: AtomicU64,
    leader: AtomicU64,
    is_leader: AtomicBool,
    applied_index: AtomicU64,
    /// Milliseconds since `epoch` when the leader was last lost; u64::MAX while one is
    /// known. 0 at creation: a server has heard no leader since it started.
    leaderless_since_ms: AtomicU64,
    /// When this view was created (the process's start, for the leaderless clock).
    epoch: std::time::Instant,
    /// Ticks of the control executor's clock that came over one interval late.
    late_ticks: AtomicU64,
    /// The latest any tick came, in milliseconds.
    late_max_ms: AtomicU64,
    /// Followers found to have lost log entries they had acknowledged (counted by the
    /// peer client, `raft::lost_log`).
    lost_logs: Arc<AtomicU64>,
}

impl Default for RaftView {
    fn default() -> Self {
        RaftView {
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            applied_index: AtomicU64::new(0),
            leaderless_since_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            late_ticks: AtomicU64::new(0),
            late_max_ms: AtomicU64::new(0),
            lost_logs: Arc::default(),
        }
    }
}

impl RaftView {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// How long this server has known no leader; `None` while it knows one.
    pub fn leaderless_for(&self) -> Option<std::time::Duration> {
        let since = self.leaderless_since_ms.load(Relaxed);
        (since != u64::MAX)
            .then(|| std::time::Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Records whether this server hears a leader (its own quorum, when it leads);
    /// losing it starts the clock of [`Self::leaderless_for`]. True when it was just lost.
    /// (What follows from it for SSE streams is `notify::leader_loss`'s rule.)
    pub fn set_leader_reachable(&self, reachable: bool) -> bool {
        if reachable {
            self.leaderless_since_ms.store(u64::MAX, Relaxed);
        } else if self.leaderless_since_ms.load(Relaxed) == u64::MAX {
            self.leaderless_since_ms.store(self.now_ms(), Relaxed);
            return true;
        }
        false
    }

    /// Records that the control executor's periodic tick (every `interval`) came
    /// `late`: Raft's heartbeats and votes wait the same way. The number of late
    /// ticks so far when this one was over an interval late, else `None`.
    pub fn record_tick(
        &self,
        late: std::time::Duration,
        interval: std::time::Duration,
    ) -> Option<u64> {
        self.late_max_ms.fetch_max(late.as_millis() as u64, Relaxed);
        (late > interval).then(|| self.late_ticks.fetch_add(1, Relaxed) + 1)
    }

    /// Ticks over one interval late, and the latest any tick came (ms).
    pub fn tick_lateness(&self) -> (u64, u64) {
        (
            self.late_ticks.load(Relaxed),
            self.late_max_ms.load(Relaxed),
        )
    }

    /// The counter the peer client adds to when a follower lost acknowledged entries.
    pub fn lost_log_counter(&self) -> Arc<AtomicU64> {
        self.lost_logs.clone()
    }

    /// Followers found to have lost acknowledged entries, once per peer and term.
    pub fn lost_logs(&self) -> u64 {
        self.lost_logs.load(Relaxed)
    }

    pub fn update(&self, term: u64, leader: Option<u64>, is_leader: bool, applied_index: u64) {
        self.term.store(term, Relaxed);
        self.leader.store(leader.unwrap_or(0), Relaxed);
        self.is_leader.store(is_leader, Relaxed);
        self.applied_index.store(applied_index, Relaxed);
    }

    pub fn term(&self) -> u64 {
        self.term.load(Relaxed)
    }

    /// 0 when no leader is known.
    pub fn leader(&self) -> u64 {
        self.leader.load(Relaxed)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Relaxed)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::RaftView;
    use std::time::Duration;

    #[test]
    fn the_leaderless_clock_runs_from_creation_until_a_leader_is_heard() {
        let view = RaftView::default();
        std::thread::sleep(Duration::from_millis(30));
        // Not from the first time someone asks: that would let a late first
        // observation of the leader look like a loss to streams opened meanwhile.
        assert!(view.leaderless_for().expect("no leader yet") >= Duration::from_millis(30));
        assert!(!view.set_leader_reachable(true));
        assert_eq!(view.leaderless_for(), None);
        assert!(view.set_leader_reachable(false), "just lost");
        assert!(view.leaderless_for().expect("lost") < Duration::from_secs(5));
        assert!(
            !view.set_leader_reachable(false),
            "still lost, not lost again"
        );
    }

    #[test]
    fn a_tick_over_one_interval_late_is_counted_and_the_latest_kept() {
        let view = RaftView::default();
        let interval = Duration::from_millis(50);
        assert_eq!(view.record_tick(Duration::from_millis(20), interval), None);
        assert_eq!(view.tick_lateness(), (0, 20));
        assert_eq!(
            view.record_tick(Duration::from_millis(480), interval),
            Some(1)
        );
        assert_eq!(
            view.record_tick(Duration::from_millis(60), interval),
            Some(2)
        );
        assert_eq!(view.tick_lateness(), (2, 480));
    }
}
