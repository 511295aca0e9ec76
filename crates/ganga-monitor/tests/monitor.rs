//! The monitor against the real store and a scripted backend whose answers are data:
//! exact transitions, and nothing lost or wrongly finished whatever the backend answers,
//! fails to answer, or how long it takes.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ganga_core::{
    Answers, Application, AutoResubmit, Backend, BackendConfig, BackendDescription, BackendError,
    BackendRef, Capabilities, Executable, Job, JobId, JobRef, JobSpec, OutputsReport,
    OutputsRequest, PeekFile, PollReport, RemoteStatus, RunState, Splitter, Status, Store,
    SubmitSpec, Submitted, UnitRun, Workspaces,
};
use ganga_monitor::{
    Backends, Context, ControlReply, ControlRequest, Monitor, MonitorSettings, OpError, Operations,
    StoreHandle, Until,
};
use ganga_records::RecordStore;
use ganga_store_lmdb::LmdbStore;
use ganga_test_support::MemoryStore;

/// One answer of a plan: a status, or `None` to leave the unit out of the answer.
type Step = Option<RemoteStatus>;

/// How a poll call behaves as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollMode {
    Answer,
    Fail,
    Hang,
}

/// A backend that answers from plans the test writes, and counts what it is asked.
struct Script {
    name: &'static str,
    capabilities: Capabilities,
    /// Per unit and run, the answers in turn; the last repeats. Units without a plan
    /// succeed at once.
    plans: Mutex<HashMap<(JobRef, u32), VecDeque<Step>>>,
    mode: Mutex<PollMode>,
    /// Answer every unit twice (the second time differently), and for units never asked.
    noisy: AtomicBool,
    outputs_fail: AtomicBool,
    unmatched: Mutex<Vec<String>>,
    /// What `find` says of units and runs; the rest are `None`.
    found: Mutex<HashMap<(JobRef, u32), String>>,
    /// Units `changes` names next.
    changed: Mutex<Vec<JobRef>>,
    polls: AtomicUsize,
    polled_units: Mutex<Vec<JobRef>>,
    finds: AtomicUsize,
    submitted: Mutex<Vec<(JobRef, u32)>>,
    killed: Mutex<Vec<JobRef>>,
    /// Awaited inside the next poll, before it answers: what another process does
    /// meanwhile.
    meanwhile: Mutex<Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>>,
}

impl Script {
    fn new(name: &'static str) -> Script {
        Script {
            name,
            capabilities: Capabilities::default(),
            plans: Mutex::default(),
            mode: Mutex::new(PollMode::Answer),
            noisy: AtomicBool::new(false),
            outputs_fail: AtomicBool::new(false),
            unmatched: Mutex::default(),
            found: Mutex::default(),
            changed: Mutex::default(),
            polls: AtomicUsize::new(0),
            polled_units: Mutex::default(),
            finds: AtomicUsize::new(0),
            submitted: Mutex::default(),
            killed: Mutex::default(),
            meanwhile: Mutex::default(),
        }
    }

    fn plan(&self, unit: JobRef, run: u32, steps: &[Step]) {
        self.plans
            .lock()
            .unwrap()
            .insert((unit, run), steps.iter().copied().collect());
    }

    fn step(&self, unit: JobRef, run: u32) -> Step {
        let mut plans = self.plans.lock().unwrap();
        match plans.get_mut(&(unit, run)) {
            None => Some(RemoteStatus::Succeeded),
            Some(steps) if steps.len() > 1 => steps.pop_front().flatten(),
            Some(steps) => steps.front().copied().flatten(),
        }
    }

