//! Jittered exponential backoff between attempts ("equal jitter": half the step is
//! fixed, half random), so that many clients losing the same server do not come back
//! in lockstep.

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: SplitMix64(seed),
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
        let jitter = if span == 0 {
            0
        } else {
            self.rng.next() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
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

/// A tiny, good-enough PRNG for jitter (not for anything secret).
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A per-client seed: the clock and the address of a local, so that two clients
/// started in the same process at the same instant still differ.
pub fn seed() -> u64 {
    let local = 0u8;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ ((&local as *const u8 as u64).rotate_left(32))
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
