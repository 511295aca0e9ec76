//! A ganga backend whose jobs run detached on this machine, each under `nice`. `submit`
//! starts each run under a small wrapper script (`wrapper.sh`) and returns; the run
//! outlives the `ganga` that submitted it. A later `ganga`, with a fresh instance of this
//! backend, follows it from its id (the host, the wrapper's pid and its start time) and
//! from records in the unit's workspace, one file per kind and run, so that an earlier
//! run's records never decide a later run:
//!
//! ```text
//! <workspace>/template/exit-<run>    the exit code: the wrapper, once the program ended
//! <workspace>/template/killed-<run>  kill, before it signals the run's process group
//! <workspace>/work/                  the working directory: inputs, stdout, stderr, files
//! ```
//!
//! It is not a scheduler: every run starts at once. Linux only (it reads `/proc`). Why
//! each step is as it is: "Detached backends" in ganga-rs's `docs/plugin-guide.md`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};
use std::{fs, io};

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, Capabilities, OutputsReport,
    OutputsRequest, PeekFile, PerJob, PollReport, RemoteStatus, SubmitSpec, Submitted, Timestamp,
    Value,
};
use ganga_plugin_sdk::files;
use ganga_plugin_sdk::{PluginContext, blocking};

use crate::process::{Proc, Signal};

mod process;

/// The backend's name in job files (`[backend] type`), and its directory in workspaces.
const NAME: &str = "template";
/// The per-job options it knows: `describe` lists them, `submit` refuses any other.
const OPTIONS: [&str; 1] = ["nice"];
/// Between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

pub struct TemplateBackend {
    /// The niceness of jobs that give none: `[plugin.template] nice`, else 10.
    nice: i64,
}

impl ganga_plugin_sdk::BackendPlugin for TemplateBackend {
    fn create(context: PluginContext) -> Result<Self, String> {
        let mut nice = 10;
        for (key, value) in &context.config {
            nice = match key.as_str() {
                "nice" => niceness(value),
                _ => Err(format!("unknown setting `{key}` (known: nice)")),
            }
            .map_err(|e| format!("[plugin.{NAME}]: {e}"))?;
        }
        Ok(TemplateBackend { nice })
    }
}

ganga_plugin_sdk::export_backend!(TemplateBackend, "template");

fn niceness(value: &Value) -> Result<i64, String> {
    match value {
        Value::Integer(n) if (0..=19).contains(n) => Ok(*n),
        other => Err(format!("`nice` must be 0 to 19, not {other}")),
    }
}

#[async_trait]
impl Backend for TemplateBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            poll_interval_secs: 5,
            max_batch: 100,
            capabilities: Capabilities::default(),
            options: Some(OPTIONS.map(String::from).to_vec()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let (specs, nice) = (jobs.to_vec(), self.nice);
        blocking(NAME, move || {
            specs.iter().map(|s| (s.job, start(s, nice))).collect()
        })
        .await
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        let refs = jobs.to_vec();
        blocking(NAME, move || {
            refs.iter().map(|r| (r.job, Ok(decide(r)))).collect()
        })
        .await
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        let refs = jobs.to_vec();
        blocking(NAME, move || {
            refs.iter().map(|r| r.job).zip(stop(&refs)).collect()
        })
        .await
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let (work, name) = (work_dir(&job.workspace), file.name().to_owned());
        // Refuses paths that lead out of the working directory, and reads only the end.
        let tail = blocking(NAME, move || files::tail(&work, &name, max)).await?;
        tail.map_err(|e| BackendError::failed(e.to_string()))
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let requests = jobs.to_vec();
        blocking(NAME, move || {
            requests.iter().map(|r| (r.job.job, collect(r))).collect()
        })
        .await
    }
}

fn record(workspace: &Path, kind: &str, run: u32) -> PathBuf {
    workspace.join(NAME).join(format!("{kind}-{run}"))
}

fn work_dir(workspace: &Path) -> PathBuf {
    workspace.join("work")
}

fn at(path: &Path) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Starts one run. Its id (the host, the wrapper's pid and its start time) is all a later
/// poll needs besides the records the run writes.
fn start(spec: &SubmitSpec, default_nice: i64) -> PerJob<Submitted> {
    let mut nice = default_nice;
    for (key, value) in &spec.options {
        nice = match key.as_str() {
            "nice" => niceness(value)?,
            _ => return Err(format!("unknown backend option `{key}` (known: nice)")),
        };
    }
    // What is left of the previous run must not run on beside this one.
    if let Some(previous) = spec.previous_id.as_deref().and_then(Proc::parse) {
        let mut signalled = Vec::new();
        previous
            .terminate(&mut signalled)
            .map_err(|e| format!("cannot stop the previous run ({previous}): {e}"))?;
        finish(&signalled);
    }
    let (work, control) = (work_dir(&spec.workspace), spec.workspace.join(NAME));
    files::remove_tree(&work).map_err(at(&work))?;
    fs::create_dir_all(&control)
        .and_then(|()| fs::create_dir(&work))
        .map_err(at(&work))?;
    for kind in ["exit", "killed"] {
        match fs::remove_file(record(&spec.workspace, kind, spec.run)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&control)(e)),
            _ => {}
        }
    }
    for input in &spec.input_files {
        let name = input
            .file_name()
            .ok_or_else(|| format!("input file {} has no name", input.display()))?;
        fs::copy(input, work.join(name))
            .map_err(|e| format!("cannot copy input file {}: {e}", input.display()))?;
    }
    let proc = process::spawn_wrapper(&control, &work, spec, nice)
        .map_err(|e| format!("cannot start the job: {e}"))?;
    Ok(Submitted::id(proc.to_string()))
}

