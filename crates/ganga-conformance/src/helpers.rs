//! Building jobs, submitting them and waiting for them; usable in any backend's tests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ganga_core::{
    Answers, Backend, BackendRef, JobRef, Options, PerJob, PollReport, RemoteStatus, SubmitSpec,
    Submitted, Value, Workspaces,
};

/// What a call answered, against what the contract wants: a check's failure before it is
/// named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub job: Option<JobRef>,
    pub expected: String,
    pub got: String,
}

impl Mismatch {
    pub fn new(expected: impl Into<String>, got: impl Into<String>) -> Mismatch {
        Mismatch {
            job: None,
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn for_job(mut self, job: JobRef) -> Mismatch {
        self.job = Some(job);
        self
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(job) = self.job {
            write!(f, "job {job}: ")?;
        }
        write!(f, "expected {}, got {}", self.expected, self.got)
    }
}

impl std::error::Error for Mismatch {}

/// A job that runs a shell script: `/bin/sh -c SCRIPT job ARGS...`, so the script sees
/// its arguments as `$1`, `$2`...
#[derive(Debug, Clone, PartialEq)]
pub struct ShellJob {
    script: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    inputs: Vec<PathBuf>,
    outputs: Vec<String>,
    options: Options,
}

impl ShellJob {
    pub fn new(script: impl Into<String>) -> ShellJob {
        ShellJob {
            script: script.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            options: Options::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> ShellJob {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> ShellJob {
        self.env.insert(name.into(), value.into());
        self
    }

    /// An input file (an absolute path) copied into the working directory.
    pub fn input(mut self, path: impl Into<PathBuf>) -> ShellJob {
        self.inputs.push(path.into());
        self
    }

    /// An output pattern collected once it ended.
    pub fn output(mut self, pattern: impl Into<String>) -> ShellJob {
        self.outputs.push(pattern.into());
        self
    }

    /// A backend option, as a job file's `[backend]` table gives it.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> ShellJob {
        self.options.insert(key.into(), value.into());
        self
    }

    /// The spec of the first run of `job`, its workspace and output directory laid out as
    /// ganga lays them out. Nothing is created: making the workspace is the backend's
    /// business.
    pub fn spec(&self, job: JobRef, workspaces: &Workspaces) -> SubmitSpec {
        self.spec_of_run(job, 1, workspaces)
    }

    /// The spec of run `run` of `job`.
    pub fn spec_of_run(&self, job: JobRef, run: u32, workspaces: &Workspaces) -> SubmitSpec {
        let mut args = vec!["-c".to_owned(), self.script.clone(), "job".to_owned()];
        args.extend(self.args.iter().cloned());
        SubmitSpec {
            job,
            run,
            previous_id: None,
            name: format!("conformance job {job}"),
            exe: "/bin/sh".to_owned(),
            args,
            env: self.env.clone(),
            input_files: self.inputs.clone(),
            output_patterns: self.outputs.clone(),
            workspace: workspaces.dir(job),
            output_dir: workspaces.output_dir(job),
            options: self.options.clone(),
        }
    }
}

/// How the monitor names a submitted job in later calls.
pub fn backend_ref(spec: &SubmitSpec, submitted: &Submitted) -> BackendRef {
    BackendRef {
        job: spec.job,
        id: submitted.id.clone(),
        run: spec.run,
        workspace: spec.workspace.clone(),
    }
}

/// What a poll said of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub job: JobRef,
    pub report: PollReport,
}

/// An answer to a batch call in the order of `asked`, checking that it answers for every
/// job asked about exactly once and for no other.
pub fn keyed<T>(
    call: &str,
    asked: &[JobRef],
    answers: Answers<T>,
) -> Result<Vec<PerJob<T>>, Mismatch> {
    let expected = || {
        format!(
            "{call} to answer once for each job asked about ({})",
            show_jobs(asked.iter().copied())
        )
    };
    let mut by_job: BTreeMap<JobRef, PerJob<T>> = BTreeMap::new();
    for (job, answer) in answers {
        if !asked.contains(&job) {
            return Err(Mismatch::new(
                expected(),
                format!("an answer for job {job}"),
            ));
        }
        if by_job.insert(job, answer).is_some() {
            return Err(Mismatch::new(expected(), "two answers").for_job(job));
        }
    }
    asked
        .iter()
        .map(|job| {
            by_job
                .remove(job)
                .ok_or_else(|| Mismatch::new(expected(), "no answer").for_job(*job))
        })
        .collect()
}

/// Whether a status is an end (the monitor then collects outputs, or marks it killed).
pub fn is_final(status: RemoteStatus) -> bool {
    matches!(
        status,
        RemoteStatus::Succeeded | RemoteStatus::Failed | RemoteStatus::Killed
    )
}

/// A report in a few words: `Failed (`exited 3`, exit code 3, reason: exit code 3)`.
pub fn show_report(report: &PollReport) -> String {
    let mut text = format!("{:?} (`{}`", report.status, report.native_state);
    if let Some(code) = report.exit_code {
        text.push_str(&format!(", exit code {code}"));
    }
    if let Some(reason) = &report.reason {
        text.push_str(&format!(", reason: {reason}"));
    }
    text.push(')');
    text
}

pub(crate) fn show_jobs(jobs: impl IntoIterator<Item = JobRef>) -> String {
    let names: Vec<String> = jobs.into_iter().map(|j| j.to_string()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Submits `specs` in one call and checks the answer's shape: one answer per spec, keyed
/// by its job, each with a non-empty id if accepted. Returns the answers in the order of
/// the specs, which may be errors.
pub(crate) async fn submit_answers(
    backend: &dyn Backend,
    specs: &[SubmitSpec],
) -> Result<Vec<Result<Submitted, String>>, Mismatch> {
    let asked: Vec<JobRef> = specs.iter().map(|s| s.job).collect();
    let answers = backend.submit(specs).await.map_err(|e| {
        Mismatch::new(
            format!("one answer per job ({})", show_jobs(asked.clone())),
            format!("the whole call failed: {e}"),
        )
    })?;
    let answers = keyed("submit", &asked, answers)?;
    for (spec, answer) in specs.iter().zip(&answers) {
        if let Ok(submitted) = answer
            && submitted.id.trim().is_empty()
        {
            return Err(Mismatch::new("a non-empty backend id", "an empty id").for_job(spec.job));
        }
    }
    Ok(answers)
}

/// Submits `specs` in one call; every one must be accepted. Returns how to name them.
pub async fn submit_all(
    backend: &dyn Backend,
    specs: &[SubmitSpec],
) -> Result<Vec<BackendRef>, Mismatch> {
    let answers = submit_answers(backend, specs).await?;
    specs
        .iter()
        .zip(answers)
        .map(|(spec, answer)| match answer {
            Ok(submitted) => Ok(backend_ref(spec, &submitted)),
            Err(e) => Err(
                Mismatch::new("the job accepted", format!("it was refused: {e}")).for_job(spec.job),
            ),
        })
        .collect()
}

/// Polls once and checks the answer's shape: one report for each job asked about.
/// Returns them in the order asked.
pub async fn poll_checked(
    backend: &dyn Backend,
    jobs: &[BackendRef],
) -> Result<Vec<Seen>, Mismatch> {
    let asked: Vec<JobRef> = jobs.iter().map(|r| r.job).collect();
    let reports = backend.poll(jobs).await.map_err(|e| {
        Mismatch::new(
            format!("one poll report per job ({})", show_jobs(asked.clone())),
            format!("the whole call failed: {e}"),
        )
    })?;
    asked
        .iter()
        .zip(keyed("poll", &asked, reports)?)
        .map(|(job, answer)| match answer {
            Ok(report) => Ok(Seen { job: *job, report }),
            Err(e) => Err(
                Mismatch::new("a poll report", format!("an error of its own: {e}")).for_job(*job),
            ),
        })
        .collect()
}

/// Polls `jobs` (all in each call) until every one has ended, checking each answer's
/// shape. Gives up after `timeout`, naming the first job still going.
pub async fn poll_until_final(
    backend: &dyn Backend,
    jobs: &[BackendRef],
    timeout: Duration,
    every: Duration,
) -> Result<Vec<Seen>, Mismatch> {
    poll_until(backend, jobs, timeout, every, "to end", |r| {
        is_final(r.status)
    })
    .await
}

/// Polls until `done` holds for every report. A job that ends without `done` holding for
/// it fails at once: it will not change any more.
pub(crate) async fn poll_until(
    backend: &dyn Backend,
    jobs: &[BackendRef],
    timeout: Duration,
    every: Duration,
    waiting_to: &str,
    done: impl Fn(&PollReport) -> bool,
) -> Result<Vec<Seen>, Mismatch> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = poll_checked(backend, jobs).await?;
        if seen.iter().all(|s| done(&s.report)) {
            return Ok(seen);
        }
        if let Some(ended) = seen
            .iter()
            .find(|s| !done(&s.report) && is_final(s.report.status))
        {
            return Err(Mismatch::new(
                format!("the job {waiting_to}"),
                format!("it ended: {}", show_report(&ended.report)),
            )
            .for_job(ended.job));
        }
        if Instant::now() >= deadline {
            let late = seen.iter().find(|s| !done(&s.report));
            return Err(match late {
                Some(s) => Mismatch::new(
                    format!("the job {waiting_to} within {timeout:?}"),
                    format!("it is still {}", show_report(&s.report)),
                )
                .for_job(s.job),
                None => Mismatch::new(format!("the jobs {waiting_to}"), "a timeout"),
            });
        }
        tokio::time::sleep(every).await;
    }
}
