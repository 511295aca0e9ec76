//! The monitor's decisions against the real store and a scripted backend: no job is ever
//! lost or wrongly finished, whatever the backend answers or fails to answer.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ganga_core::{
    Answers, Application, Backend, BackendConfig, BackendDescription, BackendError, BackendRef,
    Executable, JobCache, JobId, JobRef, JobSpec, OutputsReport, OutputsRequest, PeekFile,
    PollReport, RemoteStatus, Splitter, Status, Store, SubmitSpec, Submitted, Workspaces,
};
use ganga_monitor::{Backends, Context, Monitor, MonitorSettings, Operations};
use ganga_store_lmdb::LmdbStore;

/// A backend that says what the test tells it to, and records what it was asked.
#[derive(Default)]
struct Scripted {
    answers: Mutex<HashMap<JobRef, RemoteStatus>>,
    poll_fails: Mutex<bool>,
    outputs_fail: Mutex<bool>,
    unmatched: Mutex<Vec<String>>,
    /// Run during the next poll, as another process would act meanwhile.
    during_poll: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    polls: Mutex<usize>,
}

impl Scripted {
    fn answer(&self, job: JobRef, status: RemoteStatus) {
        self.answers.lock().unwrap().insert(job, status);
    }
}

#[async_trait]
impl Backend for Scripted {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: "scripted".into(),
            version: "0".into(),
            poll_interval_secs: 1,
            max_batch: 2,
            capabilities: Default::default(),
            options: None,
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        Ok(jobs
            .iter()
            .map(|s| (s.job, Ok(Submitted::id(format!("id-{}", s.job)))))
            .collect())
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        *self.polls.lock().unwrap() += 1;
        if let Some(act) = self.during_poll.lock().unwrap().take() {
            act();
        }
        if *self.poll_fails.lock().unwrap() {
            return Err(BackendError::failed("the scheduler did not answer"));
        }
        let answers = self.answers.lock().unwrap();
        // Jobs it has no answer for are left out, as a backend that lost track would.
        Ok(jobs
            .iter()
            .filter_map(|r| {
                answers.get(&r.job).map(|&status| {
                    let report = PollReport {
                        exit_code: match status {
                            RemoteStatus::Succeeded => Some(0),
                            RemoteStatus::Failed => Some(1),
                            _ => None,
                        },
                        ..PollReport::new(status, format!("{status:?}"))
                    };
                    (r.job, Ok(report))
                })
            })
            .collect())
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        Ok(jobs.iter().map(|r| (r.job, Ok(()))).collect())
    }

    async fn peek(&self, _: &BackendRef, _: &PeekFile, _: u64) -> Result<Vec<u8>, BackendError> {
        Ok(Vec::new())
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        if *self.outputs_fail.lock().unwrap() {
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

struct One(Arc<Scripted>);

impl Backends for One {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        match name {
            "scripted" => Ok(self.0.clone()),
            other => Err(format!("unknown backend `{other}`")),
        }
    }
}

struct World {
    _dir: tempfile::TempDir,
    backend: Arc<Scripted>,
    ops: Operations,
    monitor: Monitor,
    store: Arc<dyn Store>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&dir.path().join("store")).unwrap());
    let backend = Arc::new(Scripted::default());
    let ctx = Context {
        store: store.clone(),
        cache: Arc::new(JobCache::new(store.clone(), 1 << 20)),
        backends: Arc::new(One(backend.clone())),
        workspaces: Workspaces::new(dir.path().join("workspace")),
    };
    let settings = MonitorSettings {
        interval: Duration::from_millis(10),
        submit_grace: Duration::from_secs(600),
    };
    World {
        _dir: dir,
        backend,
        ops: Operations::new(ctx.clone()),
        monitor: Monitor::new(ctx, settings),
        store,
    }
}

