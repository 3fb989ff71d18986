//! The monitor: runs on the control executor, probes while this server leads, and
//! commits each round's transitions through Raft as one change set.
//!
//! [`supervise`] follows Raft's metrics: on becoming leader (or a new term as leader)
//! it starts a [`Monitor`] with a fresh [`Tracker`]; on losing leadership it drops it,
//! which cancels the round in progress and every probe with it. A new leader's first
//! round starts at once, so every node's probe starts within one interval.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_model::{Command, HealthUpdate, Operation};
use glommio::sync::Semaphore;

use super::probe::{self, CheckResult, ProbeError, ProbeSettings};
use super::schedule::{self, Target};
use super::tracker::{truncate_error, Check, Outcome, Thresholds, Tracker};
use super::{probe_name, HealthHandle, HealthRoundError, ManualRequest, MANUAL_ROUNDS_QUEUED};
use crate::config::{HealthCheckConfig, ProbeKind};
use crate::executor::Shared;
use crate::net::allow::AllowList;
use crate::net::now_ms;
use crate::raft::RaftHandle;
use crate::service::{ErrorKind, ServiceError};
use concord_api::{NodeResult, RoundReport};

/// How often a change set refused because a node was removed meanwhile is retried
/// without the removed nodes.
const COMMIT_ATTEMPTS: usize = 3;

/// Starts and stops the monitor with this server's leadership, until Raft stops.
pub async fn supervise(raft: Rc<RaftHandle>, shared: Arc<Shared>, handle: HealthHandle) {
    let config = shared.config.topology.health_check.clone();
    if !config.enabled {
        return;
    }
    let mut watch = raft.watch();
    // The term the running monitor leads in, and the monitor (dropping it cancels it).
    let mut running: Option<(u64, glommio::Task<()>)> = None;
    loop {
        let view = watch.summary();
        let current_term = running.as_ref().map(|(term, _)| *term);
        let stale = !view.is_leader || current_term.is_some_and(|t| t != view.term);
        if stale && running.take().is_some() {
            handle.set(None);
            shared.probes.set_monitoring(false);
            tracing::info!(
                term = view.term,
                "health monitor stopped: leadership changed"
            );
        }
        if view.is_leader && running.is_none() {
            let (sender, requests) = async_channel::bounded(MANUAL_ROUNDS_QUEUED);
            handle.set(Some(sender));
            shared.probes.set_monitoring(true);
            tracing::info!(
                term = view.term,
                "health monitor started: this server leads"
            );
            let monitor = Monitor::new(raft.clone(), shared.clone(), &config);
            running = Some((view.term, glommio::spawn_local(monitor.run(requests))));
        }
        if !watch.changed().await {
            handle.set(None);
            shared.probes.set_monitoring(false);
            return;
        }
    }
}

/// One leadership term's prober.
struct Monitor {
    raft: Rc<RaftHandle>,
    shared: Arc<Shared>,
    tracker: Tracker,
    interval: Duration,
    default_probe: ProbeKind,
    settings: ProbeSettings,
    limit: Rc<Semaphore>,
    allowed: Rc<AllowList>,
    /// Nodes whose bad `probe` label was logged this term (once each, not every round).
    warned: HashSet<String>,
}

/// Where a manual round's report goes.
type ManualReply = tokio::sync::oneshot::Sender<Result<RoundReport, HealthRoundError>>;

/// What wakes the monitor up.
enum Wake {
    Tick,
    Manual(ManualRequest),
}

/// The probes of one round, finished.
struct Probed {
    target: Target,
    check: CheckResult,
    at_ms: u64,
}

impl Monitor {
    fn new(raft: Rc<RaftHandle>, shared: Arc<Shared>, config: &HealthCheckConfig) -> Monitor {
        Monitor {
            raft,
            shared,
            tracker: Tracker::new(Thresholds {
                failure: config.failure_threshold,
                success: config.success_threshold,
            }),
            interval: config.interval,
            default_probe: config.probe,
            settings: ProbeSettings {
                timeout: config.timeout,
                retry_count: config.retry_count,
            },
            limit: Rc::new(Semaphore::new(config.max_concurrent_probes as u64)),
            allowed: Rc::new(config.allowed_targets.clone()),
            warned: HashSet::new(),
        }
    }

