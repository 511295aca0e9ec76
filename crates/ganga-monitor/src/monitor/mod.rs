//! The monitoring service: drives every active unit of a home to its end.
//!
//! One event loop owns the decisions and the commits; everything slow runs beside it as
//! tasks that report back: a poll per backend (its own interval, stretched while nothing
//! changes, backed off while it fails, under a timeout), a watch per backend that can
//! name what changed, a bounded pool that collects outputs, lookups of submissions cut
//! off by a crash, automatic resubmissions. So a backend that hangs delays only its own
//! units, and a slow download never delays a status change.
//!
//! What the answers mean is decided by the core's rules (`after_poll`, `settle`, `lost`,
//! the auto-resubmit limits); this module only gathers the evidence, applies the rules
//! and commits their changes, in batches, as unit updates that the store applies only to
//! units still as they were seen.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use ganga_core::{
    ActiveUnit, Answers, AutoResubmit, BackendRef, JobId, JobRef, OutputsReport, PollReport,
    Status, StatusCounts, Submitted, Timestamp, UnitRun, UnitUpdate,
};
use tokio::sync::mpsc;

use crate::context::Instance;
use crate::control::{self, Asked, BackendStatus, ControlReply, ControlRequest, MonitorStatus};
use crate::handover::{CallError, SubmitReport, call};
use crate::lease::SubmissionLease;
use crate::pace::{Pace, PaceRules};
use crate::{Context, OpError, now};

mod answers;
mod finalise;
mod resubmit;

/// How often the units are read while none is active.
const IDLE_READ: Duration = Duration::from_secs(1);

/// A read asked for because units ended waits until this many times the last read's
/// cost has passed since it began (and at least `REREAD_MIN`): reading every active unit
/// costs in proportion to their number, and re-reading 10,000 of them after each of
/// their ends made a job's monitoring quadratic. Nothing waits on these reads but the
/// counts shown and the check whether the units waited for have ended.
const REREAD_FACTOR: u32 = 4;
const REREAD_MIN: Duration = Duration::from_millis(50);

/// The most unit updates committed in one transaction. A batch's changes are independent
/// of each other (each names the status and run it was decided on), so committing them
/// in parts changes nothing but the memory a transaction holds: 100,000 changes in one
/// held the whole batch packed, decoded and as dirty pages at once.
const COMMIT_CHUNK: usize = 20_000;

/// How the monitor paces itself and what it decides on its own.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// The interval of every backend, instead of its own.
    pub interval: Option<Duration>,
    /// The interval of one backend, by name, instead of its own.
    pub intervals: BTreeMap<String, Duration>,
    /// While nothing changes a backend's interval grows up to this many times its base.
    pub quiet_factor: u32,
    /// The longest wait after failed polls.
    pub error_cap: Duration,
    /// How long a unit may be absent at its backend (no exit record) before it is failed
    /// as lost.
    pub lost_grace: Duration,
    /// Calls in flight to one backend at once (chunks of a poll).
    pub poll_concurrency: usize,
    /// Output collections in flight at once, per backend.
    pub finalise_concurrency: usize,
    /// The auto-resubmit policy of jobs that have none of their own (`None`: off).
    pub auto_resubmit: Option<AutoResubmit>,
    /// With [`Until::Stopped`], stop after this long without an active unit.
    pub idle_exit: Option<Duration>,
    /// Where to listen for other processes' requests.
    pub control_socket: Option<PathBuf>,
    /// How long one `changes` call of a watching backend may wait.
    pub watch_wait: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            interval: None,
            intervals: BTreeMap::new(),
            quiet_factor: 4,
            error_cap: Duration::from_secs(300),
            lost_grace: Duration::from_secs(60),
            poll_concurrency: 4,
            finalise_concurrency: 4,
            auto_resubmit: None,
            idle_exit: None,
            control_socket: None,
            watch_wait: Duration::from_secs(5),
        }
    }
}

