//! Pure planning of a round: which nodes are probed, with which probe, and when
//! each probe starts within the round.
//!
//! Jitter: every node gets a fixed offset in `[0, interval / 2)` from a hash of its id,
//! so 1,000 nodes are spread over half the interval instead of being probed in
//! lockstep, and each node is still probed once per `interval` (its offset does not
//! move between rounds). Half the interval, not all of it, leaves the other half for
//! the slowest checks (`timeout × (retry_count + 1)`) before the next round starts.

use std::time::{Duration, Instant};

use concord_model::{NodeMap, NodeStatus};

use crate::config::ProbeKind;

/// The node label that overrides the configured probe for one node: `probe: http` or
/// `probe: tcp`.
pub const PROBE_LABEL: &str = "probe";

/// One node to probe in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub node_id: String,
    pub address: String,
    pub kind: ProbeKind,
    /// When its probe starts, counted from the start of the round.
    pub offset: Duration,
    /// Set when the node's `probe` label is not `http` or `tcp` (the default is used).
    pub label_error: Option<String>,
}

/// The probe for `node`: its `probe` label, else `default`. A bad label falls back to
/// the default rather than failing the node: a typo in a label must not take a
/// healthy node out of service.
pub fn probe_kind(node: &NodeStatus, default: ProbeKind) -> (ProbeKind, Option<String>) {
    match node.labels.get(PROBE_LABEL).map(|v| v.trim()) {
        None => (default, None),
        Some(v) if v.eq_ignore_ascii_case("http") => (ProbeKind::Http, None),
        Some(v) if v.eq_ignore_ascii_case("tcp") => (ProbeKind::Tcp, None),
        Some(v) => (
            default,
            Some(format!(
                "label `{PROBE_LABEL}: {v}` is neither `http` nor `tcp`; the configured probe is used"
            )),
        ),
    }
}

/// The window over which a periodic round spreads its probes.
pub fn spread(interval: Duration) -> Duration {
    interval / 2
}

/// The fixed offset of `node_id` inside `spread` (FNV-1a of the id: stable across
/// rounds, leaders and restarts, evenly spread over many ids).
pub fn offset(node_id: &str, spread: Duration) -> Duration {
    let micros = spread.as_micros() as u64;
    if micros == 0 {
        return Duration::ZERO;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; fold the high half in.
    hash ^= hash >> 32;
    Duration::from_micros(hash % micros)
}

/// The targets of a round: every node of `nodes`, or only `only`; spread over `spread`
/// (a periodic round) or all at once (`None`: a manual round answers as soon as it can).
/// Ordered by offset, so probes are started in the order they are due.
pub fn plan(
    nodes: &NodeMap,
    only: Option<&str>,
    default: ProbeKind,
    spread: Option<Duration>,
) -> Vec<Target> {
    let mut targets: Vec<Target> = nodes
        .values()
        .filter(|n| only.is_none_or(|id| n.node_id == id))
        .map(|n| {
            let (kind, label_error) = probe_kind(n, default);
            Target {
                node_id: n.node_id.clone(),
                address: n.address.clone(),
                kind,
                offset: spread.map_or(Duration::ZERO, |s| offset(&n.node_id, s)),
                label_error,
            }
        })
        .collect();
    targets.sort_by(|a, b| a.offset.cmp(&b.offset).then(a.node_id.cmp(&b.node_id)));
    targets
}

/// When the next periodic round starts: one interval after the previous start, or
/// right away when the previous round overran (rounds never overlap, and a slow round
/// does not cost a whole extra interval of detection time).
pub fn next_start(previous_start: Instant, interval: Duration, now: Instant) -> Instant {
    (previous_start + interval).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_model::{Command, Operation, TopologyState};

    fn nodes(specs: &[(&str, Option<&str>)]) -> TopologyState {
        let mut st = TopologyState::new(10);
        for (id, probe) in specs {
            let labels = probe.map(|p| [(PROBE_LABEL.to_string(), p.to_string())].into());
            st.apply(&Command::single(
                1,
                Operation::RegisterNode {
                    node_id: id.to_string(),
                    address: "127.0.0.1:1".into(),
                    labels,
                },
            ))
            .unwrap();
        }
        st
    }

    #[test]
    fn the_label_overrides_the_configured_probe() {
        let st = nodes(&[
            ("a", None),
            ("b", Some("tcp")),
            ("c", Some("HTTP")),
            ("d", Some("udp")),
        ]);
        let kinds: Vec<(ProbeKind, bool)> = plan(st.node_map(), None, ProbeKind::Http, None)
            .into_iter()
            .map(|t| (t.kind, t.label_error.is_some()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ProbeKind::Http, false),
                (ProbeKind::Tcp, false),
                (ProbeKind::Http, false),
                (ProbeKind::Http, true),
            ]
        );
        let st = nodes(&[("a", None), ("c", Some("http"))]);
        let kinds: Vec<ProbeKind> = plan(st.node_map(), None, ProbeKind::Tcp, None)
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(kinds, [ProbeKind::Tcp, ProbeKind::Http]);
    }

    #[test]
    fn a_filtered_plan_names_one_node_and_a_manual_one_has_no_offsets() {
        let st = nodes(&[("a", None), ("b", None)]);
        let one = plan(st.node_map(), Some("b"), ProbeKind::Http, None);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].node_id, "b");
        assert_eq!(one[0].offset, Duration::ZERO);
        assert!(plan(st.node_map(), Some("zz"), ProbeKind::Http, None).is_empty());
    }

    #[test]
    fn offsets_are_stable_inside_the_spread_and_spread_out() {
        let spread = Duration::from_millis(500);
        assert_eq!(offset("node-1", spread), offset("node-1", spread));
        assert_eq!(offset("node-1", Duration::ZERO), Duration::ZERO);
        // 1,000 nodes over 10 buckets of 50 ms: none nearly empty, none crowded.
        let mut buckets = [0usize; 10];
        for i in 0..1000 {
            let o = offset(&format!("node-{i}"), spread);
            assert!(o < spread);
            buckets[(o.as_millis() / 50) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (60..=140).contains(b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn a_periodic_plan_is_ordered_by_offset() {
        let specs: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
        let refs: Vec<(&str, Option<&str>)> = specs.iter().map(|s| (s.as_str(), None)).collect();
        let st = nodes(&refs);
        let p = plan(
            st.node_map(),
            None,
            ProbeKind::Tcp,
            Some(spread(Duration::from_secs(1))),
        );
        assert_eq!(p.len(), 50);
        assert!(p.windows(2).all(|w| w[0].offset <= w[1].offset));
        assert!(p.iter().all(|t| t.offset < Duration::from_millis(500)));
    }

    #[test]
    fn rounds_start_every_interval_or_right_after_an_overrun() {
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert_eq!(next_start(t0, i, t0 + Duration::from_millis(300)), t0 + i);
        let late = t0 + Duration::from_millis(1700);
        assert_eq!(next_start(t0, i, late), late);
    }
}
