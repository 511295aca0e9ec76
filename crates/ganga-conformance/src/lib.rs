//! The backend conformance suite: the contract every ganga [`Backend`] keeps, checked with
//! real jobs (`/bin/sh -c ...`) in a temporary directory. Plugin authors run it in their
//! tests (usually through `ganga_test_support::conformance`, which re-exports this crate),
//! and `ganga plugins check FILE` runs it against a built library.
//!
//! ```ignore
//! use ganga_conformance::{self as conformance, Check, ConformanceEnv};
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn my_backend_conforms() {
//!     let backend = MyBackend::create(context).unwrap();
//!     let env = ConformanceEnv::new().unwrap();
//!     // Failures print as a readable list: which check, which job, expected, got.
//!     conformance::run(&backend, &env).await.unwrap();
//! }
//! ```
//!
//! Run it twice: on the backend linked in as an rlib, and on the library loaded through
//! `ganga_plugin_host::Catalog`, so that the dynamic boundary is exercised too.
//!
//! The suite is backend-agnostic: it runs `/bin/sh` jobs, waits for them by polling (up
//! to [`ConformanceEnv::timeout`]), and accepts jobs that are answered at once as well as
//! jobs that are `Queued` or `Running` first. A backend that runs jobs in the foreground
//! (inside `submit`) skips [`Check::KillRunning`] and [`Check::Runs`]. Each [`Check`] can also be run alone
//! with [`run_check`]. Calls carry up to three jobs, whatever the backend's `max_batch`
//! says: that is the monitor's hint for chunking, and other callers (`kill`) send more.
//! A check that panics (a backend linked in that panics) or does not finish within
//! [`ConformanceEnv::check_timeout`] fails; the suite goes on with the next.
//!
//! It is not: a benchmark (it checks neither speed nor scale), a test of a backend's own
//! options beyond refusing unknown ones, or a sandbox (the backend runs in the caller's
//! process, as trusted code; `ganga plugins check` runs each check in a child process).

mod checks;
mod helpers;

use std::collections::BTreeSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use ganga_core::{Backend, BackendDescription, JobId, JobRef, SubmitSpec, Workspaces};

pub use self::helpers::{
    Mismatch, Seen, ShellJob, backend_ref, is_final, keyed, poll_checked, poll_until_final,
    show_report, submit_all,
};

/// One rule of the backend contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    /// `describe` answers with a name, a version, a poll interval and a batch size.
    Describe,
    /// Every batch call accepts an empty list and answers with an empty list.
    EmptyBatches,
    /// `submit` of N specs answers once for each, keyed by its job, with an id; the jobs
    /// then run.
    SubmitBatch,
    /// A job that exits 0 ends `Succeeded`, having had its arguments, environment and
    /// input files.
    Succeeds,
    /// A job that exits 3 ends `Failed` with exit code 3, and its stdout and stderr can
    /// still be collected.
    Fails,
    /// `poll` answers once for each job asked about, keyed by the job, and for no other.
    PollBatch,
    /// A job the backend never ran is never reported `Succeeded`: `Absent`, `Unknown`, or
    /// `Failed` with a reason.
    UnknownJob,
    /// `outputs` copies what the patterns match, and stdout and stderr, into the output
    /// directory, and names the patterns that matched nothing.
    Outputs,
    /// `outputs` called again for the same job answers the same and leaves the same
    /// files: the monitor calls it again after a crash.
    OutputsIdempotent,
    /// `peek` returns the tail of stdout, of stderr and of a file of the working
    /// directory, at most `max_bytes`.
    Peek,
    /// `peek` refuses paths that leave the working directory (`../x`, absolute paths).
    PeekEscape,
    /// One bad job in a batch (a missing input file) fails alone; the others are accepted
    /// and run.
    PerJobErrors,
    /// A job with a backend option the backend does not list in `describe` is refused
    /// alone, with an error naming the option; the others in its batch are accepted. For
    /// a backend whose `describe` lists its options (`Some`).
    BadOptions,
    /// `kill` of a job that already ended answers for it (done, or an error) and does not
    /// change how it ended.
    KillEnded,
    /// A running job can be killed: `kill` answers done and the job ends `Killed`. Needs
    /// a backend whose `submit` returns before the job ends; skip it for one that runs
    /// jobs in the foreground.
    KillRunning,
    /// What an earlier run of a unit left (its exit record) never ends a later run of it.
    /// Needs jobs that run in the background, as `KillRunning`.
    Runs,
    /// `poll_all` answers for every unit asked, keyed, as `poll` does.
    PollAll,
    /// A backend that declares `find` names a submitted run by its id, and says `None` of
    /// units and runs it never got.
    Find,
    /// A backend that declares `watch` names a job in `changes` once it ended.
    Watch,
    /// Calls about units, ids, runs, paths and patterns the backend never gave (an id
    /// that is no number, run 0, a workspace that is a file, an invalid glob pattern)
    /// answer without a panic: errors for those units, or `Absent`/`Unknown`. A panic
    /// fails a whole call, so one bad unit would stop every unit of its batch.
    NoPanics,
}