/// What one poll of one backend did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub backend: String,
    /// Units active at every backend when the units were last read.
    pub active_units: usize,
    /// How many of them are in each status.
    pub counts: StatusCounts,
    /// Units asked about.
    pub polled: usize,
    /// Units whose status changed.
    pub changed: usize,
    /// Units that ended (completed, failed or killed).
    pub finished: usize,
    /// Problems met on the way (a backend that failed to answer, a unit that changed
    /// meanwhile...); none of them changed a unit wrongly.
    pub problems: Vec<String>,
}

/// When [`Monitor::run`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Only when stopped (or idle for `idle_exit`).
    Stopped,
    /// When no unit is active and nothing is in flight.
    Idle,
    /// When none of these jobs has an active unit and nothing is in flight for them.
    Finished(Vec<JobId>),
}

/// Drives active units to the end.
pub struct Monitor {
    ctx: Context,
    settings: MonitorSettings,
}

/// One unit that ended at its backend, whose outputs are to be collected.
#[derive(Debug, Clone)]
struct Ended {
    unit: JobRef,
    run: u32,
    id: String,
    succeeded: bool,
    reason: Option<String>,
}

/// What the tasks beside the loop report.
enum Event {
    Polled {
        backend: String,
        units: Vec<ActiveUnit>,
        answers: Answers<PollReport>,
        failures: Vec<CallError>,
        full: bool,
    },
    Changed {
        backend: String,
        units: Vec<JobRef>,
    },
    Collected {
        backend: String,
        ended: Vec<Ended>,
        result: Result<Answers<OutputsReport>, CallError>,
    },
    Found {
        job: JobId,
        units: Vec<ActiveUnit>,
        result: Result<Answers<Option<Submitted>>, CallError>,
    },
    Resubmitted {
        job: JobId,
        result: Result<SubmitReport, OpError>,
    },
}

/// A backend as the loop drives it.
struct Driven {
    instance: Option<Arc<Instance>>,
    pace: Option<Pace>,
    next_due: Instant,
    /// A full poll is in flight.
    polling: bool,
    finalise_queue: VecDeque<Ended>,
    finalising: usize,
    last_poll: Option<Timestamp>,
    last_error: Option<String>,
    units: usize,
    watching: bool,
}

impl Driven {
    /// A backend first met at `now`, due at once.
    fn new(now: Instant) -> Driven {
        Driven {
            instance: None,
            pace: None,
            next_due: now,
            polling: false,
            finalise_queue: VecDeque::new(),
            finalising: 0,
            last_poll: None,
            last_error: None,
            units: 0,
            watching: false,
        }
    }
}

/// The loop's state.
struct Loop<'m> {
    m: &'m Monitor,
    events: mpsc::Sender<Event>,
    backends: BTreeMap<String, Driven>,
    /// When each unit (and run) was first found absent.
    absent_since: HashMap<(JobRef, u32), Instant>,
    /// Units whose outputs are queued or being collected.
    finalising: HashSet<(JobRef, u32)>,
    /// Units whose end was settled lately, and when: a poll that started before that
    /// must not have their outputs collected again.
    settled: HashMap<(JobRef, u32), Instant>,
    /// Jobs with a lookup of interrupted submissions, or an automatic resubmission, in
    /// flight.
    finding: HashSet<JobId>,
    resubmitting: HashSet<JobId>,
    targeted: usize,
    /// Jobs whose units were active at the last read.
    active_jobs: HashSet<JobId>,
    active_units: usize,
    counts: StatusCounts,
    /// A read is asked for (units ended, another process asked for a poll).
    read_now: bool,
    last_read: Instant,
    /// How long the last read took; `None` before the first.
    last_read_cost: Option<Duration>,
    idle_since: Option<Instant>,
    polls: u64,
    last_poll: Option<Timestamp>,
    started: Timestamp,
    jitter: u64,
}