    fn set_mode(&self, mode: PollMode) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn report(status: RemoteStatus) -> PollReport {
    PollReport {
        exit_code: match status {
            RemoteStatus::Succeeded => Some(0),
            RemoteStatus::Failed => Some(3),
            _ => None,
        },
        reason: (status == RemoteStatus::Failed).then(|| "exit code 3".to_owned()),
        ..PollReport::new(status, format!("{status:?}"))
    }
}

#[async_trait]
impl Backend for Script {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: self.name.into(),
            version: "0".into(),
            poll_interval_secs: 1,
            max_batch: 4,
            capabilities: self.capabilities,
            options: None,
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let mut submitted = self.submitted.lock().unwrap();
        Ok(jobs
            .iter()
            .map(|s| {
                submitted.push((s.job, s.run));
                (s.job, Ok(Submitted::id(format!("{}-{}", s.job, s.run))))
            })
            .collect())
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.polled_units
            .lock()
            .unwrap()
            .extend(jobs.iter().map(|r| r.job));
        let meanwhile = self.meanwhile.lock().unwrap().take();
        if let Some(act) = meanwhile {
            act.await;
        }
        let mode = *self.mode.lock().unwrap();
        match mode {
            PollMode::Fail => return Err(BackendError::failed("the scheduler did not answer")),
            PollMode::Hang => std::future::pending::<()>().await,
            PollMode::Answer => {}
        }
        let mut answers: Answers<PollReport> = Vec::new();
        for r in jobs {
            if let Some(status) = self.step(r.job, r.run) {
                answers.push((r.job, Ok(report(status))));
            }
        }
        if self.noisy.load(Ordering::Relaxed) {
            let mut doubled: Answers<PollReport> = answers
                .iter()
                .map(|(j, _)| (*j, Ok(report(RemoteStatus::Killed))))
                .collect();
            doubled.push((JobRef::job(999_999), Ok(report(RemoteStatus::Succeeded))));
            answers.reverse();
            answers.extend(doubled);
        }
        Ok(answers)
    }

    async fn changes(&self, wait: Duration) -> Result<Vec<JobRef>, BackendError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let named = std::mem::take(&mut *self.changed.lock().unwrap());
            if !named.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(named);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        self.finds.fetch_add(1, Ordering::Relaxed);
        let found = self.found.lock().unwrap();
        Ok(jobs
            .iter()
            .map(|u| {
                let id = found.get(&(u.job, u.run)).cloned();
                (u.job, Ok(id.map(Submitted::id)))
            })
            .collect())
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        let mut killed = self.killed.lock().unwrap();
        Ok(jobs
            .iter()
            .map(|r| {
                killed.push(r.job);
                self.plan_killed(r);
                (r.job, Ok(()))
            })
            .collect())
    }

    async fn peek(&self, _: &BackendRef, _: &PeekFile, _: u64) -> Result<Vec<u8>, BackendError> {
        Ok(Vec::new())
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        if self.outputs_fail.load(Ordering::Relaxed) {
            return Err(BackendError::failed("the file server is down"));
        }
        let unmatched = self.unmatched.lock().unwrap().clone();
        Ok(jobs
            .iter()
            .map(|r| {
                let report = OutputsReport {
                    collected: vec!["stdout".into()],
                    unmatched: unmatched.clone(),
                    skipped: Vec::new(),
                };
                (r.job.job, Ok(report))
            })
            .collect())
    }
}

impl Script {
    fn plan_killed(&self, r: &BackendRef) {
        self.plans
            .lock()
            .unwrap()
            .insert((r.job, r.run), [Some(RemoteStatus::Killed)].into());
    }
}

struct Named(HashMap<&'static str, Arc<Script>>);

impl Backends for Named {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        match self.0.get(name) {
            Some(b) => Ok(b.clone()),
            None => Err(format!("unknown backend `{name}`")),
        }
    }
}

struct World {
    _dir: tempfile::TempDir,
    ctx: Context,
    ops: Operations,
    store: Arc<dyn Store>,
}

/// A world with these scripted backends, and backend calls timing out after `timeout`.
fn world_with(
    backends: Vec<Script>,
    timeout: Duration,
) -> (World, HashMap<&'static str, Arc<Script>>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RecordStore> = Arc::new(LmdbStore::open(&dir.path().join("store")).unwrap());
    world_over(dir, store, backends, timeout)
}

/// A world with this store.
fn world_over(
    dir: tempfile::TempDir,
    store: Arc<dyn RecordStore>,
    backends: Vec<Script>,
    timeout: Duration,
) -> (World, HashMap<&'static str, Arc<Script>>) {
    let scripts: HashMap<&'static str, Arc<Script>> = backends
        .into_iter()
        .map(|s| (s.name, Arc::new(s)))
        .collect();
    let ctx = Context::new(
        StoreHandle::new(store.clone(), 1 << 20),
        Arc::new(Named(scripts.clone())),
        Workspaces::new(dir.path().join("workspace")),
        dir.path().join("locks"),
    )
    .with_call_timeout(timeout);
    let world = World {
        ops: Operations::new(ctx.clone()),
        ctx,
        store,
        _dir: dir,
    };
    (world, scripts)
}

