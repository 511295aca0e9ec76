//! `example`: a minimal but real backend plugin, to be read top to bottom beside
//! `docs/plugin-guide.md`.
//!
//! It runs each job in the foreground while it is submitted, like Ganga's `Interactive`
//! backend: `submit` starts the program, waits for it to end and writes down how it
//! ended. Every other call only reads what `submit` left in the job's workspace:
//!
//! ```text
//! <workspace>/            (SubmitSpec::workspace: this job's alone; may not exist yet)
//!   example.exit          how the run ended: written by submit, read by poll
//!   run/                  the working directory: input files, stdout, stderr, the job's files
//! <output_dir>/           (SubmitSpec::output_dir) where `outputs` copies the results
//! ```
//!
//! State lives in these files only, never in memory: the `ganga` process that submits a
//! job exits, and a later one (the monitor, `ganga peek`) asks about it.
//!
//! Settings: `timeout_secs`, in the user's config file (`[plugin.example]`, for every job)
//! or in a job file's `[backend]` table (for that job). A job that runs longer is stopped
//! and ends failed. Without it a job may run for ever, and `submit` with it.
//!
//! It is not: a way to run jobs in the background (that is the `local` backend), nor
//! portable beyond Unix-like systems.

use std::collections::BTreeSet;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, Capabilities, Options,
    OutputsReport, OutputsRequest, PeekFile, PollReport, RemoteStatus, SubmitSpec, Submitted,
    Timestamp, Value, check_inside_workdir,
};
use ganga_plugin_sdk::{PluginContext, blocking};

// ---------------------------------------------------------------------------------------
// Where things are in a job's workspace.
// ---------------------------------------------------------------------------------------

/// The working directory, inside the workspace. A directory of its own (rather than the
/// workspace itself) so that the job's files never mix with ours or with `output_dir`,
/// which ganga places inside the workspace too.
const RUN_DIR: &str = "run";
/// The exit record, inside the workspace (outside `run/`, so the job cannot overwrite it
/// and output patterns such as `*` never collect it).
const EXIT_RECORD: &str = "example.exit";
/// stdout and stderr, inside the working directory. These names are a convention all
/// backends keep: `outputs` collects them under the same names, and `ganga peek` looks
/// for them there once a job has ended.
const STDOUT: &str = "stdout";
const STDERR: &str = "stderr";

fn run_dir(workspace: &Path) -> PathBuf {
    workspace.join(RUN_DIR)
}

fn exit_record(workspace: &Path) -> PathBuf {
    workspace.join(EXIT_RECORD)
}

// ---------------------------------------------------------------------------------------
// The backend and its settings.
// ---------------------------------------------------------------------------------------

/// Runs each job in the foreground at submit time. It holds no state but its settings:
/// everything about a job is in the job's workspace.
#[derive(Debug, Clone, Default)]
pub struct ExampleBackend {
    /// Stop a job that runs longer than this, unless its own options say otherwise.
    default_timeout: Option<Duration>,
}

impl ExampleBackend {
    pub fn new(default_timeout: Option<Duration>) -> ExampleBackend {
        ExampleBackend { default_timeout }
    }
}

