//! The monitoring loop: bulk polls per backend, transitions, output collection, commits.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ganga_core::{
    Backend, BackendRef, JobId, JobRef, OutputsRequest, PollReport, RemoteStatus, RunState, Status,
    StoreError, Timestamp,
};

use crate::units::{Loaded, Unit, blocking, commit, load};
use crate::{Context, OpError, now};

/// How the monitor paces itself.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Time between cycles.
    pub interval: Duration,
    /// A unit left `submitting` with no backend id for this long was cut off mid-submit
    /// (the submitting process died); it is failed so it can be resubmitted.
    pub submit_grace: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            interval: Duration::from_secs(2),
            submit_grace: Duration::from_secs(600),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Jobs found active at the start.
    pub active_jobs: usize,
    /// Units asked about.
    pub polled: usize,
    /// Units whose status changed.
    pub changed: usize,
    /// Units that ended (completed, failed or killed) in this cycle.
    pub finished: usize,
    /// Problems met on the way (a backend that failed to answer, a conflict...); none of
    /// them changed a job.
    pub problems: Vec<String>,
}

/// When [`Monitor::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Only when `shutdown` completes.
    Stopped,
    /// When no job is active.
    Idle,
    /// When this job is no longer active.
    Finished(JobId),
}

/// Drives active jobs to the end.
pub struct Monitor {
    ctx: Context,
    settings: MonitorSettings,
    max_batch: Mutex<HashMap<String, usize>>,
}

/// A unit to poll: which loaded job, which unit, and how the backend knows it.
struct Target {
    job: usize,
    unit: Unit,
    backend_ref: BackendRef,
}

impl Monitor {
    pub fn new(ctx: Context, settings: MonitorSettings) -> Monitor {
        Monitor {
            ctx,
            settings,
            max_batch: Mutex::new(HashMap::new()),
        }
    }

