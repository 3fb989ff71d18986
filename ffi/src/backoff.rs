//! Jittered exponential backoff between attempts ("equal jitter": half the step is
//! fixed, half random), so that many clients losing the same server do not come back
//! in lockstep.

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The delay before the next attempt: `step = min(max, min * 2^attempt)`, then a
    /// value uniformly in `[step / 2, step]`.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let step = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let span = (step - half).as_nanos() as u64;
        half + Duration::from_nanos(self.rng.u64(..=span))
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    #[cfg(test)]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A per-client seed, so that clients started together do not back off in step
/// (fastrand's thread-local generator is seeded differently in every thread and
/// process, and advances with each call).
pub fn seed() -> u64 {
    fastrand::u64(..)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_maximum() {
        let mut b = Backoff::new(100 * MS, 1000 * MS, 7);
        let steps = [100, 200, 400, 800, 1000, 1000, 1000];
        for (i, step) in steps.into_iter().enumerate() {
            let d = b.next_delay();
            let step = step * MS;
            assert!(
                d >= step / 2 && d <= step,
                "attempt {i}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn jitter_spreads_clients_apart() {
        let delays: Vec<Duration> = (0..32)
            .map(|seed| Backoff::new(100 * MS, 10_000 * MS, seed).next_delay())
            .collect();
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 16,
            "jitter should differ by seed: {delays:?}"
        );
        assert!(delays.iter().all(|d| *d >= 50 * MS && *d <= 100 * MS));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(MS, Duration::from_secs(30), 1);
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO, 1);
        assert_eq!(zero.next_delay(), Duration::ZERO);
    }
}