/// Reads `timeout_secs` from a table of settings: the plugin's config table, or a job's
/// backend options. Unknown keys are refused rather than ignored, so that a typo
/// (`timout_secs`) is not silently a job without a timeout.
fn read_timeout(options: &Options, table: &str) -> Result<Option<Duration>, String> {
    if let Some(key) = options.keys().find(|k| k.as_str() != "timeout_secs") {
        return Err(format!(
            "{table}: unknown setting `{key}` (the example backend knows only `timeout_secs`)"
        ));
    }
    match options.get("timeout_secs") {
        None => Ok(None),
        Some(Value::Integer(n)) if *n > 0 => Ok(Some(Duration::from_secs(n.unsigned_abs()))),
        Some(other) => Err(format!(
            "{table}: `timeout_secs` must be a positive whole number of seconds, not {} ({other})",
            other.kind()
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The exit record: the only evidence of how a job ended.
// ---------------------------------------------------------------------------------------

/// How a run ended, as `submit` writes it and `poll` reads it back. Plain text, so that a
/// person debugging a job can `cat` it:
///
/// ```text
/// id 41237
/// started 1732300000000
/// ended 1732300000750
/// exited 0              (or: signal 9, or: timeout 60)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExitRecord {
    /// The id `submit` returned for this run (the process id). `poll` compares it with the
    /// id it is asked about, so a record of another run is never taken for this one's.
    id: String,
    started: Timestamp,
    ended: Timestamp,
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The program exited with this code.
    Exited(i32),
    /// The program was ended by this signal.
    Signal(i32),
    /// It ran longer than `timeout_secs` (this many seconds) and was stopped.
    Timeout(u64),
}

impl End {
    fn of(status: ExitStatus) -> End {
        match status.code() {
            Some(code) => End::Exited(code),
            None => End::Signal(signal_of(status)),
        }
    }
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.signal().unwrap_or(0)
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> i32 {
    0
}

impl ExitRecord {
    fn to_text(&self) -> String {
        let end = match self.end {
            End::Exited(code) => format!("exited {code}"),
            End::Signal(sig) => format!("signal {sig}"),
            End::Timeout(secs) => format!("timeout {secs}"),
        };
        format!(
            "id {}\nstarted {}\nended {}\n{end}\n",
            self.id,
            self.started.as_millis(),
            self.ended.as_millis()
        )
    }

    /// Reads a record back. `None` if it is not one (cut short, or written by hand).
    fn parse(text: &str) -> Option<ExitRecord> {
        let (mut id, mut started, mut ended, mut end) = (None, None, None, None);
        for line in text.lines() {
            let (key, value) = line.split_once(' ')?;
            match key {
                "id" => id = Some(value.to_owned()),
                "started" => started = Some(Timestamp::from_millis(value.parse().ok()?)),
                "ended" => ended = Some(Timestamp::from_millis(value.parse().ok()?)),
                "exited" => end = Some(End::Exited(value.parse().ok()?)),
                "signal" => end = Some(End::Signal(value.parse().ok()?)),
                "timeout" => end = Some(End::Timeout(value.parse().ok()?)),
                _ => return None,
            }
        }
        Some(ExitRecord {
            id: id?,
            started: started?,
            ended: ended?,
            end: end?,
        })
    }
}

/// Writes the record whole or not at all: to a temporary name, then renamed over the real
/// one. A crash half-way must not leave half a record that `poll` could misread.
async fn write_record(path: &Path, record: &ExitRecord) -> io::Result<()> {
    let tmp = path.with_extension("exit.tmp");
    tokio::fs::write(&tmp, record.to_text()).await?;
    tokio::fs::rename(&tmp, path).await
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

// ---------------------------------------------------------------------------------------
// submit: run one job, start to end.
// ---------------------------------------------------------------------------------------

impl ExampleBackend {
    /// Runs one job and records how it ended. An `Err` is this job's alone: it becomes
    /// `failed` with this text as its reason, and the other jobs of the batch go on.
    async fn run_job(&self, spec: &SubmitSpec) -> Result<Submitted, String> {
        // A job's options may override the plugin's settings. Wrong options fail this
        // job, not the whole submission: other jobs in the batch may have good ones.
        let timeout = read_timeout(&spec.options, "[backend]")?.or(self.default_timeout);

        let run = run_dir(&spec.workspace);
        let record = exit_record(&spec.workspace);
        // A job that is submitted again starts clean: a record left by its last run
        // must never answer for this one.
        remove_if_exists(&record).await?;
        prepare_run_dir(&run, &spec.input_files).await?;

        let stdout = create_file(&run.join(STDOUT)).await?;
        let stderr = create_file(&run.join(STDERR)).await?;
        let mut child = tokio::process::Command::new(&spec.exe)
            .args(&spec.args)
            .envs(&spec.env)
            .current_dir(&run)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // If the host gives up on this call (it drops the future), do not leave the
            // program running unseen: stop it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", spec.exe))?;
        let id = child
            .id()
            .ok_or("the program ended before its process id was read")?
            .to_string();
        let started = now();
        tracing::debug!("example backend: job {} runs as process {id}", spec.job);

        let end = match timeout {
            None => End::of(child.wait().await.map_err(|e| wait_failed(&id, e))?),
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(status) => End::of(status.map_err(|e| wait_failed(&id, e))?),
                Err(_elapsed) => {
                    // `kill` sends SIGKILL and waits for the process. Processes it
                    // started itself are not stopped: a real backend puts each job in a
                    // process group of its own and signals the group, as `local` does.
                    child
                        .kill()
                        .await
                        .map_err(|e| format!("cannot stop process {id}: {e}"))?;
                    End::Timeout(limit.as_secs())
                }
            },
        };

        let exit = ExitRecord {
            id: id.clone(),
            started,
            ended: now(),
            end,
        };
        write_record(&record, &exit)
            .await
            .map_err(|e| format!("cannot write {}: {e}", record.display()))?;
        Ok(Submitted {
            id,
            actual_ce: None,
        })
    }
}

fn wait_failed(id: &str, e: io::Error) -> String {
    format!("cannot wait for process {id}: {e}")
}

async fn remove_if_exists(path: &Path) -> Result<(), String> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes an empty working directory (and the workspace, which may not exist yet) and
/// copies the input files into it by name.
async fn prepare_run_dir(run: &Path, inputs: &[PathBuf]) -> Result<(), String> {
    match tokio::fs::remove_dir_all(run).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(format!("cannot remove the old {}: {e}", run.display()));
        }
        _ => {}
    }
    tokio::fs::create_dir_all(run)
        .await
        .map_err(|e| format!("cannot create {}: {e}", run.display()))?;
    let mut names = BTreeSet::new();
    for input in inputs {
        let name = input
            .file_name()
            .ok_or_else(|| format!("input file {} has no file name", input.display()))?;
        if !names.insert(name.to_owned()) {
            return Err(format!(
                "two input files are named {}",
                name.to_string_lossy()
            ));
        }
        tokio::fs::copy(input, run.join(name))
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => format!("input file {} does not exist", input.display()),
                _ => format!("cannot copy input file {}: {e}", input.display()),
            })?;
    }
    Ok(())
}

