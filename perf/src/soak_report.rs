//! The verdicts of `perf soak` and its report.
//!
//! - **Lost**: every acknowledged write's tag must be in the committed history (the
//!   events every server serves) at the version its answer gave, and every server's
//!   data nodes at the end must carry the tag of the last committed write to them.
//! - **Linearizability**: writes, CAS and linearizable reads, checked by
//!   `concord_testkit::linearizability` in windows. A write of unknown outcome whose
//!   tag was never committed had no effect and is left out; one committed at
//!   version `v` is recorded as answering `v` at the first moment any answer showed a
//!   version of at least `v` (it had surely applied by then: later is only looser). Every
//!   operation then has an interval, and the history is cut where no operation is in
//!   flight; each window is checked from the register value the previous one ended at.
//! - **SSE**: per router, gaps, duplicates and reorders (a `Reset` resyncs), and
//!   whether it reached the final version.
//! - **Resources**: RSS and open descriptors of each server, the first vs the last
//!   10 % of the run; for a process that lived through the whole run, its steady state
//!   (20-30 % of the run, once the event ring and the Raft log between snapshots are
//!   full) vs the last 10 %: growth beyond [`GROWTH_LIMIT`] fails a run of at least
//!   [`GROWTH_RUN`] (shorter runs cannot tell growth from warm-up).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use concord_testkit::http::request_within;
use concord_testkit::linearizability::{self, Op, Recorded, Ret};
use concord_testkit::observations::{check_subscription, SseItem};
use serde_json::{json, Value};

use crate::report::{self, Series};
use crate::soak::{Injected, Member, Restarted, SoakArgs};
use crate::soak_clients::{Load, Observed, Sample, TAG_LABEL};

/// Operations a window holds at least before it may be cut.
const WINDOW_MIN: usize = 300;
/// What the checker may spend on one window before it counts as unchecked.
const CHECK_LIMIT: Duration = Duration::from_secs(120);
/// RSS growth of a whole-run process, steady state to the end, that fails the run:
/// a fraction of its steady RSS, plus an allowance for allocator noise.
const GROWTH_LIMIT: (f64, f64) = (0.10, 4.0 * 1048576.0);
/// The shortest run whose growth verdict counts, seconds.
const GROWTH_RUN: u64 = 600;

/// Whether the run kept every invariant.
pub struct Outcome {
    pub lost: usize,
    pub violations: usize,
    pub sse_broken: usize,
    /// Whole-run processes whose resources grew beyond the limit.
    pub grown: usize,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.lost + self.violations + self.sse_broken + self.grown > 0
    }
}

/// Every server's data nodes at the end with the write tag each carries (`None`: the
/// server did not answer).
pub struct Held(Vec<(u64, Option<Tags>)>);

/// Data node -> the write tag it carries.
type Tags = BTreeMap<String, Option<String>>;

pub fn read_back(members: &[Member]) -> Held {
    let one = |m: &Member| {
        let r = request_within(
            m.client,
            "GET",
            "/api/topology/nodes",
            &[],
            b"",
            Duration::from_secs(30),
        )
        .ok()?;
        let body = r.try_json().filter(|_| r.status == 200)?;
        let nodes = body["nodes"].as_array()?;
        Some(
            nodes
                .iter()
                .filter_map(|n| {
                    let tag = n["labels"][TAG_LABEL].as_str().map(str::to_string);
                    Some((n["nodeId"].as_str()?.to_string(), tag))
                })
                .collect(),
        )
    };
    Held(members.iter().map(|m| (m.id, one(m))).collect())
}

pub struct Inputs {
    pub initial: u64,
    pub final_version: u64,
    pub final_read: Recorded,
    pub load: Load,
    pub observed: Observed,
    pub held: Held,
    pub restarted: Restarted,
    pub faults: Vec<Injected>,
    pub elapsed: f64,
}

