//! Rules for what the non-linearizable observers of a cluster may see, checked on a
//! recorded run: plain (follower) reads of the version and SSE subscriptions.
//!
//! - A plain read is served from one server's applied state, which only grows while
//!   that server runs: reads of one server incarnation that follow each other in real
//!   time never go backwards. No read is ahead of the writes sent before it returned.
//! - A subscription delivers each change set once, in version order, without gaps,
//!   or a `Reset` snapshot that moves it forward; a resume starts where it stopped.

use std::time::Instant;

/// One plain `GET /api/topology/version` (no consistency parameter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainRead {
    pub server: u64,
    /// Which process of that server answered (any label that differs between
    /// processes); `None` when unknown, e.g. the server restarted during the read.
    pub incarnation: Option<u32>,
    pub invoked: Instant,
    pub returned: Instant,
    pub version: u64,
}

/// A broken rule, with the observations that break it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Broken {
    #[error("server {server} went backwards: a read answered {earlier} and a later one {later}")]
    ReadWentBack {
        server: u64,
        earlier: u64,
        later: u64,
    },
    #[error("server {server} answered {version}, but at most {bound} versions could exist then")]
    ReadAhead {
        server: u64,
        version: u64,
        bound: u64,
    },
    #[error("subscriber {subscriber}: expected version {expected}, got {got} (after {after:?})")]
    StreamOutOfOrder {
        subscriber: u64,
        expected: u64,
        got: u64,
        after: Vec<SseItem>,
    },
    #[error("subscriber {subscriber}: a Reset to {reset} moved it back from {last}")]
    ResetWentBack {
        subscriber: u64,
        reset: u64,
        last: u64,
    },
    #[error("subscriber {subscriber} resumed from {resumed} while its last version was {last}")]
    ResumedElsewhere {
        subscriber: u64,
        resumed: u64,
        last: u64,
    },
}

/// Checks plain reads: per server incarnation, monotonic in real time; and never above
/// `initial` plus the number of writes sent (`write_invocations`) before the answer.
pub fn check_plain_reads(
    reads: &[PlainRead],
    initial: u64,
    write_invocations: &[Instant],
) -> Result<(), Broken> {
    let mut sent = write_invocations.to_vec();
    sent.sort_unstable();
    for read in reads {
        let bound = initial + sent.partition_point(|at| *at < read.returned) as u64;
        if read.version > bound {
            return Err(Broken::ReadAhead {
                server: read.server,
                version: read.version,
                bound,
            });
        }
    }
    let mut by_start: Vec<&PlainRead> = reads.iter().filter(|r| r.incarnation.is_some()).collect();
    by_start.sort_by_key(|r| r.invoked);
    for (i, later) in by_start.iter().enumerate() {
        let went_back = by_start[..i].iter().find(|earlier| {
            earlier.server == later.server
                && earlier.incarnation == later.incarnation
                && earlier.returned < later.invoked
                && earlier.version > later.version
        });
        if let Some(earlier) = went_back {
            return Err(Broken::ReadWentBack {
                server: later.server,
                earlier: earlier.version,
                later: later.version,
            });
        }
    }
    Ok(())
}

/// What a subscriber saw, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// A (re)connection resuming after `from` (`Last-Event-ID`).
    Resume { from: u64 },
    /// A topology event of change set `version`; `completes` when it carried the `id:`.
    Event { version: u64, completes: bool },
    /// A `Reset` snapshot at `version`.
    Reset { version: u64 },
}

impl SseItem {
    /// What a subscriber records for `event`: `None` for `Progress` and for events
    /// without a JSON object carrying a version (nothing to check). Panics when the
    /// data starts like a JSON object but is not one (a corrupt stream).
    pub fn from_event(event: &crate::SseEvent) -> Option<SseItem> {
        if !event.data.starts_with('{') {
            return None;
        }
        let version = event.json()["version"].as_u64()?;
        match event.event.as_str() {
            "Progress" => None,
            "Reset" => Some(SseItem::Reset { version }),
            _ => Some(SseItem::Event {
                version,
                completes: event.id.is_some(),
            }),
        }
    }

    /// The version a subscriber has completed after this item, if it moves it.
    pub fn completed(&self) -> Option<u64> {
        match *self {
            SseItem::Reset { version }
            | SseItem::Event {
                version,
                completes: true,
            } => Some(version),
            _ => None,
        }
    }
}