async fn create_file(path: &Path) -> Result<std::fs::File, String> {
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(file.into_std().await)
}

// ---------------------------------------------------------------------------------------
// poll: what the exit record says.
// ---------------------------------------------------------------------------------------

/// Where one job is, from its workspace alone. Never `Succeeded` without an exit record of
/// this very run that says exit code 0.
fn poll_job(job: &BackendRef) -> PollReport {
    let path = exit_record(&job.workspace);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // Submit writes the record before it answers, and the monitor polls only jobs
        // whose submission was answered. So no record means the job is not here (its
        // workspace was removed, or it never ran here) - not that it is still running.
        // `Absent` says so; the monitor fails it as lost if that lasts.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return report(
                RemoteStatus::Absent,
                "no exit record",
                Some(format!("there is no exit record {}", path.display())),
            );
        }
        // Anything else (a permission problem, a flaky network file system) may pass:
        // `Unknown` changes nothing, and the monitor asks again next time.
        Err(e) => {
            return report(
                RemoteStatus::Unknown,
                "unreadable",
                Some(format!("cannot read {}: {e}", path.display())),
            );
        }
    };
    let Some(record) = ExitRecord::parse(&text) else {
        return report(
            RemoteStatus::Failed,
            "bad exit record",
            Some(format!("{} is not an exit record", path.display())),
        );
    };
    if record.id != job.id {
        return report(
            RemoteStatus::Failed,
            "lost",
            Some(format!(
                "lost: the exit record belongs to process {}, not {}",
                record.id, job.id
            )),
        );
    }
    let (status, native, exit_code, reason) = match record.end {
        End::Exited(0) => (
            RemoteStatus::Succeeded,
            "exited 0".to_owned(),
            Some(0),
            None,
        ),
        End::Exited(code) => (
            RemoteStatus::Failed,
            format!("exited {code}"),
            Some(code),
            Some(format!("exit code {code}")),
        ),
        End::Signal(sig) => (
            RemoteStatus::Failed,
            format!("signal {sig}"),
            None,
            Some(format!("ended by signal {sig}")),
        ),
        End::Timeout(secs) => (
            RemoteStatus::Failed,
            "timed out".to_owned(),
            None,
            Some(format!("stopped after {secs} s (timeout_secs)")),
        ),
    };
    PollReport {
        exit_code,
        // Times from the evidence, not from when we looked: the monitor records them.
        started: Some(record.started),
        ended: Some(record.ended),
        ..report(status, &native, reason)
    }
}