/// Acknowledged writes missing from the committed history (lost) or committed at
/// another version than answered (misplaced), and servers whose data nodes at the end
/// do not carry the last committed write (counted as lost: they hold an older state).
fn lost_writes(inputs: &Inputs) -> (usize, usize, Vec<String>) {
    let collected = &inputs.observed.collected;
    let (mut lost, mut misplaced, mut examples) = (0, 0, Vec::new());
    let mut note = |text: String| {
        if examples.len() < 10 {
            examples.push(text);
        }
    };
    for w in &inputs.load.writes {
        let Some((_, Ret::Written(v))) = w.recorded.returned else {
            continue;
        };
        match collected.committed.get(&w.tag) {
            None => {
                lost += 1;
                note(format!(
                    "{} (version {v}) is not in the committed history",
                    w.tag
                ));
            }
            Some(c) if *c != v => {
                misplaced += 1;
                note(format!("{} answered {v}, committed at {c}", w.tag));
            }
            Some(_) => {}
        }
    }
    for (server, nodes) in &inputs.held.0 {
        for (node, tag) in &collected.last_tag {
            let held = nodes.as_ref().and_then(|n| n.get(node)).cloned().flatten();
            if held.as_ref() != Some(tag) {
                lost += 1;
                note(format!(
                    "server {server} holds {node} as {held:?}, last committed {tag}"
                ));
            }
        }
    }
    (lost, misplaced, examples)
}

/// How the unknown outcomes were resolved.
#[derive(Default)]
struct Resolution {
    applied: usize,
    not_applied: usize,
    /// On a server at the end but not in the collected history: left out.
    unresolved: usize,
}

/// The history to check: every operation with an answer (see the module header).
fn history(inputs: &Inputs) -> (Vec<Recorded>, Resolution) {
    let committed = &inputs.observed.collected.committed;
    let anywhere = |tag: &str| {
        inputs.held.0.iter().any(|(_, n)| {
            n.as_ref()
                .is_some_and(|n| n.values().any(|t| t.as_deref() == Some(tag)))
        })
    };
    let mut done: Vec<Recorded> = inputs.load.reads.clone();
    done.push(inputs.final_read.clone());
    done.extend(
        inputs
            .load
            .writes
            .iter()
            .filter(|w| w.recorded.returned.is_some())
            .map(|w| w.recorded.clone()),
    );
    // (returned, version seen) of every answer, by time: when a version surely existed.
    let mut seen: Vec<(Instant, u64)> = done
        .iter()
        .filter_map(|r| match r.returned {
            Some((at, Ret::Written(v) | Ret::Read(v))) => Some((at, v)),
            _ => None,
        })
        .collect();
    seen.sort_unstable();
    // Suffix minimum of answer times over versions: the first answer showing >= v.
    let mut by_version: Vec<(u64, Instant)> = seen.iter().map(|(at, v)| (*v, *at)).collect();
    by_version.sort_unstable();
    for i in (0..by_version.len().saturating_sub(1)).rev() {
        by_version[i].1 = by_version[i].1.min(by_version[i + 1].1);
    }
    let surely_applied = |v: u64| {
        let i = by_version.partition_point(|(x, _)| *x < v);
        by_version.get(i).map(|(_, at)| *at)
    };
    let mut resolution = Resolution::default();
    let mut next_client = 1_000_000;
    for w in inputs
        .load
        .writes
        .iter()
        .filter(|w| w.recorded.returned.is_none())
    {
        match committed.get(&w.tag) {
            Some(&v) => {
                let Some(at) = surely_applied(v) else {
                    resolution.unresolved += 1;
                    continue;
                };
                resolution.applied += 1;
                // Its own client: its stretched interval may overlap its writer's next op.
                next_client += 1;
                done.push(Recorded {
                    client: next_client,
                    op: w.recorded.op,
                    invoked: w.recorded.invoked,
                    returned: Some((at.max(w.recorded.invoked), Ret::Written(v))),
                });
            }
            None if anywhere(&w.tag) => resolution.unresolved += 1,
            None => resolution.not_applied += 1,
        }
    }
    (done, resolution)
}