fn spec(subjobs: usize) -> JobSpec {
    JobSpec {
        name: "m".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/true".into(),
            args: vec![],
            env: Default::default(),
        }),
        backend: BackendConfig::named("scripted"),
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
    async fn submit(&self, subjobs: usize) -> JobId {
        self.ops.submit_spec(spec(subjobs)).await.unwrap().job
    }

    fn status(&self, r: JobRef) -> Status {
        let job = self.store.job(r.job).unwrap().unwrap();
        match r.subjob {
            None => job.status(),
            Some(i) => self.store.subjobs(r.job, i..i + 1).unwrap()[0].status(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_silent_backend_finishes_nothing() {
    let w = world();
    let id = w.submit(3).await;
    assert_eq!(w.status(JobRef::job(id)), Status::Submitted);

    // The backend fails outright: nothing changes, the problem is reported.
    *w.backend.poll_fails.lock().unwrap() = true;
    let report = w.monitor.cycle().await.unwrap();
    assert_eq!(report.changed, 0);
    assert!(
        report.problems[0].contains("the scheduler did not answer"),
        "{report:?}"
    );

    // It answers for some jobs only, or says it cannot tell: the others stay as they were.
    *w.backend.poll_fails.lock().unwrap() = false;
    w.backend
        .answer(JobRef::subjob(id, 0), RemoteStatus::Succeeded);
    w.backend
        .answer(JobRef::subjob(id, 1), RemoteStatus::Unknown);
    let report = w.monitor.cycle().await.unwrap();
    assert_eq!(
        report.polled, 3,
        "all three asked about, in batches of max_batch"
    );
    assert_eq!(w.status(JobRef::subjob(id, 0)), Status::Completed);
    assert_eq!(w.status(JobRef::subjob(id, 1)), Status::Submitted);
    assert_eq!(w.status(JobRef::subjob(id, 2)), Status::Submitted);
    assert_eq!(w.status(JobRef::job(id)), Status::Submitted);
    assert_eq!(w.store.check().unwrap().problems, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_cannot_be_collected_leave_the_job_completing_until_they_can() {
    let w = world();
    let id = w.submit(0).await;
    w.backend.answer(JobRef::job(id), RemoteStatus::Succeeded);
    *w.backend.outputs_fail.lock().unwrap() = true;
    let report = w.monitor.cycle().await.unwrap();
    assert_eq!(w.status(JobRef::job(id)), Status::Completing);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("file server is down")),
        "{report:?}"
    );

    // As after a crash while collecting: the next cycle collects them again.
    *w.backend.outputs_fail.lock().unwrap() = false;
    w.monitor.cycle().await.unwrap();
    assert_eq!(w.status(JobRef::job(id)), Status::Completed);
    let job = w.store.job(id).unwrap().unwrap();
    assert_eq!(job.run.outputs, vec!["stdout"]);
    assert_eq!(job.run.backend.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_output_pattern_fails_a_job_the_backend_called_successful() {
    let w = world();
    let id = w.submit(0).await;
    w.backend.answer(JobRef::job(id), RemoteStatus::Succeeded);
    *w.backend.unmatched.lock().unwrap() = vec!["out.txt".into()];
    w.monitor.cycle().await.unwrap();
    let job = w.store.job(id).unwrap().unwrap();
    assert_eq!(job.status(), Status::Failed);
    assert_eq!(
        job.run.backend.reason.as_deref(),
        Some("output pattern `out.txt` matched nothing")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_another_process_during_a_cycle_is_not_overwritten() {
    let w = world();
    let id = w.submit(0).await;
    w.backend.answer(JobRef::job(id), RemoteStatus::Running);
    // While the monitor waits for the backend, "another process" forces the job failed.
    let other = w.ops.clone();
    *w.backend.during_poll.lock().unwrap() = Some(Box::new(move || {
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            handle.block_on(other.force_status(JobRef::job(id), Status::Failed))
        })
        .join()
        .unwrap()
        .unwrap();
    }));
    let report = w.monitor.cycle().await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("changed by another process")),
        "{report:?}"
    );
    assert_eq!(
        w.status(JobRef::job(id)),
        Status::Failed,
        "the other process's change stands"
    );
    // Next cycle: failed is not active, so the monitor leaves it alone.
    let report = w.monitor.cycle().await.unwrap();
    assert_eq!(report.active_jobs, 0);
    assert_eq!(w.status(JobRef::job(id)), Status::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_cut_off_before_the_backend_answered_is_failed_after_the_grace() {
    let w = world();
    // A job left `submitting` with no backend id, as a ganga killed mid-submit leaves it.
    let id = w.ops.create(spec(0)).await.unwrap();
    let mut job = w.store.job(id).unwrap().unwrap();
    job.begin_submit(&mut [], ganga_core::Timestamp(1)).unwrap();
    w.store.commit(&[ganga_core::Change::PutJob(job)]).unwrap();

    let ctx = w.monitor.context().clone();
    let strict = Monitor::new(
        ctx,
        MonitorSettings {
            interval: Duration::from_millis(10),
            submit_grace: Duration::from_secs(0),
        },
    );
    strict.cycle().await.unwrap();
    let job = w.store.job(id).unwrap().unwrap();
    assert_eq!(job.status(), Status::Failed);
    assert!(job.run.backend.reason.unwrap().contains("interrupted"));
    // And it can be resubmitted.
    let report = w.ops.resubmit(JobRef::job(id)).await.unwrap();
    assert_eq!(report.submitted, 1);
    assert_eq!(w.status(JobRef::job(id)), Status::Submitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_stops_when_idle_and_drives_a_split_job_to_the_end() {
    let w = world();
    let id = w.submit(5).await;
    for i in 0..5 {
        w.backend.answer(
            JobRef::subjob(id, i),
            if i == 3 {
                RemoteStatus::Failed
            } else {
                RemoteStatus::Succeeded
            },
        );
    }
    let mut cycles = 0;
    w.monitor
        .run(ganga_monitor::Until::Idle, std::future::pending(), |_| {
            cycles += 1
        })
        .await
        .unwrap();
    assert!(cycles >= 1);
    let job = w.store.job(id).unwrap().unwrap();
    assert_eq!(job.status(), Status::Failed);
    assert_eq!(job.subjobs.get(Status::Completed), 4);
    assert_eq!(job.subjobs.get(Status::Failed), 1);
    assert_eq!(w.store.check().unwrap().problems, Vec::<String>::new());
    assert!(*w.backend.polls.lock().unwrap() >= cycles);
    let cache_stats = w.monitor.context().cache.stats();
    assert!(cache_stats.used_bytes <= cache_stats.budget_bytes);
}