impl Check {
    /// Every check, in the order [`run`] runs them.
    pub const ALL: [Check; 20] = [
        Check::Describe,
        Check::EmptyBatches,
        Check::SubmitBatch,
        Check::Succeeds,
        Check::Fails,
        Check::PollBatch,
        Check::UnknownJob,
        Check::Outputs,
        Check::OutputsIdempotent,
        Check::Peek,
        Check::PeekEscape,
        Check::PerJobErrors,
        Check::BadOptions,
        Check::KillEnded,
        Check::KillRunning,
        Check::Runs,
        Check::PollAll,
        Check::Find,
        Check::Watch,
        Check::NoPanics,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Describe => "describe",
            Check::EmptyBatches => "empty_batches",
            Check::SubmitBatch => "submit_batch",
            Check::Succeeds => "succeeds",
            Check::Fails => "fails",
            Check::PollBatch => "poll_batch",
            Check::UnknownJob => "unknown_job",
            Check::Outputs => "outputs",
            Check::OutputsIdempotent => "outputs_idempotent",
            Check::Peek => "peek",
            Check::PeekEscape => "peek_escape",
            Check::PerJobErrors => "per_job_errors",
            Check::BadOptions => "bad_options",
            Check::KillEnded => "kill_ended",
            Check::KillRunning => "kill_running",
            Check::Runs => "runs",
            Check::PollAll => "poll_all",
            Check::Find => "find",
            Check::Watch => "watch",
            Check::NoPanics => "no_panics",
        }
    }

    /// The check called `name` (as [`Check::name`] gives it).
    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Why this check says nothing about a backend described so, if it does not: it
    /// checks a capability the backend does not declare. `None`: it applies.
    pub fn not_applicable(self, description: &BackendDescription) -> Option<&'static str> {
        match self {
            Check::Find if !description.capabilities.find => {
                Some("the backend does not declare the capability `find`")
            }
            Check::Watch if !description.capabilities.watch => {
                Some("the backend does not declare the capability `watch`")
            }
            Check::BadOptions if description.options.is_none() => {
                Some("the backend does not list its options (describe's `options` is None)")
            }
            _ => None,
        }
    }

    /// The rule, in one sentence.
    pub fn rule(self) -> &'static str {
        match self {
            Check::Describe => {
                "describe answers with a name, a version, a poll interval and a batch size of at least 1"
            }
            Check::EmptyBatches => "every batch call answers an empty list with an empty list",
            Check::SubmitBatch => {
                "submit of N specs answers once for each, keyed by its job, with an id, and the jobs run"
            }
            Check::Succeeds => {
                "a job that exits 0 ends Succeeded, having had its arguments, environment and input files"
            }
            Check::Fails => {
                "a job that exits 3 ends Failed with exit code 3, and its stdout and stderr are still collected"
            }
            Check::PollBatch => {
                "poll answers once for each job asked about, keyed by the job, and for no other"
            }
            Check::UnknownJob => {
                "a job the backend never ran is not reported Succeeded: Absent, Unknown, or Failed with a reason"
            }
            Check::Outputs => {
                "outputs copies matched files, stdout and stderr into the output directory and names unmatched patterns"
            }
            Check::OutputsIdempotent => {
                "outputs called twice for a job gives the same report and the same files"
            }
            Check::Peek => {
                "peek returns the tail of stdout, stderr and a working-directory file, at most max_bytes"
            }
            Check::PeekEscape => "peek refuses paths outside the working directory",
            Check::PerJobErrors => {
                "a bad job in a batch (a missing input file) fails alone; the others are accepted and run"
            }
            Check::BadOptions => {
                "a job with an option the backend does not list is refused alone, naming the option"
            }
            Check::KillEnded => {
                "kill of an ended job answers for it and does not change how it ended"
            }
            Check::KillRunning => "kill of a running job answers done and the job ends Killed",
            Check::Runs => "an earlier run's records never end a later run of the same unit",
            Check::PollAll => "poll_all answers once for each unit asked about, keyed",
            Check::Find => {
                "find names a submitted run by its id and says None of what was never submitted"
            }
            Check::Watch => "changes names a job once it ended (for a backend that watches)",
            Check::NoPanics => {
                "calls about ids, runs, paths and patterns the backend never gave answer without a panic"
            }
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how the suite runs: a directory for the jobs' workspaces and input files,
/// how long to wait, which checks to leave out.
#[derive(Debug)]
pub struct ConformanceEnv {
    root: PathBuf,
    /// Deleted when the env is dropped, if the env made it.
    _temp: Option<tempfile::TempDir>,
    timeout: Duration,
    /// `None`: three times `timeout`.
    check_timeout: Option<Duration>,
    poll_interval: Duration,
    skipped: BTreeSet<Check>,
    next_id: AtomicU64,
}

impl ConformanceEnv {
    /// In a new temporary directory, removed when the env is dropped.
    pub fn new() -> std::io::Result<ConformanceEnv> {
        let temp = tempfile::Builder::new()
            .prefix("ganga-conformance")
            .tempdir()?;
        let mut env = ConformanceEnv::in_dir(temp.path());
        env._temp = Some(temp);
        Ok(env)
    }

    /// In `root` (an absolute path the backend can reach), which is left in place.
    pub fn in_dir(root: impl Into<PathBuf>) -> ConformanceEnv {
        ConformanceEnv {
            root: root.into(),
            _temp: None,
            timeout: Duration::from_secs(60),
            check_timeout: None,
            poll_interval: Duration::from_millis(100),
            skipped: BTreeSet::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// How long a short job may take from `submit` until `poll` says it ended (default:
    /// 60 s, generous for a loaded machine).
    pub fn with_timeout(mut self, timeout: Duration) -> ConformanceEnv {
        self.timeout = timeout;
        self
    }

    /// How long one check may take in all before it fails as hanging (default: three
    /// times [`ConformanceEnv::timeout`]: the longest checks wait for two jobs in turn).
    pub fn with_check_timeout(mut self, limit: Duration) -> ConformanceEnv {
        self.check_timeout = Some(limit);
        self
    }

    /// The pause between two polls while waiting (default: 100 ms).
    pub fn with_poll_interval(mut self, every: Duration) -> ConformanceEnv {
        self.poll_interval = every;
        self
    }

    /// Leaves a check out of [`run`].
    pub fn skip(mut self, check: Check) -> ConformanceEnv {
        self.skipped.insert(check);
        self
    }

    pub fn is_skipped(&self, check: Check) -> bool {
        self.skipped.contains(&check)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn check_timeout(&self) -> Duration {
        self.check_timeout
            .unwrap_or_else(|| self.timeout.saturating_mul(3))
    }

    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The jobs' workspaces, laid out as ganga lays them out: `<root>/workspace/<id>/`.
    pub fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.root.join("workspace"))
    }

    /// A job id not used before in this env.
    pub fn next_job(&self) -> JobId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The spec of `shell` run as `job`, with its workspace in this env.
    pub fn spec(&self, job: JobRef, shell: &ShellJob) -> SubmitSpec {
        shell.spec(job, &self.workspaces())
    }
}

/// A check that failed: which, for which job, what was expected and what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFailure {
    pub check: Check,
    pub job: Option<JobRef>,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check `{}` failed", self.check)?;
        if let Some(job) = self.job {
            write!(f, " for job {job}")?;
        }
        write!(
            f,
            " ({})\n  expected: {}\n  got:      {}",
            self.check.rule(),
            self.expected,
            self.got
        )
    }
}