/// Cuts `ops` where nothing is in flight, into windows of at least [`WINDOW_MIN`].
fn windows(mut ops: Vec<Recorded>) -> Vec<Vec<Recorded>> {
    ops.sort_by_key(|r| r.invoked);
    let mut out = Vec::new();
    let mut current: Vec<Recorded> = Vec::new();
    let mut busy_until: Option<Instant> = None;
    for op in ops {
        let quiet = busy_until.is_some_and(|b| b < op.invoked);
        if quiet && current.len() >= WINDOW_MIN {
            out.push(std::mem::take(&mut current));
        }
        let ends = op.returned.map_or(op.invoked, |(at, _)| at);
        busy_until = Some(busy_until.map_or(ends, |b| b.max(ends)));
        current.push(op);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What the windowed check found.
#[derive(Default)]
struct Checked {
    windows: usize,
    violations: usize,
    unchecked: usize,
    largest: usize,
    seconds: f64,
    details: Vec<String>,
}

fn check_windows(initial: u64, windows: Vec<Vec<Recorded>>) -> Checked {
    let started = Instant::now();
    let mut checked = Checked {
        windows: windows.len(),
        ..Checked::default()
    };
    let mut value = initial;
    for (i, window) in windows.into_iter().enumerate() {
        checked.largest = checked.largest.max(window.len());
        let highest = window
            .iter()
            .filter_map(|r| match r.returned {
                Some((_, Ret::Written(v))) => Some(v),
                _ => None,
            })
            .max();
        let (tx, rx) = std::sync::mpsc::channel();
        let ops = window.clone();
        std::thread::spawn(move || {
            let _ = tx.send(linearizability::check(value, &ops));
        });
        match rx.recv_timeout(CHECK_LIMIT) {
            Ok(Ok(_)) => {}
            Ok(Err(violation)) => {
                checked.violations += 1;
                let mut ops: Vec<String> = window.iter().take(40).map(|r| r.to_string()).collect();
                ops.insert(0, format!("window {i} from version {value}: {violation}"));
                checked.details.push(ops.join("\n"));
            }
            Err(_) => {
                checked.unchecked += 1;
                checked.details.push(format!(
                    "window {i} ({} operations) not decided within {CHECK_LIMIT:?}",
                    window.len()
                ));
            }
        }
        value = value.max(highest.unwrap_or(value));
    }
    checked.seconds = started.elapsed().as_secs_f64();
    checked
}

/// Per router: (gaps, duplicates, reorders, ended at).
fn sse_counts(from: u64, items: &[SseItem]) -> (usize, usize, usize, u64) {
    let (mut gaps, mut dups, mut reorders, mut last) = (0, 0, 0, from);
    for item in items {
        match *item {
            SseItem::Resume { from } if from != last => gaps += 1,
            SseItem::Resume { .. } => {}
            SseItem::Event { version, completes } => {
                if version > last + 1 {
                    gaps += 1;
                } else if version == last {
                    dups += 1;
                } else if version < last {
                    reorders += 1;
                }
                if completes && version > last {
                    last = version;
                }
            }
            SseItem::Reset { version } if version < last => reorders += 1,
            SseItem::Reset { version } => last = version,
        }
    }
    (gaps, dups, reorders, last)
}

/// Mean RSS and descriptors of `server` over samples in `[from, to)` seconds.
fn mean(samples: &[Sample], server: u64, from: f64, to: f64) -> Option<(f64, f64)> {
    let picked: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.server == server && s.at >= from && s.at < to)
        .collect();
    let n = picked.len() as f64;
    (n > 0.0).then(|| {
        (
            picked.iter().map(|s| s.rss as f64).sum::<f64>() / n,
            picked.iter().map(|s| s.fds as f64).sum::<f64>() / n,
        )
    })
}

/// The steady state and the end of a server that ran as one process all along.
struct Growth {
    pid: u32,
    /// (steady, last 10 %) means.
    rss: (f64, f64),
    fds: (f64, f64),
}

fn growth(samples: &[Sample], server: u64, seconds: f64) -> Option<Growth> {
    let own: Vec<&Sample> = samples.iter().filter(|s| s.server == server).collect();
    let pid = own.first()?.pid;
    if own.iter().any(|s| s.pid != pid) {
        return None;
    }
    let steady = mean(samples, server, 0.2 * seconds, 0.3 * seconds)?;
    let last = mean(samples, server, 0.9 * seconds, f64::MAX)?;
    Some(Growth {
        pid,
        rss: (steady.0, last.0),
        fds: (steady.1, last.1),
    })
}

fn charts(out: &Path, inputs: &Inputs) {
    let samples = &inputs.observed.samples;
    let per_server = |f: fn(&Sample) -> f64| -> Vec<Series> {
        (1..=3)
            .map(|id| Series {
                label: format!("server {id}"),
                points: samples
                    .iter()
                    .filter(|s| s.server == id)
                    .map(|s| (s.at, f(s)))
                    .collect(),
            })
            .collect()
    };
    report::write_svg(
        &out.join("soak-rss.svg"),
        "soak: server RSS over time",
        "seconds",
        "RSS (MiB)",
        &per_server(|s| s.rss as f64 / 1048576.0),
    );
    report::write_svg(
        &out.join("soak-fds.svg"),
        "soak: open descriptors over time",
        "seconds",
        "descriptors",
        &per_server(|s| s.fds as f64),
    );
    let mut buckets: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (at, ok) in &inputs.load.ticks {
        let b = buckets.entry((*at / 10.0) as u64).or_default();
        b.0 += 1;
        b.1 += u64::from(*ok);
    }
    let points = buckets
        .iter()
        .map(|(b, (n, ok))| (*b as f64 * 10.0, 100.0 * *ok as f64 / *n as f64))
        .collect();
    report::write_svg(
        &out.join("soak-availability.svg"),
        "soak: writes answered within 1 s, per 10 s",
        "seconds",
        "% answered",
        &[Series {
            label: "writes".into(),
            points,
        }],
    );
}

pub fn report(args: &SoakArgs, out: &Path, inputs: Inputs) -> Outcome {
    let (lost, misplaced, lost_examples) = lost_writes(&inputs);
    let (ops, resolution) = history(&inputs);
    let checked_ops = ops.len();
    let checked = check_windows(inputs.initial, windows(ops));

    let mut routers = Vec::new();
    let mut sse_broken = 0;
    let (mut gaps, mut dups, mut reorders, mut behind, mut resets) = (0, 0, 0, 0, 0);
    for (i, (from, items)) in inputs.observed.routers.iter().enumerate() {
        let (g, d, r, last) = sse_counts(*from, items);
        let first_broken = check_subscription(i as u64, *from, items)
            .err()
            .map(|b| b.to_string());
        let ended_behind = last < inputs.final_version;
        gaps += g;
        dups += d;
        reorders += r;
        behind += usize::from(ended_behind);
        resets += items
            .iter()
            .filter(|i| matches!(i, SseItem::Reset { .. }))
            .count();
        if g + d + r > 0 || ended_behind || first_broken.is_some() {
            sse_broken += 1;
        }
        routers.push(
            json!({"router": i, "gaps": g, "duplicates": d, "reorders": r, "ended_at": last,
            "resumes": items.iter().filter(|i| matches!(i, SseItem::Resume { .. })).count(),
            "first_broken": first_broken}),
        );
    }

    let scheduled = inputs.load.ticks.len();
    let answered = inputs.load.ticks.iter().filter(|t| t.1).count();
    let availability = answered as f64 / scheduled.max(1) as f64;
    let acked = inputs
        .load
        .writes
        .iter()
        .filter(|w| matches!(w.recorded.returned, Some((_, Ret::Written(_)))))
        .count();
    let conflicts = inputs
        .load
        .writes
        .iter()
        .filter(|w| matches!(w.recorded.returned, Some((_, Ret::Conflict))))
        .count();
    let cas = inputs
        .load
        .writes
        .iter()
        .filter(|w| matches!(w.recorded.op, Op::Cas(_)))
        .count();

    // Samples cover the load phase only (the sampler stops with the writers).
    let load_seconds = args.duration as f64;
    let tenth = load_seconds / 10.0;
    let samples = &inputs.observed.samples;
    let mut resources = Vec::new();
    let mut resource_rows = Vec::new();
    for id in 1..=3 {
        let first = mean(samples, id, 0.0, tenth);
        let last = mean(samples, id, load_seconds - tenth, f64::MAX);
        if let (Some(a), Some(b)) = (first, last) {
            let mib = |x: f64| x / 1048576.0;
            resource_rows.push(format!(
                "server {id} first vs last 10 %: RSS {:.1} -> {:.1} MiB ({:+.1}), fds {:.0} -> {:.0} ({:+.0})",
                mib(a.0),
                mib(b.0),
                mib(b.0 - a.0),
                a.1,
                b.1,
                b.1 - a.1
            ));
            resources.push(
                json!({"server": id, "rss_first_bytes": a.0, "rss_last_bytes": b.0,
                "fds_first": a.1, "fds_last": b.1}),
            );
        }
    }
    let mut grown = 0;
    let mut whole_run = Vec::new();
    for id in 1..=3 {
        let Some(g) = growth(samples, id, load_seconds) else {
            continue;
        };
        let mib = |x: f64| x / 1048576.0;
        let too_much = g.rss.1 - g.rss.0 > GROWTH_LIMIT.0 * g.rss.0 + GROWTH_LIMIT.1;
        if too_much && args.duration >= GROWTH_RUN {
            grown += 1;
        }
        resource_rows.push(format!(
            "server {id} (one process, pid {}, the whole run) steady (20-30 %) vs last 10 %: RSS {:.1} -> {:.1} MiB ({:+.1}), fds {:.0} -> {:.0}{}",
            g.pid,
            mib(g.rss.0),
            mib(g.rss.1),
            mib(g.rss.1 - g.rss.0),
            g.fds.0,
            g.fds.1,
            if too_much { "  GREW" } else { "" }
        ));
        whole_run.push(json!({"server": id, "pid": g.pid, "rss_steady_bytes": g.rss.0,
            "rss_last_bytes": g.rss.1, "fds_steady": g.fds.0, "fds_last": g.fds.1, "grew": too_much}));
    }
    for (id, (rss_run, fds_run), (rss_fresh, fds_fresh)) in &inputs.restarted {
        let mib = |x: u64| x as f64 / 1048576.0;
        resource_rows.push(format!(
            "server {id} after the run vs restarted on its data: RSS {:.1} vs {:.1} MiB, fds {fds_run} vs {fds_fresh}",
            mib(*rss_run),
            mib(*rss_fresh)
        ));
    }
    let restarted: Vec<Value> = inputs
        .restarted
        .iter()
        .map(|(id, run, fresh)| {
            json!({"server": id, "rss_after_run_bytes": run.0, "fds_after_run": run.1,
            "rss_fresh_bytes": fresh.0, "fds_fresh": fresh.1})
        })
        .collect();
    let nodes_at_end = inputs
        .held
        .0
        .iter()
        .filter_map(|(_, n)| n.as_ref().map(|n| n.len()))
        .max()
        .unwrap_or(0);
    let mut fault_counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &inputs.faults {
        *fault_counts.entry(format!("{:?}", f.fault)).or_default() += 1;
    }

    let mut rows = vec![
        ("duration", format!("{} s of load ({:.0} s in all), {} routers, {} writes/s, {} reads/s", args.duration, inputs.elapsed, args.routers, args.write_rate, args.read_rate)),
        ("faults", format!("{} ({fault_counts:?})", inputs.faults.len())),
        ("availability", format!("{:.4} ({answered} of {scheduled} writes answered within 1 s)", availability)),
        ("writes", format!("{} sent ({cas} CAS): {acked} acknowledged, {conflicts} CAS conflicts, {} unknown ({} applied, {} not, {} unresolved)",
            inputs.load.writes.len(), resolution.applied + resolution.not_applied + resolution.unresolved,
            resolution.applied, resolution.not_applied, resolution.unresolved)),
        ("acknowledged writes lost", format!("{lost} (+{misplaced} at another version)")),
        ("linearizability", format!("{} violations, {} windows ({} undecided), {checked_ops} operations, largest window {}, {:.1} s",
            checked.violations, checked.windows, checked.unchecked, checked.largest, checked.seconds)),
        ("SSE", format!("{gaps} gaps, {dups} duplicates, {reorders} reorders, {behind} routers behind the final version, {resets} Resets")),
        ("versions", format!("{} -> {} ({} data nodes at the end)", inputs.initial, inputs.final_version, nodes_at_end)),
    ];
    for r in &resource_rows {
        rows.push(("resources", r.clone()));
    }
    if !inputs.load.unexpected.is_empty() {
        rows.push((
            "unexpected answers",
            format!(
                "{} e.g. {}",
                inputs.load.unexpected.len(),
                inputs.load.unexpected[0]
            ),
        ));
    }
    if inputs.observed.collected.history_gone > 0 {
        rows.push((
            "history collector",
            format!(
                "{} answers 410 (history dropped)",
                inputs.observed.collected.history_gone
            ),
        ));
    }
    report::print_table(
        "soak: 3 servers behind the partition proxy, faults on a schedule",
        &rows,
    );
    for d in lost_examples.iter().chain(&checked.details) {
        eprintln!("soak: {d}");
    }
    charts(out, &inputs);
    let faults: Vec<Value> = inputs
        .faults
        .iter()
        .map(|f| json!({"fault": format!("{:?}", f.fault), "server": f.server, "at_s": f.at, "healed_after_s": f.healed_after}))
        .collect();
    let violations = checked.violations + misplaced;
    report::write_json(
        out,
        "soak",
        json!({"scenario": "soak", "duration_s": args.duration, "elapsed_s": inputs.elapsed, "routers": args.routers,
            "write_rate": args.write_rate, "read_rate": args.read_rate, "fault_every_s": args.fault_every,
            "faults": faults, "fault_counts": fault_counts,
            "availability": availability, "writes_scheduled": scheduled, "writes_answered_within_1s": answered,
            "writes_sent": inputs.load.writes.len(), "acknowledged": acked, "cas_sent": cas, "cas_conflicts": conflicts,
            "unknown_applied": resolution.applied, "unknown_not_applied": resolution.not_applied,
            "unknown_unresolved": resolution.unresolved,
            "lost": lost, "misplaced": misplaced, "lost_examples": lost_examples,
            "linearizability": {"violations": checked.violations, "windows": checked.windows,
                "undecided": checked.unchecked, "operations": checked_ops, "largest_window": checked.largest,
                "check_seconds": checked.seconds, "details": checked.details},
            "sse": {"gaps": gaps, "duplicates": dups, "reorders": reorders, "behind": behind, "resets": resets,
                "broken_routers": sse_broken, "routers": routers},
            "initial_version": inputs.initial, "final_version": inputs.final_version, "nodes_at_end": nodes_at_end,
            "resources": resources, "whole_run": whole_run, "grown": grown, "fresh_restart": restarted, "unexpected": inputs.load.unexpected.len(),
            "history_gone": inputs.observed.collected.history_gone}),
    );
    Outcome {
        lost,
        violations,
        sse_broken,
        grown,
    }
}

#[cfg(test)]
#[path = "soak_report_test.rs"]
mod tests;