fn report(status: RemoteStatus, native_state: &str, reason: Option<String>) -> PollReport {
    PollReport {
        reason,
        ..PollReport::new(status, native_state)
    }
}

// ---------------------------------------------------------------------------------------
// outputs and peek: copying and reading files of the working directory.
// ---------------------------------------------------------------------------------------

/// Copies what one job's patterns match, and its stdout and stderr, into its output
/// directory. Idempotent: the working directory is kept, so a second call (after a crash
/// of the monitor, say) copies the same files again and answers the same.
fn collect(request: &OutputsRequest) -> Result<OutputsReport, String> {
    let job = &request.job;
    let run = run_dir(&job.workspace);
    if !run.is_dir() {
        return Err(format!(
            "job {}: there is no working directory {}",
            job.job,
            run.display()
        ));
    }
    let out = &request.output_dir;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let mut collected = BTreeSet::new();
    let mut unmatched = Vec::new();
    for pattern in &request.patterns {
        let found = matching_files(&run, pattern);
        if found.is_empty() {
            unmatched.push(pattern.clone());
        }
        for rel in found {
            copy_out(&run, &rel, out)?;
            collected.insert(rel.to_string_lossy().into_owned());
        }
    }
    for name in [STDOUT, STDERR] {
        if run.join(name).is_file() {
            copy_out(&run, Path::new(name), out)?;
            collected.insert(name.to_owned());
        }
    }
    Ok(OutputsReport {
        collected: collected.into_iter().collect(),
        unmatched,
        skipped: Vec::new(),
    })
}

/// The files under `run` that `pattern` matches, relative to `run`. Like the shell, `*`
/// matches neither `/` nor a leading `.`. A pattern that could leave `run` matches
/// nothing. (Only files are collected; a real backend may want directories too.)
fn matching_files(run: &Path, pattern: &str) -> Vec<PathBuf> {
    if let Err(e) = check_inside_workdir(pattern) {
        tracing::warn!("example backend: output pattern {e}: ignored");
        return Vec::new();
    }
    let base = glob::Pattern::escape(&run.to_string_lossy());
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let Ok(paths) = glob::glob_with(&format!("{base}/{pattern}"), options) else {
        tracing::warn!("example backend: output pattern `{pattern}` is not a glob pattern");
        return Vec::new();
    };
    paths
        .filter_map(Result::ok)
        .filter(|path| path.is_file())
        .filter_map(|path| path.strip_prefix(run).ok().map(Path::to_path_buf))
        .collect()
}

fn copy_out(run: &Path, rel: &Path, out: &Path) -> Result<(), String> {
    let (from, to) = (run.join(rel), out.join(rel));
    let failed = |e: io::Error| format!("cannot copy {} to {}: {e}", from.display(), to.display());
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::copy(&from, &to).map_err(failed)?;
    Ok(())
}

