//! A counted capacity shared across executors: connections on a port, operations
//! queued for the control executor. A place is taken before the work starts and given
//! back when its [`Place`] is dropped, so nothing but the holders changes the count.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// At most `max` places taken at once; refusals are counted.
#[derive(Debug)]
pub struct Capacity {
    max: usize,
    taken: AtomicUsize,
    refused: AtomicU64,
}

impl Capacity {
    pub fn new(max: usize) -> Arc<Capacity> {
        Arc::new(Capacity {
            max,
            taken: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// One place, or `None` (counted as a refusal) when all are taken.
    pub fn take(self: &Arc<Self>) -> Option<Place> {
        let before = self.taken.fetch_add(1, Ordering::Relaxed);
        // Constructed before the check, so a refused place is given back by `drop`.
        let place = Place(self.clone());
        if before >= self.max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(place)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Refusals since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One place in a [`Capacity`], given back on drop.
#[derive(Debug)]
pub struct Place(Arc<Capacity>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_max_and_refusals_counted() {
        let capacity = Capacity::new(2);
        let a = capacity.take().expect("first");
        let _b = capacity.take().expect("second");
        assert!(capacity.take().is_none());
        assert_eq!(capacity.refused(), 1);
        drop(a);
        assert!(capacity.take().is_some(), "a dropped place is given back");
    }
}
