//! The example backend against the conformance suite, linked in and as the real library,
//! and the few things only it does (timeouts, options, nothing to kill).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ganga_backend_example::ExampleBackend;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, JobRef, Options, OutputsReport,
    OutputsRequest, PeekFile, PollReport, RemoteStatus, SubmitSpec, Submitted, Value,
};
use ganga_plugin_host::{Catalog, HostError};
use ganga_plugin_sdk::BackendPlugin as _;
use ganga_plugin_sdk::PluginContext;
use ganga_test_support::built_plugin;
use ganga_test_support::conformance::{
    self, Check, ConformanceEnv, ShellJob, poll_checked, submit_all,
};

fn env() -> ConformanceEnv {
    ConformanceEnv::new()
        .expect("a temporary directory")
        // Jobs run inside `submit`: there is never a running job to kill, nor one that
        // runs while another run of it is submitted.
        .skip(Check::KillRunning)
        .skip(Check::Runs)
}

fn context(home: &Path, config: &[(&str, Value)]) -> PluginContext {
    PluginContext {
        home: home.to_owned(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Options>(),
        home_id: "test".into(),
    }
}

/// The example backend as ganga loads it: the cdylib, through the plugin host.
fn loaded(home: &Path, config: &[(&str, Value)]) -> Result<Arc<dyn Backend>, HostError> {
    let path = built_plugin("ganga-backend-example");
    let mut catalog = Catalog::new();
    let info = catalog.load_file(&path).expect("the library is a plugin");
    assert_eq!(info.name, "example");
    catalog.backend("example", &context(home, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_when_linked_in() {
    let env = env();
    let backend = ExampleBackend::create(context(env.root(), &[])).expect("the backend starts");
    conformance::run(&backend, &env)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_as_a_loaded_library() {
    let env = env();
    let backend = loaded(env.root(), &[]).expect("the backend starts");
    conformance::run(&*backend, &env)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_its_timeout_is_stopped_and_fails() {
    let env = env();
    let backend = ExampleBackend::new(Some(Duration::from_secs(600)));
    // The job's own option wins over the plugin's setting.
    let shell = ShellJob::new("sleep 30").option("timeout_secs", 1);
    let refs = submit_all(&backend, &[env.spec(JobRef::job(1), &shell)])
        .await
        .unwrap_or_else(|m| panic!("{m}"));
    let report = &poll_checked(&backend, &refs)
        .await
        .unwrap_or_else(|m| panic!("{m}"))[0]
        .report;
    assert_eq!(report.status, RemoteStatus::Failed, "{report:?}");
    assert_eq!(report.native_state, "timed out");
    assert!(
        report
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("timeout_secs")),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_options_fail_their_job_alone() {
    let env = env();
    let backend = ExampleBackend::default();
    let specs = [
        env.spec(
            JobRef::subjob(1, 0),
            &ShellJob::new("exit 0").option("queue", "long"),
        ),
        env.spec(JobRef::subjob(1, 1), &ShellJob::new("exit 0")),
    ];
    let answers = backend.submit(&specs).await.expect("the call works");
    let asked = [specs[0].job, specs[1].job];
    let answers = conformance::keyed("submit", &asked, answers).unwrap_or_else(|m| panic!("{m}"));
    let error = answers[0]
        .as_ref()
        .expect_err("an unknown option is refused");
    assert!(error.contains("unknown setting `queue`"), "{error}");
    assert!(answers[1].is_ok(), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_says_the_job_already_ended() {
    let env = env();
    let backend = ExampleBackend::default();
    let refs = submit_all(
        &backend,
        &[env.spec(JobRef::job(1), &ShellJob::new("exit 0"))],
    )
    .await
    .unwrap_or_else(|m| panic!("{m}"));
    let answers = backend.kill(&refs).await.expect("the call works");
    let error = answers[0].1.as_ref().expect_err("nothing to kill");
    assert!(error.contains("nothing to kill"), "{error}");
    assert!(error.contains("(this one: exited 0)"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_reads_what_submit_left() {
    // The `ganga` that submits exits; a later one, with a backend of its own, polls.
    let env = env();
    let refs = submit_all(
        &ExampleBackend::default(),
        &[env.spec(JobRef::job(1), &ShellJob::new("exit 5"))],
    )
    .await
    .unwrap_or_else(|m| panic!("{m}"));
    let later = loaded(env.root(), &[]).expect("the backend starts");
    let report = &poll_checked(&*later, &refs)
        .await
        .unwrap_or_else(|m| panic!("{m}"))[0]
        .report;
    assert_eq!(report.status, RemoteStatus::Failed);
    assert_eq!(report.exit_code, Some(5));
    assert!(
        report.started.is_some() && report.ended.is_some(),
        "{report:?}"
    );

    // A record of another run never answers for this one.
    let mut other = refs[0].clone();
    other.id = "1".into();
    let report = &poll_checked(&*later, &[other])
        .await
        .unwrap_or_else(|m| panic!("{m}"))[0]
        .report;
    assert_eq!(report.status, RemoteStatus::Failed);
    assert_eq!(report.native_state, "lost");
}

#[test]
fn a_bad_config_stops_the_plugin_with_a_clear_message() {
    let home = tempfile::tempdir().expect("a temporary directory");
    let error = loaded(home.path(), &[("timeout_secs", Value::from("soon"))])
        .err()
        .expect("the plugin refuses to start")
        .to_string();
    assert!(error.contains("[plugin.example]"), "{error}");
    assert!(error.contains("timeout_secs"), "{error}");
}

/// The example backend with one rule of the contract broken, to show that the suite
/// notices (and says which rule).
struct Broken {
    inner: ExampleBackend,
    flaw: Flaw,
}

#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    /// Answers a poll for the first job twice (and so labels an answer wrongly).
    PollTwice,
    /// Takes a job without an exit record for succeeded ("gone means done").
    AbsentIsSucceeded,
    /// Reads any path it is asked to peek at.
    PeekAnywhere,
    /// Forgets to name the patterns that matched nothing.
    NoUnmatched,
    /// Fails the whole submission when one job is refused.
    AllOrNothing,
    /// Drops the options it does not know instead of refusing the job.
    IgnoresOptions,
    /// Panics on an id it never gave (an empty one).
    PanicsOnStrangeIds,
    /// Never answers a peek.
    PeekHangs,
}

#[async_trait::async_trait]
impl Backend for Broken {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        self.inner.describe().await
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let mut jobs = jobs.to_vec();
        if self.flaw == Flaw::IgnoresOptions {
            for spec in &mut jobs {
                spec.options.clear();
            }
        }
        let answers = self.inner.submit(&jobs).await?;
        if self.flaw == Flaw::AllOrNothing
            && let Some((_, Err(e))) = answers.iter().find(|(_, a)| a.is_err())
        {
            return Err(BackendError::failed(e.clone()));
        }
        Ok(answers)
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        if self.flaw == Flaw::PanicsOnStrangeIds && jobs.iter().any(|r| r.id.is_empty()) {
            panic!("an empty id");
        }
        let mut reports = self.inner.poll(jobs).await?;
        match self.flaw {
            Flaw::PollTwice => {
                if let (Some(first), Some(second)) = (reports.first().cloned(), reports.get_mut(1))
                {
                    second.0 = first.0;
                }
            }
            Flaw::AbsentIsSucceeded => {
                for (_, r) in &mut reports {
                    if let Ok(r) = r
                        && r.status == RemoteStatus::Absent
                    {
                        r.status = RemoteStatus::Succeeded;
                    }
                }
            }
            _ => {}
        }
        Ok(reports)
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        self.inner.kill(jobs).await
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        match (self.flaw, file) {
            (Flaw::PeekHangs, _) => std::future::pending().await,
            (Flaw::PeekAnywhere, PeekFile::Path(p)) => {
                std::fs::read(job.workspace.join("run").join(p))
                    .map_err(|e| BackendError::failed(e.to_string()))
            }
            _ => self.inner.peek(job, file, max_bytes).await,
        }
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let mut answers = self.inner.outputs(jobs).await?;
        if self.flaw == Flaw::NoUnmatched {
            for (_, report) in &mut answers {
                if let Ok(report) = report {
                    report.unmatched.clear();
                }
            }
        }
        Ok(answers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_names_the_broken_rule() {
    for (flaw, check, says) in [
        (Flaw::PollTwice, Check::PollBatch, "two answers"),
        (Flaw::AbsentIsSucceeded, Check::UnknownJob, "Succeeded"),
        (
            Flaw::PeekAnywhere,
            Check::PeekEscape,
            "outside the working directory",
        ),
        (
            Flaw::NoUnmatched,
            Check::Outputs,
            "unmatched [\"nothing-*.dat\"]",
        ),
        (
            Flaw::AllOrNothing,
            Check::PerJobErrors,
            "the whole call failed",
        ),
        (
            Flaw::IgnoresOptions,
            Check::BadOptions,
            "got:      it was accepted",
        ),
        (
            Flaw::PanicsOnStrangeIds,
            Check::NoPanics,
            "got:      a panic: an empty id",
        ),
        (
            Flaw::PeekHangs,
            Check::Peek,
            "expected: the check to end within 2s",
        ),
    ] {
        let backend = Broken {
            inner: ExampleBackend::default(),
            flaw,
        };
        // A hang is found when the check's time is up.
        let env = if flaw == Flaw::PeekHangs {
            env().with_check_timeout(Duration::from_secs(2))
        } else {
            env()
        };
        let failure = conformance::run_check(check, &backend, &env)
            .await
            .expect_err("the flaw is found");
        let text = failure.to_string();
        assert_eq!(failure.check, check, "{text}");
        assert!(text.contains(says), "{text}");
        println!("{text}\n");
    }
}