/// The last `max_bytes` of a file.
fn tail(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let n = len.min(max_bytes);
    file.seek(SeekFrom::Start(len - n))?;
    let mut bytes = Vec::new();
    file.take(n).read_to_end(&mut bytes)?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// The Backend trait: what ganga calls.
//
// Every call but `peek` takes a batch and answers per job, keyed by the job (`Answers`):
// the monitor asks about thousands of jobs, and a real batch system answers one `squeue`
// for all of them far faster than one per job. A failure of one job is reported for that
// job (an `Err` in its answer, or a `PollReport` saying so); a job left out of an answer
// is simply asked about again later; an `Err` of the whole call says that the call itself
// could not be made, and changes no job.
//
// Never panic here, least of all on what comes from outside (a job's files, a user's
// pattern). The SDK catches a panic and turns it into a `Panicked` error for the whole
// call, so ganga survives it; but every job in the batch then fails with it.
// ---------------------------------------------------------------------------------------

#[async_trait]
impl Backend for ExampleBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: "example".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Nothing changes after submit: there is no hurry to ask again.
            poll_interval_secs: 10,
            // Jobs run one after the other inside `submit`: keep batches small, so one
            // call does not hold the submitting `ganga` too long.
            max_batch: 20,
            // None of poll_all, watch, find: the defaults do.
            capabilities: Capabilities::default(),
            // The per-job settings a job file's `[backend]` table may hold.
            options: Some(vec!["timeout_secs".into()]),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        // One after the other, as Ganga's Interactive backend does.
        let mut answers = Vec::with_capacity(jobs.len());
        for spec in jobs {
            answers.push((spec.job, self.run_job(spec).await));
        }
        Ok(answers)
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        // Poll must be cheap: one small read per job, all in one blocking task (file
        // reads would otherwise block the runtime's few worker threads).
        let jobs = jobs.to_vec();
        blocking("example backend: polling", move || {
            jobs.iter().map(|j| (j.job, Ok(poll_job(j)))).collect()
        })
        .await
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        // Every job ended inside `submit`: there is nothing to kill. Saying `Ok` would
        // make ganga mark it killed and forget how it really ended, so refuse, per job.
        let jobs = jobs.to_vec();
        blocking("example backend: kill", move || {
            jobs.iter()
                .map(|job| {
                    let why = format!(
                        "nothing to kill: the example backend runs each job to its end when it is submitted (this one: {})",
                        poll_job(job).native_state
                    );
                    (job.job, Err(why))
                })
                .collect()
        })
        .await
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let rel = match file {
            PeekFile::Stdout => STDOUT,
            PeekFile::Stderr => STDERR,
            PeekFile::Path(path) => {
                // Users name this path: never let it leave the working directory.
                check_inside_workdir(path).map_err(|e| {
                    BackendError::failed(format!(
                        "job {}: cannot peek at {e}: only files inside the working directory can be read",
                        job.job
                    ))
                })?;
                path.as_str()
            }
        };
        let path = run_dir(&job.workspace).join(rel);
        let job_ref = job.job;
        blocking("example backend: peek", move || tail(&path, max_bytes))
            .await?
            .map_err(|e| BackendError::failed(format!("job {job_ref}: cannot read {rel}: {e}")))
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let jobs = jobs.to_vec();
        blocking("example backend: outputs", move || {
            jobs.iter().map(|r| (r.job.job, collect(r))).collect()
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Exporting the plugin.
// ---------------------------------------------------------------------------------------

/// How ganga makes the backend when a job first needs it. `create` runs inside the
/// plugin's own tokio runtime; its error is shown to the user as is.
impl ganga_plugin_sdk::BackendPlugin for ExampleBackend {
    fn create(context: PluginContext) -> Result<Self, String> {
        // `context.home` is ganga's home; this backend keeps nothing outside the jobs'
        // workspaces, so it does not need it. `context.config` is the `[plugin.example]`
        // table of the user's config file.
        let default_timeout = read_timeout(&context.config, "[plugin.example]")?;
        Ok(ExampleBackend::new(default_timeout))
    }
}

// The declaration ganga's loader looks for (`ganga_plugin_decl_ganga_backend_example`),
// and the name job files use: `[backend] type = "example"`.
ganga_plugin_sdk::export_backend!(ExampleBackend, "example");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records_read_back_as_written() {
        for end in [
            End::Exited(0),
            End::Exited(3),
            End::Signal(9),
            End::Timeout(60),
        ] {
            let record = ExitRecord {
                id: "41237".into(),
                started: Timestamp::from_millis(1),
                ended: Timestamp::from_millis(2),
                end,
            };
            assert_eq!(ExitRecord::parse(&record.to_text()), Some(record));
        }
        assert_eq!(ExitRecord::parse("id 1\nstarted 1\n"), None);
        assert_eq!(ExitRecord::parse("garbage"), None);
    }

    #[test]
    fn timeouts_are_read_and_checked() {
        let table = |pairs: &[(&str, Value)]| -> Options {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        assert_eq!(read_timeout(&Options::new(), "t"), Ok(None));
        assert_eq!(
            read_timeout(&table(&[("timeout_secs", Value::Integer(5))]), "t"),
            Ok(Some(Duration::from_secs(5)))
        );
        let bad = read_timeout(&table(&[("timeout_secs", Value::Integer(0))]), "[backend]");
        assert!(bad.is_err_and(|e| e.contains("[backend]") && e.contains("positive")));
        let typo = read_timeout(&table(&[("timout_secs", Value::Integer(5))]), "t");
        assert!(typo.is_err_and(|e| e.contains("unknown setting `timout_secs`")));
    }
}