/// A world whose store is in memory, and whose writes meet another writer when told
/// ([`MemoryStore::interfere`]).
fn world_in_memory() -> (World, Arc<Script>, Arc<MemoryStore>) {
    let memory = Arc::new(MemoryStore::new());
    let (w, mut s) = world_over(
        tempfile::tempdir().unwrap(),
        memory.clone(),
        vec![Script::new("script")],
        Duration::from_secs(5),
    );
    let script = s.remove("script").unwrap();
    (w, script, memory)
}

fn world() -> (World, Arc<Script>) {
    let (w, mut s) = world_with(vec![Script::new("script")], Duration::from_secs(5));
    let script = s.remove("script").unwrap();
    (w, script)
}

fn settings() -> MonitorSettings {
    MonitorSettings {
        interval: Some(Duration::from_millis(20)),
        lost_grace: Duration::from_millis(300),
        error_cap: Duration::from_millis(400),
        ..MonitorSettings::default()
    }
}

fn spec(backend: &str, subjobs: usize) -> JobSpec {
    JobSpec {
        name: "m".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/true".into(),
            args: vec![],
            env: Default::default(),
        }),
        backend: BackendConfig::named(backend),
        input_files: vec![],
        output_files: vec!["out.txt".into()],
        splitter: (subjobs > 0).then(|| Splitter::Args {
            args: (0..subjobs).map(|i| vec![i.to_string()]).collect(),
            append: false,
        }),
        auto_resubmit: None,
    }
}

impl World {
    async fn submit(&self, spec: JobSpec) -> JobId {
        let report = self.ops.submit_spec(spec).await.unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
        report.job
    }

    fn job(&self, id: JobId) -> Job {
        self.store.job(id).unwrap().unwrap()
    }

    fn run(&self, r: JobRef) -> RunState {
        match r.subjob {
            None => self.job(r.job).run,
            Some(i) => self.store.subjobs(r.job, i..i + 1).unwrap()[0].run.clone(),
        }
    }

    fn status(&self, r: JobRef) -> Status {
        self.run(r).status
    }

    async fn run_monitor(&self, settings: MonitorSettings, until: Until) {
        let monitor = Monitor::new(self.ctx.clone(), settings);
        tokio::time::timeout(
            Duration::from_secs(60),
            monitor.run(until, std::future::pending(), |_| {}),
        )
        .await
        .expect("the monitor reached its end in time")
        .unwrap();
    }

    /// Runs a monitor until `done` holds (checked every 20 ms) or 30 s passed.
    async fn monitor_until(&self, settings: MonitorSettings, done: impl Fn(&World) -> bool) {
        let monitor = Monitor::new(self.ctx.clone(), settings);
        let stop = async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !done(self) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        monitor.run(Until::Stopped, stop, |_| {}).await.unwrap();
    }