/// Checks one subscriber's items, starting after version `from`; returns the last
/// version it completed.
pub fn check_subscription(subscriber: u64, from: u64, items: &[SseItem]) -> Result<u64, Broken> {
    let mut last = from;
    for (i, item) in items.iter().enumerate() {
        match *item {
            SseItem::Resume { from } if from != last => {
                return Err(Broken::ResumedElsewhere {
                    subscriber,
                    resumed: from,
                    last,
                })
            }
            SseItem::Resume { .. } => {}
            SseItem::Event { version, completes } => {
                if version != last + 1 {
                    return Err(Broken::StreamOutOfOrder {
                        subscriber,
                        expected: last + 1,
                        got: version,
                        after: items[i.saturating_sub(5)..i].to_vec(),
                    });
                }
                if completes {
                    last = version;
                }
            }
            SseItem::Reset { version } if version < last => {
                return Err(Broken::ResetWentBack {
                    subscriber,
                    reset: version,
                    last,
                })
            }
            SseItem::Reset { version } => last = version,
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read(start: &Instant, server: u64, from: u64, to: u64, version: u64) -> PlainRead {
        PlainRead {
            server,
            incarnation: Some(0),
            invoked: *start + Duration::from_millis(from),
            returned: *start + Duration::from_millis(to),
            version,
        }
    }

    #[test]
    fn plain_reads_may_lag_but_never_go_back_or_run_ahead() {
        let t = Instant::now();
        let writes = [t, t + Duration::from_millis(5)];
        // Server 2 lags behind server 1: fine.
        let ok = [
            read(&t, 1, 0, 6, 2),
            read(&t, 2, 7, 8, 1),
            read(&t, 2, 9, 10, 2),
        ];
        assert_eq!(check_plain_reads(&ok, 0, &writes), Ok(()));
        // The same server going back.
        let back = [read(&t, 1, 0, 6, 2), read(&t, 1, 7, 8, 1)];
        assert!(matches!(
            check_plain_reads(&back, 0, &writes),
            Err(Broken::ReadWentBack { .. })
        ));
        // ... unless it restarted in between.
        let mut restarted = back.clone();
        restarted[1].incarnation = Some(1);
        assert_eq!(check_plain_reads(&restarted, 0, &writes), Ok(()));
        // A version no write sent so far could have produced.
        let ahead = [read(&t, 1, 0, 3, 2)];
        assert!(matches!(
            check_plain_reads(&ahead, 0, &writes),
            Err(Broken::ReadAhead { bound: 1, .. })
        ));
    }

    #[test]
    fn a_subscription_is_gap_free_duplicate_free_and_ordered() {
        use SseItem::*;
        let ev = |version| Event {
            version,
            completes: true,
        };
        let good = [
            ev(4),
            Event {
                version: 5,
                completes: false,
            },
            ev(5),
            Resume { from: 5 },
            ev(6),
            Resume { from: 6 },
            Reset { version: 9 },
            ev(10),
        ];
        assert_eq!(check_subscription(1, 3, &good), Ok(10));
        let gap = [ev(4), ev(6)];
        assert!(matches!(
            check_subscription(1, 3, &gap),
            Err(Broken::StreamOutOfOrder { expected: 5, .. })
        ));
        let duplicate = [ev(4), ev(4)];
        assert!(check_subscription(1, 3, &duplicate).is_err());
        let reordered = [ev(5), ev(4)];
        assert!(check_subscription(1, 3, &reordered).is_err());
        let back = [ev(4), Reset { version: 2 }];
        assert!(matches!(
            check_subscription(1, 3, &back),
            Err(Broken::ResetWentBack { .. })
        ));
    }

    #[test]
    fn sse_events_become_items_and_progress_is_skipped() {
        let event = |name: &str, id: Option<&str>, data: &str| crate::SseEvent {
            event: name.to_string(),
            id: id.map(str::to_string),
            data: data.to_string(),
        };
        let join = event("NodeJoin", Some("7"), r#"{"version":7}"#);
        let item = SseItem::from_event(&join);
        assert_eq!(
            item,
            Some(SseItem::Event {
                version: 7,
                completes: true
            })
        );
        assert_eq!(item.unwrap().completed(), Some(7));
        let partial = SseItem::from_event(&event("ShardMove", None, r#"{"version":8}"#));
        assert_eq!(partial.unwrap().completed(), None);
        let reset = SseItem::from_event(&event("Reset", Some("9"), r#"{"version":9}"#));
        assert_eq!(reset, Some(SseItem::Reset { version: 9 }));
        assert_eq!(
            SseItem::from_event(&event("Progress", Some("9"), r#"{"version":9}"#)),
            None
        );
        assert_eq!(SseItem::from_event(&event("message", None, "hello")), None);
    }
}