impl std::error::Error for ConformanceFailure {}

/// Every check that failed in one [`run`]. Its `Debug` is its `Display`, so that
/// `run(..).await.unwrap()` prints a readable list.
#[derive(Clone, PartialEq, Eq)]
pub struct ConformanceFailures {
    /// How many checks ran.
    pub ran: usize,
    pub failures: Vec<ConformanceFailure>,
}

impl fmt::Display for ConformanceFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} backend conformance checks failed:",
            self.failures.len(),
            self.ran
        )?;
        for failure in &self.failures {
            write!(f, "\n\n{failure}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConformanceFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConformanceFailures {}

/// What became of a check that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend keeps this rule.
    Passed,
    /// The rule is about a capability the backend does not declare (see
    /// [`Check::not_applicable`]); nothing was checked.
    NotApplicable(&'static str),
}

/// Runs every check not skipped, one after the other, and reports all that failed.
pub async fn run(backend: &dyn Backend, env: &ConformanceEnv) -> Result<(), ConformanceFailures> {
    let mut ran = 0;
    let mut failures = Vec::new();
    for check in Check::ALL {
        if env.is_skipped(check) {
            continue;
        }
        ran += 1;
        if let Err(failure) = run_check(check, backend, env).await {
            failures.push(failure);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ConformanceFailures { ran, failures })
    }
}

/// Runs one check (even one the env skips). A check whose rule does not apply to the
/// backend (a capability it does not declare) is [`Outcome::NotApplicable`]. A panic
/// while it runs, or a check still running after [`ConformanceEnv::check_timeout`],
/// fails it.
pub async fn run_check(
    check: Check,
    backend: &dyn Backend,
    env: &ConformanceEnv,
) -> Result<Outcome, ConformanceFailure> {
    let fail = |m: Mismatch| ConformanceFailure {
        check,
        job: m.job,
        expected: m.expected,
        got: m.got,
    };
    let limit = env.check_timeout();
    let work = AssertUnwindSafe(async {
        if matches!(check, Check::Find | Check::Watch | Check::BadOptions) {
            let description = backend.describe().await.map_err(|e| {
                Mismatch::new(
                    "a description, to tell whether the check applies",
                    format!("an error: {e}"),
                )
            })?;
            if let Some(why) = check.not_applicable(&description) {
                return Ok(Outcome::NotApplicable(why));
            }
        }
        checks::run(check, backend, env)
            .await
            .map(|()| Outcome::Passed)
    })
    .catch_unwind();
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(outcome)) => outcome.map_err(fail),
        Ok(Err(payload)) => Err(fail(Mismatch::new(
            "the check to run to its end",
            format!("a panic: {}", panic_message(&*payload)),
        ))),
        Err(_) => Err(fail(Mismatch::new(
            format!("the check to end within {limit:?}"),
            "it did not: a call hangs, or jobs never end",
        ))),
    }
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