    fn check(&self) {
        assert_eq!(self.store.check().unwrap().problems, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_goes_through_every_status_in_order() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 0)).await;
    let unit = JobRef::job(id);
    script.plan(
        unit,
        1,
        &[
            Some(Queued),
            Some(Queued),
            Some(Running),
            Some(Running),
            Some(Succeeded),
        ],
    );
    w.run_monitor(settings(), Until::Idle).await;
    let run = w.run(unit);
    assert_eq!(run.status, Status::Completed);
    assert_eq!(run.outputs, ["stdout"]);
    assert_eq!(run.backend.exit_code, Some(0));
    assert_eq!(run.backend.native_state.as_deref(), Some("Succeeded"));
    let t = |s| {
        run.times
            .get(s)
            .unwrap_or_else(|| panic!("no time for {s}"))
    };
    assert!(t(Status::Submitted) <= t(Status::Running));
    assert!(t(Status::Running) <= t(Status::Completing));
    assert!(t(Status::Completing) <= t(Status::Completed));
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_job_ends_as_its_subjobs_say() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 9)).await;
    script.plan(JobRef::subjob(id, 3), 1, &[Some(Running), Some(Failed)]);
    script.plan(JobRef::subjob(id, 5), 1, &[Some(Queued), Some(Killed)]);
    w.run_monitor(settings(), Until::Idle).await;
    let job = w.job(id);
    assert_eq!(job.subjobs.get(Status::Completed), 7);
    assert_eq!(job.subjobs.get(Status::Failed), 1);
    assert_eq!(job.subjobs.get(Status::Killed), 1);
    assert_eq!(job.status(), Status::Failed);
    let failed = w.run(JobRef::subjob(id, 3));
    assert_eq!(failed.backend.exit_code, Some(3));
    assert_eq!(failed.backend.reason.as_deref(), Some("exit code 3"));
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_and_failed_answers_change_nothing() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 3)).await;
    // Left out of every answer, or unknown, for a while; then it ends.
    script.plan(
        JobRef::subjob(id, 0),
        1,
        &[None, None, None, None, Some(Succeeded)],
    );
    script.plan(
        JobRef::subjob(id, 1),
        1,
        &[Some(Unknown), Some(Unknown), Some(Running), Some(Succeeded)],
    );
    script.plan(JobRef::subjob(id, 2), 1, &[None]);
    // While the whole call fails, nothing moves.
    script.set_mode(PollMode::Fail);
    let monitor = Monitor::new(w.ctx.clone(), settings());
    let stop = tokio::time::sleep(Duration::from_millis(500));
    monitor.run(Until::Stopped, stop, |_| {}).await.unwrap();
    assert!(script.polls.load(Ordering::Relaxed) >= 2);
    for i in 0..3 {
        assert_eq!(w.status(JobRef::subjob(id, i)), Status::Submitted);
    }
    script.set_mode(PollMode::Answer);
    w.monitor_until(settings(), |w| {
        w.status(JobRef::subjob(id, 0)) == Status::Completed
            && w.status(JobRef::subjob(id, 1)) == Status::Completed
    })
    .await;
    assert_eq!(w.status(JobRef::subjob(id, 0)), Status::Completed);
    assert_eq!(w.status(JobRef::subjob(id, 1)), Status::Completed);
    // Never answered for: still where it was, however long it took.
    assert_eq!(w.status(JobRef::subjob(id, 2)), Status::Submitted);
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_reordered_and_stray_answers_finish_nothing_wrongly() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 4)).await;
    for i in 0..4 {
        script.plan(JobRef::subjob(id, i), 1, &[Some(Running)]);
    }
    script.noisy.store(true, Ordering::Relaxed);
    let monitor = Monitor::new(w.ctx.clone(), settings());
    let stop = tokio::time::sleep(Duration::from_millis(500));
    monitor.run(Until::Stopped, stop, |_| {}).await.unwrap();
    // Each unit was answered twice, `Running` and `Killed`: an ambiguous answer changes
    // nothing (it is asked again), and the stray answer for job 999999 is ignored.
    for i in 0..4 {
        let s = w.status(JobRef::subjob(id, i));
        assert_eq!(
            s,
            Status::Submitted,
            "subjob {i} changed on ambiguous answers"
        );
    }
    script.noisy.store(false, Ordering::Relaxed);
    for i in 0..4 {
        script.plan(JobRef::subjob(id, i), 1, &[Some(Running), Some(Succeeded)]);
    }
    w.run_monitor(settings(), Until::Idle).await;
    assert_eq!(w.job(id).subjobs.get(Status::Completed), 4);
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_absent_for_the_grace_period_is_lost_and_a_brief_absence_is_not() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 2)).await;
    script.plan(JobRef::subjob(id, 0), 1, &[Some(Running), Some(Absent)]);
    // Absent twice (well within the grace period), then back and ends.
    script.plan(
        JobRef::subjob(id, 1),
        1,
        &[
            Some(Running),
            Some(Absent),
            Some(Absent),
            Some(Running),
            Some(Succeeded),
        ],
    );
    w.run_monitor(settings(), Until::Idle).await;
    let lost = w.run(JobRef::subjob(id, 0));
    assert_eq!(lost.status, Status::Failed);
    assert!(
        lost.backend
            .reason
            .as_deref()
            .unwrap()
            .starts_with("lost: ")
    );
    assert_eq!(w.status(JobRef::subjob(id, 1)), Status::Completed);
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_times_out_delays_only_its_own_units_and_fails_none() {
    use RemoteStatus::*;
    let (w, scripts) = world_with(
        vec![Script::new("stuck"), Script::new("fine")],
        Duration::from_millis(200),
    );
    let (stuck, fine) = (&scripts["stuck"], &scripts["fine"]);
    let a = w.submit(spec("stuck", 0)).await;
    let b = w.submit(spec("fine", 0)).await;
    fine.plan(JobRef::job(b), 1, &[Some(Running), Some(Succeeded)]);
    stuck.set_mode(PollMode::Hang);
    w.monitor_until(settings(), |w| {
        w.status(JobRef::job(b)) == Status::Completed && stuck.polls.load(Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(w.status(JobRef::job(b)), Status::Completed);
    assert_eq!(w.status(JobRef::job(a)), Status::Submitted);
    // It was asked again after each timeout.
    let calls = stuck.polls.load(Ordering::Relaxed);
    assert!(calls >= 3, "{calls} polls of the hanging backend");
    stuck.set_mode(PollMode::Answer);
    w.run_monitor(settings(), Until::Idle).await;
    assert_eq!(w.status(JobRef::job(a)), Status::Completed);
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_asked_less_and_less_often() {
    let (w, scripts) = world_with(
        vec![Script::new("down"), Script::new("up")],
        Duration::from_secs(5),
    );
    w.submit(spec("down", 0)).await;
    let up = w.submit(spec("up", 0)).await;
    scripts["down"].set_mode(PollMode::Fail);
    scripts["up"].plan(JobRef::job(up), 1, &[Some(RemoteStatus::Running)]);
    let s = MonitorSettings {
        interval: Some(Duration::from_millis(25)),
        error_cap: Duration::from_millis(800),
        quiet_factor: 1,
        ..MonitorSettings::default()
    };
    let monitor = Monitor::new(w.ctx.clone(), s);
    monitor
        .run(
            Until::Stopped,
            tokio::time::sleep(Duration::from_secs(2)),
            |_| {},
        )
        .await
        .unwrap();
    let down = scripts["down"].polls.load(Ordering::Relaxed);
    let up = scripts["up"].polls.load(Ordering::Relaxed);
    // Unchecked, both would be asked ~80 times in 2 s; backing off from 25 ms doubling to
    // 800 ms, the failing one about 8 times.
    assert!(
        (3..=15).contains(&down),
        "the failing backend was polled {down} times"
    );
    assert!(
        up > 3 * down,
        "the healthy one {up} times, the failing one {down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_cannot_be_collected_leave_the_unit_completing_until_they_can() {
    let (w, script) = world();
    let id = w.submit(spec("script", 0)).await;
    script.outputs_fail.store(true, Ordering::Relaxed);
    w.monitor_until(settings(), |w| {
        w.status(JobRef::job(id)) == Status::Completing
    })
    .await;
    let monitor = Monitor::new(w.ctx.clone(), settings());
    monitor
        .run(
            Until::Stopped,
            tokio::time::sleep(Duration::from_millis(300)),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(w.status(JobRef::job(id)), Status::Completing);
    // As after a crash while collecting: collected again, from the same evidence.
    script.outputs_fail.store(false, Ordering::Relaxed);
    w.run_monitor(settings(), Until::Idle).await;
    let run = w.run(JobRef::job(id));
    assert_eq!(run.status, Status::Completed);
    assert_eq!(run.outputs, ["stdout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_output_pattern_fails_a_unit_the_backend_called_successful() {
    let (w, script) = world();
    let id = w.submit(spec("script", 0)).await;
    *script.unmatched.lock().unwrap() = vec!["out.txt".into()];
    w.run_monitor(settings(), Until::Idle).await;
    let run = w.run(JobRef::job(id));
    assert_eq!(run.status, Status::Failed);
    assert_eq!(
        run.backend.reason.as_deref(),
        Some("output pattern `out.txt` matched nothing")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_by_another_process_meanwhile_stands() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 0)).await;
    script.plan(JobRef::job(id), 1, &[Some(Running)]);
    w.monitor_until(settings(), |w| w.status(JobRef::job(id)) == Status::Running)
        .await;
    // While the monitor waits for the backend's answer (that it succeeded), the user
    // forces the job failed: the monitor's change, based on `running`, is refused.
    script.plan(JobRef::job(id), 1, &[Some(Succeeded)]);
    let ops = w.ops.clone();
    *script.meanwhile.lock().unwrap() = Some(Box::pin(async move {
        ops.force_status(JobRef::job(id), Status::Failed)
            .await
            .unwrap();
    }));
    w.run_monitor(settings(), Until::Idle).await;
    let run = w.run(JobRef::job(id));
    assert_eq!(run.status, Status::Failed);
    assert!(
        run.outputs.is_empty(),
        "its outputs were collected: {run:?}"
    );
    assert!(script.meanwhile.lock().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_meet_another_writer_are_made_again_on_what_it_wrote() {
    let (w, _script, memory) = world_in_memory();
    let id = w.submit(spec("script", 3)).await;
    // The monitor's unit updates: the first two commits find the job changed meanwhile.
    memory.interfere(2);
    w.run_monitor(settings(), Until::Idle).await;
    assert_eq!(memory.interfered(), 2);
    assert_eq!(w.job(id).status(), Status::Completed);
    w.check();

    // A user's verb on the whole job (read, change, commit) is made again too.
    let id = w.submit(spec("script", 2)).await;
    memory.interfere(3);
    let forced = w.ops.force_status(JobRef::job(id), Status::Failed).await;
    assert_eq!(forced.unwrap().len(), 2);
    assert_eq!(memory.interfered(), 5);
    assert_eq!(w.status(JobRef::subjob(id, 1)), Status::Failed);
    w.check();

    memory.interfere(1);
    w.ops.remove(id, false).await.unwrap();
    assert_eq!(memory.interfered(), 6);
    assert!(w.store.job(id).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_another_writer_keeps_changing_is_given_up_on_unchanged() {
    let (w, _script, memory) = world_in_memory();
    let id = w.submit(spec("script", 2)).await;
    let before = w.job(id);
    memory.interfere(usize::MAX);
    let err = w
        .ops
        .force_status(JobRef::job(id), Status::Failed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpError::Contended(u) if u == JobRef::job(id)),
        "{err}"
    );
    let tries = memory.interfered();
    assert!(tries > 1, "given up after {tries} tries");
    memory.interfere(0);
    assert_eq!(w.job(id).status(), before.status());
    assert_eq!(w.status(JobRef::subjob(id, 0)), Status::Submitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_unit_is_resubmitted_automatically_within_the_limits() {
    use RemoteStatus::*;
    let (w, script) = world();
    let mut s = spec("script", 0);
    s.auto_resubmit = Some(AutoResubmit::DEFAULT);
    let once = w.submit(s.clone()).await;
    script.plan(JobRef::job(once), 1, &[Some(Running), Some(Failed)]);
    script.plan(JobRef::job(once), 2, &[Some(Running), Some(Succeeded)]);
    // One that always fails: resubmitted 2 times, then left failed.
    s.auto_resubmit = Some(AutoResubmit {
        max_attempts: 2,
        max_failed_fraction: 0.25,
    });
    let always = w.submit(s).await;
    for run in 1..=5 {
        script.plan(JobRef::job(always), run, &[Some(Failed)]);
    }
    w.run_monitor(settings(), Until::Finished(vec![once, always]))
        .await;
    let run = w.run(JobRef::job(once));
    assert_eq!(run.status, Status::Completed);
    assert_eq!((run.submit_count, run.auto_resubmits), (2, 1));
    let run = w.run(JobRef::job(always));
    assert_eq!(run.status, Status::Failed);
    assert_eq!((run.submit_count, run.auto_resubmits), (3, 2));
    let submitted = script.submitted.lock().unwrap().clone();
    assert_eq!(submitted.iter().filter(|(u, _)| u.job == always).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_job_is_resubmitted_only_when_few_of_its_subjobs_failed() {
    use RemoteStatus::*;
    let (w, script) = world();
    let mut s = spec("script", 4);
    s.auto_resubmit = Some(AutoResubmit::DEFAULT);
    // One of four fails: a quarter, within the limit.
    let few = w.submit(s.clone()).await;
    script.plan(JobRef::subjob(few, 2), 1, &[Some(Failed)]);
    // Two of four fail: more than a quarter, something no retry fixes.
    let many = w.submit(s).await;
    script.plan(JobRef::subjob(many, 0), 1, &[Some(Failed)]);
    script.plan(JobRef::subjob(many, 1), 1, &[Some(Failed)]);
    w.run_monitor(settings(), Until::Finished(vec![few, many]))
        .await;
    assert_eq!(w.job(few).status(), Status::Completed);
    let again = w.run(JobRef::subjob(few, 2));
    assert_eq!((again.submit_count, again.auto_resubmits), (2, 1));
    assert_eq!(w.job(many).status(), Status::Failed);
    assert_eq!(w.run(JobRef::subjob(many, 0)).submit_count, 1);
}

/// A job left `submitting` without backend ids, as a `ganga submit` killed between
/// handing units over and recording their ids leaves it.
async fn cut_off_submission(w: &World, backend: &str, n: usize) -> JobId {
    let id = w.ops.create(spec(backend, n)).await.unwrap();
    let mut job = w.job(id);
    let mut subjobs = w.store.subjobs(id, 0..job.subjob_count()).unwrap();
    job.begin_submit(&mut subjobs, ganga_core::Timestamp(1))
        .unwrap();
    let mut changes = vec![ganga_core::Change::PutJob(job)];
    if !subjobs.is_empty() {
        changes.push(ganga_core::Change::PutSubjobs { job: id, subjobs });
    }
    w.store.commit(&changes).unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_submission_is_resolved_by_asking_the_backend() {
    let mut s = Script::new("script");
    s.capabilities.find = true;
    let (w, mut scripts) = world_with(vec![s], Duration::from_secs(5));
    let script = scripts.remove("script").unwrap();
    let id = cut_off_submission(&w, "script", 3).await;
    // The backend took subjobs 0 and 2 before the submitter died; not 1.
    let found = |i| (JobRef::subjob(id, i), 1);
    script.found.lock().unwrap().insert(found(0), "x-0".into());
    script.found.lock().unwrap().insert(found(2), "x-2".into());
    w.run_monitor(settings(), Until::Idle).await;
    assert_eq!(w.status(JobRef::subjob(id, 0)), Status::Completed);
    assert_eq!(
        w.run(JobRef::subjob(id, 0)).backend.id.as_deref(),
        Some("x-0")
    );
    assert_eq!(w.status(JobRef::subjob(id, 2)), Status::Completed);
    let never = w.run(JobRef::subjob(id, 1));
    assert_eq!(never.status, Status::Failed);
    assert!(never.backend.reason.unwrap().contains("resubmit it"));
    // And it can be resubmitted.
    let report = w.ops.resubmit(JobRef::job(id)).await.unwrap();
    assert_eq!(report.submitted, 1);
    w.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_in_progress_is_left_alone_and_one_nobody_can_tell_about_fails() {
    let (w, script) = world();
    let id = cut_off_submission(&w, "script", 0).await;
    // While "another process" holds the job's submission lock, nothing touches it.
    let lock = w.ctx.locks.join(format!("submit-{id}.lock"));
    std::fs::create_dir_all(&w.ctx.locks).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .unwrap();
    file.lock().unwrap();
    let monitor = Monitor::new(w.ctx.clone(), settings());
    monitor
        .run(
            Until::Stopped,
            tokio::time::sleep(Duration::from_millis(300)),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(w.status(JobRef::job(id)), Status::Submitting);
    let err = w.ops.kill(JobRef::job(id)).await.unwrap_err().to_string();
    assert!(err.contains("is submitting it"), "{err}");
    // Nor is it removed, even forced: what was started would run on untracked.
    let err = w.ops.remove(id, true).await.unwrap_err().to_string();
    assert!(err.contains("cannot remove it while"), "{err}");
    assert_eq!(w.status(JobRef::job(id)), Status::Submitting);
    // Released (the submitter died): this backend cannot tell, so it fails, saying why.
    drop(file);
    w.run_monitor(settings(), Until::Idle).await;
    let run = w.run(JobRef::job(id));
    assert_eq!(run.status, Status::Failed);
    assert!(
        run.backend.reason.unwrap().contains("cannot tell"),
        "no reason"
    );
    assert_eq!(script.finds.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_backend_gets_changed_units_polled_at_once() {
    use RemoteStatus::*;
    let mut s = Script::new("script");
    s.capabilities.watch = true;
    let (w, mut scripts) = world_with(vec![s], Duration::from_secs(5));
    let script = scripts.remove("script").unwrap();
    let id = w.submit(spec("script", 20)).await;
    for i in 0..20 {
        script.plan(JobRef::subjob(id, i), 1, &[Some(Running)]);
    }
    // A slow backstop: only the watch can make this quick.
    let slow = MonitorSettings {
        interval: Some(Duration::from_secs(30)),
        ..settings()
    };
    let unit = JobRef::subjob(id, 7);
    let watcher = {
        let script = script.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            script.plan(unit, 1, &[Some(Succeeded)]);
            script.polled_units.lock().unwrap().clear();
            script.changed.lock().unwrap().push(unit);
        })
    };
    w.monitor_until(slow, |w| w.status(unit) == Status::Completed)
        .await;
    watcher.await.unwrap();
    assert_eq!(w.status(unit), Status::Completed);
    // The poll it caused asked about that unit alone.
    let polled = script.polled_units.lock().unwrap().clone();
    assert_eq!(polled, [unit]);
    assert_eq!(w.job(id).subjobs.get(Status::Running), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_asks_the_monitor_for_its_status_and_to_stop() {
    let (w, script) = world();
    let id = w.submit(spec("script", 2)).await;
    script.plan(JobRef::subjob(id, 0), 1, &[Some(RemoteStatus::Running)]);
    let socket = w._dir.path().join("monitor.sock");
    let s = MonitorSettings {
        control_socket: Some(socket.clone()),
        ..settings()
    };
    let monitor = Monitor::new(w.ctx.clone(), s);
    let asker = async {
        // Wait until it has polled and subjob 1 has ended (its outputs collected, which
        // takes a while on a loaded machine): then one unit is left running. The run's
        // timeout bounds the wait.
        let status = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let reply =
                ganga_monitor::ask(&socket, &ControlRequest::Status, Duration::from_secs(5))
                    .await
                    .unwrap();
            if let Some(ControlReply::Status(s)) = reply
                && s.polls > 0
                && s.backends.iter().map(|b| b.active_units).sum::<usize>() == 1
            {
                break s;
            }
        };
        assert_eq!(status.pid, std::process::id());
        assert_eq!(status.backends.len(), 1);
        assert_eq!(status.backends[0].name, "script");
        assert_eq!(status.backends[0].active_units, 1);
        let stop = ganga_monitor::ask(&socket, &ControlRequest::Stop, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(stop, Some(ControlReply::Done));
    };
    let run = monitor.run(Until::Stopped, std::future::pending(), |_| {});
    let (result, ()) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(run, asker) })
            .await
            .expect("stopped in time");
    result.unwrap();
    assert_eq!(w.status(JobRef::subjob(id, 1)), Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_reaches_the_backend_and_records_the_kill() {
    use RemoteStatus::*;
    let (w, script) = world();
    let id = w.submit(spec("script", 3)).await;
    for i in 0..3 {
        script.plan(JobRef::subjob(id, i), 1, &[Some(Running)]);
    }
    w.monitor_until(settings(), |w| w.job(id).subjobs.get(Status::Running) == 3)
        .await;
    let report = w.ops.kill(JobRef::job(id)).await.unwrap();
    assert_eq!(report.killed.len(), 3);
    assert!(report.failed.is_empty());
    let job = w.job(id);
    assert_eq!(job.status(), Status::Killed);
    assert_eq!(
        w.run(JobRef::subjob(id, 1)).backend.reason.as_deref(),
        Some("killed by the user")
    );
    // A monitor afterwards keeps them killed.
    w.run_monitor(settings(), Until::Idle).await;
    assert_eq!(w.job(id).subjobs.get(Status::Killed), 3);
    w.check();
}