/// How a run stands: its exit record decides; else a kill; else whether it still runs.
fn decide(r: &BackendRef) -> PollReport {
    let alive = || -> io::Result<Option<PollReport>> {
        if let Some(report) = ended(r)? {
            return Ok(Some(report));
        }
        let Some(proc) = Proc::parse(&r.id) else {
            return Ok(None);
        };
        if proc.alive()? {
            return Ok(Some(PollReport::new(RemoteStatus::Running, "running")));
        }
        // It may have ended between the two looks: read again before calling it gone.
        ended(r)
    };
    match alive() {
        Ok(Some(report)) => report,
        // Gone with no evidence of how it ended: the monitor, not us, calls that lost.
        Ok(None) => PollReport {
            reason: Some(format!(
                "no process {} and no exit record of run {}",
                r.id, r.run
            )),
            ..PollReport::new(RemoteStatus::Absent, "not here")
        },
        Err(e) => PollReport {
            reason: Some(e.to_string()),
            ..PollReport::new(RemoteStatus::Unknown, "unreadable")
        },
    }
}

fn ended(r: &BackendRef) -> io::Result<Option<PollReport>> {
    let exit = record(&r.workspace, "exit", r.run);
    let killed = fs::metadata(record(&r.workspace, "killed", r.run)).is_ok();
    let code = match read(&exit)? {
        None => None,
        Some(text) => Some(text.trim().parse::<i32>().map_err(|e| {
            io::Error::other(format!(
                "{}: `{}` is no exit code: {e}",
                exit.display(),
                text.trim()
            ))
        })?),
    };
    let report = match code {
        // Killed, unless it ended before the kill with a code of its own.
        _ if killed && code.is_none_or(|c| c > 128) => {
            PollReport::new(RemoteStatus::Killed, "killed")
        }
        None => return Ok(None),
        Some(0) => PollReport::new(RemoteStatus::Succeeded, "exited 0"),
        Some(c) => PollReport {
            reason: Some(format!("exit code {c}")),
            ..PollReport::new(RemoteStatus::Failed, format!("exited {c}"))
        },
    };
    Ok(Some(PollReport {
        exit_code: code,
        ended: modified(&exit),
        ..report
    }))
}

/// Stops runs: records each kill first, so that a poll that finds the process gone reads
/// a kill and not a loss, then SIGTERMs its process group. One answer per run, in order.
fn stop(refs: &[BackendRef]) -> Vec<PerJob<()>> {
    let mut signalled = Vec::new();
    let answers = refs.iter().map(|r| -> PerJob<()> {
        let failed = |e: io::Error| format!("run {}: {e}", r.run);
        // Ended already: poll goes on saying how.
        if read(&record(&r.workspace, "exit", r.run))
            .map_err(failed)?
            .is_some()
        {
            return Ok(());
        }
        let proc = Proc::parse(&r.id)
            .ok_or_else(|| format!("`{}` is no id of this backend: nothing to kill", r.id))?;
        proc.alive().map_err(failed)?; // a run on another host is not ours to stop
        write_record(&record(&r.workspace, "killed", r.run), "killed").map_err(failed)?;
        proc.terminate(&mut signalled).map_err(failed)
    });
    let answers = answers.collect();
    finish(&signalled);
    answers
}

/// SIGKILLs what is left of the groups signalled, once the grace period is over.
fn finish(signalled: &[Proc]) {
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline && signalled.iter().any(|p| p.alive().unwrap_or(true)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for proc in signalled.iter().filter(|p| p.alive().unwrap_or(true)) {
        let _ = proc.signal(Signal::KILL);
    }
}

fn collect(request: &OutputsRequest) -> PerJob<OutputsReport> {
    let mut patterns = request.patterns.clone();
    patterns.extend(["stdout".to_owned(), "stderr".to_owned()]);
    // Links out of the working directory, FIFOs and devices are left out (and said in
    // `skipped`). It is kept, so a repeated call answers the same.
    let work = work_dir(&request.job.workspace);
    let mut report =
        files::collect(&work, &patterns, &request.output_dir).map_err(|e| e.to_string())?;
    report.unmatched.retain(|p| p != "stdout" && p != "stderr");
    Ok(report)
}

/// A record's text; `None` if there is none (or no such workspace).
fn read(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Writes a record whole or not at all: to a temporary name, then renamed.
fn write_record(path: &Path, text: &str) -> io::Result<()> {
    let temp = path.with_extension("tmp");
    fs::write(&temp, format!("{text}\n"))?;
    fs::rename(&temp, path)
}

/// When a record was written: when what it records happened.
fn modified(path: &Path) -> Option<Timestamp> {
    let time = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let millis = time.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(Timestamp::from_millis(i64::try_from(millis).ok()?))
}