impl Monitor {
    pub fn new(ctx: Context, settings: MonitorSettings) -> Monitor {
        Monitor { ctx, settings }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The same monitor, stopping (with [`Until::Stopped`]) after `idle` without an
    /// active unit.
    pub fn with_idle_exit(mut self, idle: Duration) -> Monitor {
        self.settings.idle_exit = Some(idle);
        self
    }

    /// Drives units until `until` holds or `shutdown` completes, calling `on_cycle` after
    /// each poll. On shutdown, what is in flight is awaited (a few seconds at most) and
    /// committed. Only a store that cannot be read at all ends it with an error.
    pub async fn run(
        &self,
        until: Until,
        shutdown: impl Future<Output = ()>,
        mut on_cycle: impl FnMut(&CycleReport),
    ) -> Result<(), OpError> {
        tokio::pin!(shutdown);
        let (events, mut incoming) = mpsc::channel::<Event>(1024);
        let (asks, mut asked) = mpsc::channel::<Asked>(64);
        let unanswered = control::Unanswered::default();
        if let Some(path) = &self.settings.control_socket
            && let Err(e) = control::listen(path, asks, unanswered.clone())
        {
            tracing::warn!(
                "cannot listen on {} (other processes cannot reach this monitor): {e}",
                path.display()
            );
        }
        let mut l = Loop {
            m: self,
            events,
            backends: BTreeMap::new(),
            absent_since: HashMap::new(),
            finalising: HashSet::new(),
            settled: HashMap::new(),
            finding: HashSet::new(),
            resubmitting: HashSet::new(),
            targeted: 0,
            active_jobs: HashSet::new(),
            active_units: 0,
            counts: StatusCounts::default(),
            read_now: true,
            last_read: Instant::now(),
            last_read_cost: None,
            idle_since: None,
            polls: 0,
            last_poll: None,
            started: now(),
            jitter: u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15,
        };
        let mut store_failures = 0u32;
        let mut stopping: Option<Instant> = None;
        loop {
            if let Some(deadline) = stopping {
                if l.in_flight() == 0 || Instant::now() >= deadline {
                    // Whoever asked it to stop hears that it did.
                    let until = Instant::now() + Duration::from_secs(1);
                    while unanswered.load(std::sync::atomic::Ordering::SeqCst) > 0
                        && Instant::now() < until
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    return Ok(());
                }
            } else {
                if l.reread_due() || l.any_due() || l.idle_read_due() {
                    match l.read_and_start().await {
                        Ok(()) => store_failures = 0,
                        Err(e) => {
                            store_failures += 1;
                            tracing::warn!("cannot read the active units: {e}");
                            if store_failures >= 5 {
                                return Err(e);
                            }
                            l.delay_all(Duration::from_secs(1));
                        }
                    }
                }
                if l.reached(&until) {
                    return Ok(());
                }
            }
            let wake = l.next_wake(stopping);
            tokio::select! {
                () = &mut shutdown, if stopping.is_none() => {
                    stopping = Some(Instant::now() + Duration::from_secs(10));
                }
                Some((request, reply)) = asked.recv() => {
                    let answer = l.answer(request, &mut stopping);
                    let _ = reply.send(answer);
                }
                Some(event) = incoming.recv() => {
                    let mut batch = vec![event];
                    while let Ok(more) = incoming.try_recv() {
                        batch.push(more);
                    }
                    for report in l.handle(batch, stopping.is_some()).await {
                        for p in &report.problems {
                            tracing::warn!("{p}");
                        }
                        on_cycle(&report);
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

impl Loop<'_> {
    fn settings(&self) -> &MonitorSettings {
        &self.m.settings
    }

    fn ctx(&self) -> &Context {
        &self.m.ctx
    }

    fn in_flight(&self) -> usize {
        self.backends
            .values()
            .map(|b| usize::from(b.polling) + b.finalising + b.finalise_queue.len())
            .sum::<usize>()
            + self.targeted
            + self.finding.len()
            + self.resubmitting.len()
    }

    fn any_due(&self) -> bool {
        let now = Instant::now();
        self.backends
            .values()
            .any(|b| !b.polling && b.units > 0 && b.next_due <= now)
    }

    /// With nothing active, the units are read now and then anyway: a job submitted by a
    /// process that could not reach this monitor is found that way.
    fn idle_read_due(&self) -> bool {
        self.active_units == 0 && self.last_read.elapsed() >= IDLE_READ
    }

    fn delay_all(&mut self, by: Duration) {
        let at = Instant::now() + by;
        for b in self.backends.values_mut() {
            b.next_due = b.next_due.max(at);
        }
    }

    /// When a read asked for may be made.
    fn reread_at(&self) -> Instant {
        match self.last_read_cost {
            None => self.last_read,
            Some(cost) => self.last_read + (cost * REREAD_FACTOR).max(REREAD_MIN),
        }
    }

    fn reread_due(&self) -> bool {
        self.read_now && Instant::now() >= self.reread_at()
    }

    fn next_wake(&self, stopping: Option<Instant>) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(30);
        if let Some(deadline) = stopping {
            return deadline.min(wake);
        }
        for b in self.backends.values() {
            if !b.polling && b.units > 0 {
                wake = wake.min(b.next_due);
            }
        }
        if let (Some(idle), Some(since)) = (self.settings().idle_exit, self.idle_since) {
            wake = wake.min(since + idle);
        }
        if self.active_units == 0 {
            wake = wake.min(self.last_read + IDLE_READ);
        }
        if self.read_now {
            wake = wake.min(self.reread_at());
        }
        wake
    }

    fn next_jitter(&mut self) -> f64 {
        // xorshift: enough to keep monitors from retrying in step.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        (self.jitter % 10_000) as f64 / 10_000.0
    }

    /// Whether the loop is done. Never while a read is asked for and not made yet: what
    /// is known of the units then is stale (a unit resubmitted since is not among them).
    fn reached(&mut self, until: &Until) -> bool {
        if self.read_now {
            return false;
        }
        match until {
            Until::Stopped => match (self.settings().idle_exit, self.active_units) {
                (Some(idle), 0) if self.in_flight() == 0 => {
                    let since = *self.idle_since.get_or_insert_with(Instant::now);
                    since.elapsed() >= idle
                }
                _ => {
                    self.idle_since = None;
                    false
                }
            },
            Until::Idle => self.active_units == 0 && self.in_flight() == 0,
            Until::Finished(jobs) => {
                jobs.iter().all(|j| {
                    !self.active_jobs.contains(j)
                        && !self.finding.contains(j)
                        && !self.resubmitting.contains(j)
                }) && self.in_flight_for(jobs) == 0
            }
        }
    }

    fn in_flight_for(&self, jobs: &[JobId]) -> usize {
        self.finalising
            .iter()
            .filter(|(u, _)| jobs.contains(&u.job))
            .count()
            + self.backends.values().filter(|b| b.polling).count()
    }

    /// Reads every active unit, and starts what is due: full polls, lookups of
    /// interrupted submissions.
    async fn read_and_start(&mut self) -> Result<(), OpError> {
        self.read_now = false;
        self.last_read = Instant::now();
        let units = self.ctx().store.active_units().await?;
        self.last_read_cost = Some(self.last_read.elapsed());
        // Polls are long over for what was settled a while ago.
        self.settled
            .retain(|_, at| at.elapsed() < Duration::from_secs(600));
        self.active_units = units.len();
        self.counts = units.iter().map(|u| u.status).collect();
        self.active_jobs = units.iter().map(|u| u.unit.job).collect();
        let mut by_backend: BTreeMap<String, Vec<ActiveUnit>> = BTreeMap::new();
        for u in units {
            by_backend.entry(u.backend.clone()).or_default().push(u);
        }
        for b in self.backends.values_mut() {
            b.units = 0;
        }
        let now = Instant::now();
        for (name, units) in by_backend {
            // Due in this read: created later than `now`, it would be due only in the
            // next, and every unit read twice before the first poll.
            let driven = self
                .backends
                .entry(name.clone())
                .or_insert_with(|| Driven::new(now));
            driven.units = units.len();
            if driven.instance.is_none() {
                if driven.next_due > now {
                    continue;
                }
                match self.m.ctx.instance(&name).await {
                    Ok(instance) => self.start_backend(&name, instance),
                    Err(e) => {
                        tracing::warn!("{} units on backend `{name}` wait: {e}", units.len());
                        let jitter = self.next_jitter();
                        let wait = Pace::new(self.rules(&name, 10)).failed(jitter);
                        let driven = self
                            .backends
                            .entry(name.clone())
                            .or_insert_with(|| Driven::new(now));
                        driven.last_error = Some(e);
                        driven.next_due = now + wait;
                        continue;
                    }
                }
            }
            let (interrupted, polled): (Vec<ActiveUnit>, Vec<ActiveUnit>) = units
                .into_iter()
                .partition(|u| u.status == Status::Submitting && u.id.is_none());
            self.recover(&name, interrupted);
            let driven = self
                .backends
                .entry(name.clone())
                .or_insert_with(|| Driven::new(now));
            if !driven.polling && driven.next_due <= now && !polled.is_empty() {
                driven.polling = true;
                self.spawn_poll(&name, polled, true);
            }
        }
        Ok(())
    }

    fn rules(&self, name: &str, own_secs: u32) -> PaceRules {
        let s = self.settings();
        let base = s
            .intervals
            .get(name)
            .copied()
            .or(s.interval)
            .unwrap_or(Duration::from_secs(u64::from(own_secs.max(1))));
        PaceRules {
            base,
            quiet_factor: s.quiet_factor,
            error_cap: s.error_cap.max(base),
        }
    }

    /// A backend's instance is known: pace it, and watch it if it can be watched.
    fn start_backend(&mut self, name: &str, instance: Arc<Instance>) {
        let rules = self.rules(name, instance.description.poll_interval_secs);
        let watch = instance.description.capabilities.watch;
        let wait = self.settings().watch_wait;
        let driven = self
            .backends
            .entry(name.to_owned())
            .or_insert_with(|| Driven::new(Instant::now()));
        driven.pace = Some(Pace::new(rules));
        if watch && !driven.watching {
            driven.watching = true;
            let events = self.events.clone();
            let (backend, name) = (instance.backend.clone(), name.to_owned());
            tokio::spawn(async move {
                loop {
                    let asked = call(wait + Duration::from_secs(30), backend.changes(wait)).await;
                    match asked {
                        Ok(units) if units.is_empty() => {}
                        Ok(units) => {
                            let ev = Event::Changed {
                                backend: name.clone(),
                                units,
                            };
                            if events.send(ev).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::debug!("watching backend `{name}`: {e}");
                            if events.is_closed() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
        }
        driven.instance = Some(instance);
    }

    fn backend_ref(&self, u: &ActiveUnit) -> Option<BackendRef> {
        Some(BackendRef {
            job: u.unit,
            id: u.id.clone()?,
            run: u.run,
            workspace: self.ctx().workspaces.dir(u.unit),
        })
    }

    /// Polls `units` of a backend in a task: all in one call where the backend lists
    /// everything at once, else in chunks, a few at a time, each under the timeout.
    fn spawn_poll(&mut self, name: &str, units: Vec<ActiveUnit>, full: bool) {
        let Some(instance) = self.backends.get(name).and_then(|b| b.instance.clone()) else {
            return;
        };
        let refs: Vec<BackendRef> = units.iter().filter_map(|u| self.backend_ref(u)).collect();
        let timeout = self.ctx().call_timeout;
        let concurrency = self.settings().poll_concurrency.max(1);
        let events = self.events.clone();
        let name = name.to_owned();
        if !full {
            self.targeted += 1;
        }
        tokio::spawn(async move {
            let mut answers = Vec::with_capacity(refs.len());
            let mut failures = Vec::new();
            if full && instance.description.capabilities.poll_all {
                match call(timeout, instance.backend.poll_all(&refs)).await {
                    Ok(a) => answers = a,
                    Err(e) => failures.push(e),
                }
            } else {
                let chunks: Vec<Vec<BackendRef>> = refs
                    .chunks(instance.max_batch())
                    .map(<[BackendRef]>::to_vec)
                    .collect();
                let mut calls = futures_util::stream::iter(chunks)
                    .map(|chunk| {
                        let backend = instance.backend.clone();
                        async move { call(timeout, backend.poll(&chunk)).await }
                    })
                    .buffer_unordered(concurrency);
                while let Some(result) = calls.next().await {
                    match result {
                        Ok(a) => answers.extend(a),
                        Err(e) => failures.push(e),
                    }
                }
            }
            let _ = events
                .send(Event::Polled {
                    backend: name,
                    units,
                    answers,
                    failures,
                    full,
                })
                .await;
        });
    }

    /// Units left `submitting` without an id: if nobody is submitting their job any more,
    /// the process that was died; ask the backend what became of them.
    fn recover(&mut self, name: &str, units: Vec<ActiveUnit>) {
        let mut by_job: BTreeMap<JobId, Vec<ActiveUnit>> = BTreeMap::new();
        for u in units {
            by_job.entry(u.unit.job).or_default().push(u);
        }
        let Some(instance) = self.backends.get(name).and_then(|b| b.instance.clone()) else {
            return;
        };
        for (job, units) in by_job {
            if self.finding.contains(&job) || self.resubmitting.contains(&job) {
                continue;
            }
            match SubmissionLease::holder(&self.ctx().locks, job) {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("job {job}: cannot tell whether it is being submitted: {e}");
                    continue;
                }
            }
            self.finding.insert(job);
            let asked: Vec<UnitRun> = units
                .iter()
                .map(|u| UnitRun {
                    job: u.unit,
                    run: u.run,
                    workspace: self.ctx().workspaces.dir(u.unit),
                })
                .collect();
            let events = self.events.clone();
            let timeout = self.ctx().call_timeout;
            let instance = instance.clone();
            tokio::spawn(async move {
                let result = if instance.description.capabilities.find {
                    call(timeout, instance.backend.find(&asked)).await
                } else {
                    Err(CallError::Refused(format!(
                        "backend `{}` cannot tell whether it took a job whose submission was cut off",
                        instance.name
                    )))
                };
                let _ = events.send(Event::Found { job, units, result }).await;
            });
        }
    }

    /// Handles a batch of events: their changes are committed together.
    async fn handle(&mut self, events: Vec<Event>, stopping: bool) -> Vec<CycleReport> {
        let mut updates: Vec<UnitUpdate> = Vec::new();
        let mut reports: Vec<CycleReport> = Vec::new();
        // Ended units to collect once their `completing` is committed.
        let mut ended: Vec<(String, Ended, bool)> = Vec::new();
        let mut changed: HashMap<String, HashSet<JobRef>> = HashMap::new();
        for event in events {
            match event {
                Event::Polled {
                    backend,
                    units,
                    answers,
                    failures,
                    full,
                } => {
                    if !full {
                        self.targeted = self.targeted.saturating_sub(1);
                    }
                    let report = self.polled(
                        &backend,
                        &units,
                        answers,
                        &failures,
                        full,
                        &mut updates,
                        &mut ended,
                    );
                    reports.push(report);
                }
                Event::Changed { backend, units } => {
                    changed.entry(backend).or_default().extend(units);
                }
                Event::Collected {
                    backend,
                    ended: batch,
                    result,
                } => {
                    let report = self.collected(&backend, batch, result, &mut updates);
                    reports.push(report);
                }
                Event::Found { job, units, result } => {
                    self.finding.remove(&job);
                    self.found(units, result, &mut updates);
                }
                Event::Resubmitted { job, result } => {
                    self.resubmitting.remove(&job);
                    self.read_now = true;
                    match result {
                        Ok(r) => tracing::info!(
                            "job {job}: resubmitted {} unit(s) automatically ({} refused)",
                            r.submitted,
                            r.failed.len()
                        ),
                        Err(e) => tracing::warn!("job {job}: automatic resubmission failed: {e}"),
                    }
                }
            }
        }

        // One commit for everything the batch decided.
        // What is needed of the updates once they are handed over (not a copy of them:
        // a cycle of 100,000 changes would copy every one).
        let touched: Vec<(JobRef, Option<Status>)> = updates
            .iter()
            .map(|u| (u.unit, u.change.status.map(|(to, _)| to)))
            .collect();
        let mut refused: HashSet<JobRef> = HashSet::new();
        let mut problem = None;
        let mut rest = updates;
        let mut from = 0usize;
        while !rest.is_empty() {
            let after = rest.split_off(rest.len().min(COMMIT_CHUNK));
            let chunk = std::mem::replace(&mut rest, after);
            let n = chunk.len();
            match self.ctx().store.update_units(chunk).await {
                Ok(outcome) => {
                    for (u, why) in &outcome.refused {
                        tracing::debug!("job {u}: not changed: {why}");
                    }
                    refused.extend(outcome.refused.into_iter().map(|(u, _)| u));
                }
                Err(e) => {
                    refused.extend(touched.iter().skip(from).take(n).map(|(u, _)| *u));
                    problem = Some(format!(
                        "saving {n} changes failed (they are made again next time): {e}"
                    ));
                }
            }
            from += n;
        }
        if let (Some(p), Some(r)) = (problem, reports.first_mut()) {
            r.problems.push(p);
        }
        let applied = |u: &JobRef| refused.is_empty() || !refused.contains(u);
        for r in &mut reports {
            r.active_units = self.active_units;
            r.counts = self.counts.clone();
        }
        // Count what changed per backend report, from what was applied.
        let mut failed_jobs: HashSet<JobId> = HashSet::new();
        let mut applied_n = 0usize;
        for (unit, status) in &touched {
            if !applied(unit) {
                continue;
            }
            applied_n += 1;
            if let Some(to) = *status {
                if to == Status::Failed {
                    failed_jobs.insert(unit.job);
                }
                if matches!(to, Status::Completed | Status::Failed | Status::Killed) {
                    self.read_now = true;
                }
            }
        }
        let _ = applied_n;
        for (backend, e, needs_commit) in ended {
            if needs_commit && !applied(&e.unit) {
                continue;
            }
            if self.finalising.insert((e.unit, e.run))
                && let Some(b) = self.backends.get_mut(&backend)
            {
                b.finalise_queue.push_back(e);
            }
        }
        if !stopping {
            self.start_finalising();
            for (backend, units) in changed {
                self.poll_changed(&backend, units.into_iter().collect())
                    .await;
            }
            self.auto_resubmit(failed_jobs).await;
        }
        reports
    }

    /// Answers another process.
    fn answer(&mut self, request: ControlRequest, stopping: &mut Option<Instant>) -> ControlReply {
        match request {
            ControlRequest::Status => ControlReply::Status(self.status()),
            ControlRequest::Poll { jobs } => {
                let _ = jobs;
                self.read_now = true;
                let now = Instant::now();
                for b in self.backends.values_mut() {
                    b.next_due = b.next_due.min(now);
                }
                ControlReply::Done
            }
            ControlRequest::Stop => {
                stopping.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
                ControlReply::Done
            }
        }
    }

    fn status(&self) -> MonitorStatus {
        MonitorStatus {
            pid: std::process::id(),
            since: self.started,
            polls: self.polls,
            last_poll: self.last_poll,
            active_units: self.active_units,
            finalising: self.finalising.len(),
            backends: self
                .backends
                .iter()
                .map(|(name, b)| BackendStatus {
                    name: name.clone(),
                    active_units: b.units,
                    last_poll: b.last_poll,
                    interval_secs: b.pace.map_or(0.0, |p| p.interval().as_secs_f64()),
                    errors: b.pace.map_or(0, |p| p.errors()),
                    last_error: b.last_error.clone(),
                    capabilities: b
                        .instance
                        .as_ref()
                        .map(|i| i.description.capabilities)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}