    /// Runs cycles until `until` holds or `shutdown` completes, calling `on_cycle` after
    /// each. Problems within a cycle are logged and retried next cycle; only a store that
    /// cannot be read at all ends the loop with an error.
    pub async fn run(
        &self,
        until: Until,
        shutdown: impl Future<Output = ()>,
        mut on_cycle: impl FnMut(&CycleReport),
    ) -> Result<(), OpError> {
        tokio::pin!(shutdown);
        let mut store_failures = 0u32;
        loop {
            match self.cycle().await {
                Ok(report) => {
                    store_failures = 0;
                    for p in &report.problems {
                        tracing::warn!("{p}");
                    }
                    on_cycle(&report);
                }
                Err(e) => {
                    store_failures += 1;
                    tracing::warn!("monitoring cycle failed: {e}");
                    if store_failures >= 5 {
                        return Err(e);
                    }
                }
            }
            if self.reached(until).await? {
                return Ok(());
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    async fn reached(&self, until: Until) -> Result<bool, OpError> {
        let store = self.ctx.store.clone();
        match until {
            Until::Stopped => Ok(false),
            Until::Idle => Ok(blocking(move || store.active()).await??.is_empty()),
            Until::Finished(id) => {
                let job = blocking(move || store.job(id)).await??;
                Ok(job.is_none_or(|j| !j.status().is_active()))
            }
        }
    }

    /// One pass over every active job.
    pub async fn cycle(&self) -> Result<CycleReport, OpError> {
        let store = self.ctx.store.clone();
        let active = blocking(move || store.active()).await??;
        let mut by_backend: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
        for a in &active {
            by_backend.entry(a.backend.clone()).or_default().push(a.id);
        }
        self.forget_stale(&active).await?;
        let reports = futures_util::future::join_all(
            by_backend
                .into_iter()
                .map(|(name, ids)| async move { self.cycle_backend(&name, ids).await }),
        )
        .await;
        let mut total = CycleReport {
            active_jobs: active.len(),
            ..CycleReport::default()
        };
        for r in reports {
            total.polled += r.polled;
            total.changed += r.changed;
            total.finished += r.finished;
            total.problems.extend(r.problems);
        }
        Ok(total)
    }

    /// Forgets the copies held of jobs another process changed since they were read (the
    /// index of active jobs says each one's revision), so that they are read again.
    async fn forget_stale(&self, active: &[ganga_core::ActiveJob]) -> Result<(), OpError> {
        let cache = self.ctx.cache.clone();
        let active: Vec<(JobId, u64)> = active.iter().map(|a| (a.id, a.revision)).collect();
        blocking(move || -> Result<(), OpError> {
            for (id, revision) in active {
                if cache.job(id)?.is_some_and(|j| j.revision != revision) {
                    cache.forget(id);
                }
            }
            Ok(())
        })
        .await?
    }

    async fn max_batch(&self, name: &str, backend: &dyn Backend) -> usize {
        if let Some(&n) = self.lock_batches().get(name) {
            return n;
        }
        let n = match backend.describe().await {
            Ok(d) => d.max_batch.max(1) as usize,
            Err(_) => 100,
        };
        self.lock_batches().insert(name.to_owned(), n);
        n
    }

    fn lock_batches(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.max_batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn cycle_backend(&self, name: &str, ids: Vec<JobId>) -> CycleReport {
        let mut report = CycleReport::default();
        let backend = match self.ctx.backends.backend(name) {
            Ok(b) => b,
            Err(e) => {
                report
                    .problems
                    .push(format!("jobs on backend `{name}` are not monitored: {e}"));
                return report;
            }
        };
        let max_batch = self.max_batch(name, &*backend).await;

        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match load(&self.ctx, id).await {
                Ok(l) => jobs.push(l),
                // Removed since the index was read.
                Err(OpError::NoSuchJob(_)) => {}
                Err(e) => report.problems.push(e.to_string()),
            }
        }

        let now = now();
        let targets = self.targets(&mut jobs, now, &mut report);

        // Ask the backend about every target, in batches.
        let mut answers: HashMap<JobRef, PollReport> = HashMap::with_capacity(targets.len());
        for chunk in targets.chunks(max_batch) {
            let refs: Vec<BackendRef> = chunk.iter().map(|t| t.backend_ref.clone()).collect();
            report.polled += refs.len();
            match backend.poll(&refs).await {
                Ok(polled) => answers.extend(
                    polled
                        .into_iter()
                        .filter_map(|(job, answer)| answer.ok().map(|p| (job, p))),
                ),
                Err(e) => report.problems.push(format!(
                    "backend `{name}`: polling {} jobs failed (they stay as they are): {e}",
                    refs.len()
                )),
            }
        }

        // What the answers mean.
        let mut to_finalise: Vec<(usize, Unit, bool, BackendRef)> = Vec::new();
        for t in &targets {
            let Some(answer) = answers.get(&t.backend_ref.job) else {
                continue;
            };
            let l = &mut jobs[t.job];
            let before = l.status(t.unit);
            note_report(l.facts_mut(t.unit), answer);
            let outcome = match next_step(before, answer) {
                NextStep::Stay => Ok(()),
                NextStep::Become(status) => {
                    let at = match status {
                        Status::Running => answer.started.unwrap_or(now),
                        _ => now,
                    };
                    l.set_status(t.unit, status, at)
                }
                NextStep::Killed => {
                    l.set_status(t.unit, Status::Killed, answer.ended.unwrap_or(now))
                }
                NextStep::Finalise { succeeded } => {
                    to_finalise.push((t.job, t.unit, succeeded, t.backend_ref.clone()));
                    if before == Status::Completing {
                        Ok(())
                    } else {
                        l.set_status(t.unit, Status::Completing, answer.ended.unwrap_or(now))
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    if l.status(t.unit) != before {
                        report.changed += 1;
                        if l.status(t.unit) == Status::Killed {
                            report.finished += 1;
                        }
                    }
                }
                Err(e) => report.problems.push(e.to_string()),
            }
        }
        let lost = self.commit_all(&mut jobs, &mut report).await;
        to_finalise.retain(|(j, ..)| !lost.contains(j));
        if to_finalise.is_empty() {
            return report;
        }

        // Collect the outputs of ended units, then settle how they ended.
        let mut collected = HashMap::with_capacity(to_finalise.len());
        for chunk in to_finalise.chunks(max_batch) {
            let requests: Vec<OutputsRequest> = chunk
                .iter()
                .map(|(j, unit, _, r)| OutputsRequest {
                    job: r.clone(),
                    output_dir: self.ctx.workspaces.output_dir(r.job),
                    patterns: self.patterns(&jobs[*j], *unit),
                })
                .collect();
            match backend.outputs(&requests).await {
                Ok(results) => {
                    for ((_, _, _, r), (_, result)) in chunk.iter().zip(results) {
                        match result {
                            Ok(out) => {
                                collected.insert(r.job, out);
                            }
                            Err(e) => report.problems.push(format!(
                                "job {}: collecting outputs failed, will try again: {e}",
                                r.job
                            )),
                        }
                    }
                }
                Err(e) => report.problems.push(format!(
                    "backend `{name}`: collecting outputs of {} jobs failed, will try again: {e}",
                    requests.len()
                )),
            }
        }
        let now = crate::now();
        for (j, unit, succeeded, r) in &to_finalise {
            let Some(out) = collected.remove(&r.job) else {
                continue;
            };
            let l = &mut jobs[*j];
            let facts = l.facts_mut(*unit);
            facts.outputs = out.collected;
            let end = if *succeeded && out.unmatched.is_empty() {
                Status::Completed
            } else {
                if !out.unmatched.is_empty() {
                    let patterns = out
                        .unmatched
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let note = format!("output pattern {patterns} matched nothing");
                    facts.backend.reason = Some(match facts.backend.reason.take() {
                        Some(r) if !*succeeded => format!("{r}; {note}"),
                        _ => note,
                    });
                }
                Status::Failed
            };
            match l.set_status(*unit, end, now) {
                Ok(()) => {
                    report.changed += 1;
                    report.finished += 1;
                }
                Err(e) => report.problems.push(e.to_string()),
            }
        }
        self.commit_all(&mut jobs, &mut report).await;
        report
    }

    /// The units of `jobs` to poll. Units cut off while submitting are failed here.
    fn targets(
        &self,
        jobs: &mut [Loaded],
        now: Timestamp,
        report: &mut CycleReport,
    ) -> Vec<Target> {
        let grace = i64::try_from(self.settings.submit_grace.as_millis()).unwrap_or(i64::MAX);
        let mut targets = Vec::new();
        for (j, l) in jobs.iter_mut().enumerate() {
            for unit in l.units() {
                let status = l.status(unit);
                if !status.is_active() {
                    continue;
                }
                match l.backend_ref(&self.ctx, unit) {
                    Some(backend_ref) => targets.push(Target {
                        job: j,
                        unit,
                        backend_ref,
                    }),
                    None if status == Status::Submitting => {
                        let since = l.run(unit).times.get(Status::Submitting).unwrap_or(now);
                        if now.as_millis().saturating_sub(since.as_millis()) > grace {
                            l.facts_mut(unit).backend.reason =
                                Some("submission was interrupted before the backend's answer was recorded".into());
                            match l.set_status(unit, Status::Failed, now) {
                                Ok(()) => {
                                    report.changed += 1;
                                    report.finished += 1;
                                }
                                Err(e) => report.problems.push(e.to_string()),
                            }
                        }
                    }
                    None => report.problems.push(format!(
                        "job {} is {status} but has no backend id; it cannot be monitored (force its status or resubmit it)",
                        l.job_ref(unit)
                    )),
                }
            }
        }
        targets
    }

    fn patterns(&self, l: &Loaded, unit: Unit) -> Vec<String> {
        ganga_core::effective_spec(&l.job, unit.map(|i| &l.subjobs[i])).output_files
    }

    /// Commits every changed job in one transaction. Jobs another process changed
    /// meanwhile are left out (and forgotten, so the next cycle re-reads them); returns
    /// their positions.
    async fn commit_all(&self, jobs: &mut [Loaded], report: &mut CycleReport) -> Vec<usize> {
        let mut excluded: Vec<usize> = Vec::new();
        for _ in 0..3 {
            let changes: Vec<_> = jobs
                .iter()
                .enumerate()
                .filter(|(i, l)| !excluded.contains(i) && l.has_unsaved())
                .flat_map(|(_, l)| l.changes())
                .collect();
            if changes.is_empty() {
                return excluded;
            }
            match commit(&self.ctx, changes).await {
                Ok(committed) => {
                    let revisions: HashMap<JobId, u64> =
                        committed.iter().map(|c| (c.job, c.revision)).collect();
                    for l in jobs.iter_mut() {
                        if let Some(&rev) = revisions.get(&l.job.id) {
                            l.committed(rev);
                        }
                    }
                    return excluded;
                }
                Err(OpError::Store(StoreError::Conflict { jobs: ids })) => {
                    for id in &ids {
                        self.ctx.cache.forget(*id);
                    }
                    report.problems.push(format!(
                        "jobs {ids:?} were changed by another process during this cycle; they are looked at again next cycle"
                    ));
                    excluded.extend(
                        jobs.iter()
                            .enumerate()
                            .filter(|(_, l)| ids.contains(&l.job.id))
                            .map(|(i, _)| i),
                    );
                }
                Err(e) => {
                    report
                        .problems
                        .push(format!("saving this cycle's changes failed: {e}"));
                    return (0..jobs.len()).collect();
                }
            }
        }
        (0..jobs.len()).collect()
    }
}

impl Monitor {
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

/// What the monitor does with one unit after a backend answered a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextStep {
    Stay,
    Become(Status),
    Finalise { succeeded: bool },
    Killed,
}

fn next_step(current: Status, report: &PollReport) -> NextStep {
    match report.status {
        RemoteStatus::Unknown | RemoteStatus::Absent => NextStep::Stay,
        RemoteStatus::Queued => match current {
            Status::Submitting => NextStep::Become(Status::Submitted),
            _ => NextStep::Stay,
        },
        RemoteStatus::Running => match current {
            Status::Submitting | Status::Submitted => NextStep::Become(Status::Running),
            _ => NextStep::Stay,
        },
        RemoteStatus::Succeeded => NextStep::Finalise { succeeded: true },
        RemoteStatus::Failed => NextStep::Finalise { succeeded: false },
        RemoteStatus::Killed => NextStep::Killed,
    }
}

fn note_report(run: &mut RunState, report: &PollReport) {
    run.backend.native_state = Some(report.native_state.clone());
    if report.exit_code.is_some() {
        run.backend.exit_code = report.exit_code;
    }
    if report.reason.is_some() {
        run.backend.reason = report.reason.clone();
    }
    if report.actual_ce.is_some() {
        run.backend.actual_ce = report.actual_ce.clone();
    }
}