    async fn run(mut self, requests: async_channel::Receiver<ManualRequest>) {
        self.catch_up().await;
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let wake = futures_lite::future::or(
                async {
                    glommio::timer::sleep(wait).await;
                    Wake::Tick
                },
                async {
                    match requests.recv().await {
                        Ok(request) => Wake::Manual(request),
                        // Only the supervisor drops the sender, right before it drops
                        // this monitor; until then, keep the periodic rounds going.
                        Err(_) => {
                            glommio::timer::sleep(wait).await;
                            Wake::Tick
                        }
                    }
                },
            )
            .await;
            match wake {
                // Its caller left while it was queued: nobody waits for this round.
                Wake::Manual(request) if request.reply.is_closed() => {}
                Wake::Manual(mut request) => {
                    let only = request.only.take();
                    let answer = self
                        .round(only.as_deref(), None, Some(&mut request.reply))
                        .await;
                    let _ = request.reply.send(answer);
                }
                Wake::Tick => {
                    let started = Instant::now();
                    let spread = schedule::spread(self.interval);
                    if let Err(e) = self.round(None, Some(spread), None).await {
                        tracing::warn!(error = %e, "health round not committed");
                    }
                    next = schedule::next_start(started, self.interval, Instant::now());
                }
            }
        }
    }

    /// Waits (bounded by one interval) until this server has applied everything the
    /// previous leader committed, so the first round is judged against the latest
    /// committed health rather than a stale copy.
    async fn catch_up(&self) {
        let Ok(index) = self.raft.read_index().await else {
            return;
        };
        let deadline = Instant::now() + self.interval;
        while self.shared.hub.latest().applied_index < index && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One round over every node (or `only`), spread over `spread` or all at once.
    /// A round asked for by `caller` is abandoned while it probes if the caller
    /// leaves (nothing is decided or committed before the probes finish).
    async fn round(
        &mut self,
        only: Option<&str>,
        spread: Option<Duration>,
        caller: Option<&mut ManualReply>,
    ) -> Result<RoundReport, HealthRoundError> {
        let started = Instant::now();
        let targets = {
            let published = self.shared.hub.latest();
            schedule::plan(published.state.node_map(), only, self.default_probe, spread)
        };
        if let (Some(id), true) = (only, targets.is_empty()) {
            return Err(HealthRoundError::UnknownNode(id.to_string()));
        }
        for t in &targets {
            if let Some(why) = &t.label_error {
                if self.warned.insert(t.node_id.clone()) {
                    tracing::warn!(node = %t.node_id, "{why}");
                }
            }
        }
        let probed = match caller {
            None => self.probe_all(targets).await,
            Some(reply) => {
                futures_lite::future::or(async { Some(self.probe_all(targets).await) }, async {
                    reply.closed().await;
                    None
                })
                .await
                .ok_or(HealthRoundError::Abandoned)?
            }
        };
        let failed = probed.iter().filter(|p| p.check.result.is_err()).count();
        self.shared
            .probes
            .round(now_ms(), started.elapsed(), probed.len(), failed);
        let checks: Vec<Check> = probed
            .iter()
            .map(|p| Check {
                node_id: p.target.node_id.clone(),
                outcome: Self::outcome(&p.check.result),
                at_ms: p.at_ms,
            })
            .collect();
        let mut by_id: HashMap<&str, &Probed> = probed
            .iter()
            .map(|p| (p.target.node_id.as_str(), p))
            .collect();
        // Judged against the state as it is now: nodes removed during the round drop out.
        let decision = {
            let published = self.shared.hub.latest();
            self.tracker.decide(published.state.node_map(), &checks)
        };
        for v in decision.verdicts.iter().filter(|v| v.health != v.previous) {
            let error = by_id
                .get(v.node_id.as_str())
                .and_then(|p| p.check.result.as_ref().err());
            tracing::info!(
                node = %v.node_id,
                from = %v.previous,
                to = %v.health,
                error = %error.map(ToString::to_string).unwrap_or_default(),
                "data node health changed"
            );
        }
        let (version, committed) = self
            .commit(decision.updates)
            .await
            .map_err(HealthRoundError::Commit)?;
        let results = decision
            .verdicts
            .into_iter()
            .filter_map(|v| {
                let p = by_id.remove(v.node_id.as_str())?;
                Some(NodeResult {
                    address: p.target.address.clone(),
                    probe: probe_name(p.target.kind),
                    passed: v.passed,
                    // The round's caller holds a write credential: the error as it is.
                    error: p
                        .check
                        .result
                        .as_ref()
                        .err()
                        .map(|e| truncate_error(&e.to_string())),
                    attempts: p.check.attempts,
                    latency_us: p.check.latency.as_micros() as u64,
                    previous_health: v.previous,
                    health: v.health,
                    failure_count: v.failure_count,
                    success_count: v.success_count,
                    last_seen: v.last_seen,
                    last_error: v.last_error,
                    committed: committed.contains(&v.node_id),
                    label_error: p.target.label_error.clone(),
                    node_id: v.node_id,
                })
            })
            .collect();
        Ok(RoundReport {
            version,
            updated: committed.len(),
            results,
        })
    }

    /// What the tracker judges (and the topology records) of one check. The topology
    /// holds only the failure's [`ProbeError::class`], in every mode: whoever may read
    /// it (anyone, without read tokens) must not learn addresses or OS errors from it.
    /// The probe's own words go to the round's caller (write scope) and the log.
    fn outcome(result: &Result<(), ProbeError>) -> Outcome {
        match result {
            Ok(()) => Outcome::Pass,
            Err(e @ ProbeError::NotAllowed { .. }) => Outcome::NotAllowed(e.class()),
            Err(e) => Outcome::Fail(e.class()),
        }
    }

    /// Probes every target, each at its offset, at most `max_concurrent_probes` at once.
    async fn probe_all(&self, targets: Vec<Target>) -> Vec<Probed> {
        let round_start = Instant::now();
        let tasks: Vec<glommio::Task<Probed>> = targets
            .into_iter()
            .map(|target| {
                let limit = self.limit.clone();
                let allowed = self.allowed.clone();
                let settings = self.settings;
                let metrics = self.shared.clone();
                glommio::spawn_local(async move {
                    let due = round_start + target.offset;
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        glommio::timer::sleep(wait).await;
                    }
                    // A closed semaphore cannot happen (it lives as long as the monitor);
                    // probing without a permit would still be correct, just unbounded.
                    let _permit = limit.acquire_permit(1).await.ok();
                    let check =
                        probe::check(&target.address, target.kind, settings, &allowed).await;
                    if check.attempts > 0 {
                        metrics.probes.probe(
                            target.kind == ProbeKind::Http,
                            check.result.is_ok(),
                            check.latency,
                        );
                    }
                    Probed {
                        target,
                        check,
                        at_ms: now_ms(),
                    }
                })
            })
            .collect();
        let mut probed = Vec::with_capacity(tasks.len());
        for task in tasks {
            probed.push(task.await);
        }
        probed
    }

    /// Commits `updates` as one change set. A change set naming a node removed
    /// meanwhile is refused whole (404), so it is retried without the removed nodes.
    /// Answers the version and the ids committed.
    async fn commit(
        &self,
        mut updates: Vec<HealthUpdate>,
    ) -> Result<(u64, HashSet<String>), ServiceError> {
        let timeout = self.shared.config.http.write_timeout;
        for _ in 0..COMMIT_ATTEMPTS {
            if updates.is_empty() {
                break;
            }
            let command = Command::single(
                now_ms(),
                Operation::SetHealth {
                    updates: updates.clone(),
                },
            );
            let outcome = futures_lite::future::or(self.raft.write(command), async {
                glommio::timer::sleep(timeout).await;
                Err(ServiceError::write_timeout(timeout))
            })
            .await;
            match outcome {
                Ok(version) => {
                    self.shared.probes.committed();
                    return Ok((version, updates.into_iter().map(|u| u.node_id).collect()));
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    let published = self.shared.hub.latest();
                    let before = updates.len();
                    updates.retain(|u| published.state.node(&u.node_id).is_some());
                    if updates.len() == before {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok((self.shared.hub.latest().version, HashSet::new()))
    }
}
