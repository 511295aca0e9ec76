//! The Backend trait: where jobs run. Batch-first: every call takes a list, and the caller
//! (the monitor) decides how often to ask and how to chunk.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{JobRef, Options, Timestamp};

/// Everything a backend needs to run one (sub)job. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitSpec {
    pub job: JobRef,
    pub name: String,
    pub exe: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files to copy into the working directory before the job starts.
    pub input_files: Vec<PathBuf>,
    /// Glob patterns of files to collect once it ended.
    pub output_patterns: Vec<String>,
    /// A directory that belongs to this (sub)job alone; the backend creates it if needed
    /// and may keep anything there. It may hold a previous run's files (a resubmission
    /// clears it first, but a backend must not rely on an empty directory).
    pub workspace: PathBuf,
    /// Where collected outputs (and stdout/stderr) go.
    pub output_dir: PathBuf,
    /// The job's backend options from its job file (queue, flags...).
    pub options: Options,
}

/// A (sub)job a backend already knows, as the monitor names it in later calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRef {
    pub job: JobRef,
    /// The id the backend returned from `submit`.
    pub id: String,
    pub workspace: PathBuf,
    pub output_dir: PathBuf,
}

/// The backend's answer to `submit` for one (sub)job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub job: JobRef,
    pub id: String,
    #[serde(default)]
    pub actual_ce: Option<String>,
}

/// What the backend saw of a job, mapped onto what the toolkit needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteStatus {
    /// Accepted, waiting to run.
    Queued,
    Running,
    /// Ended with success (exit code 0).
    Succeeded,
    /// Ended without success: a non-zero exit code, or lost (gone with no exit record).
    Failed,
    /// Ended because it was killed.
    Killed,
    /// The backend could not tell this time; ask again later. Never finishes a job.
    Unknown,
}

/// One (sub)job's state at the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    pub job: JobRef,
    pub status: RemoteStatus,
    /// The backend's own word for it (`PENDING`, `exited 1`, `Matched`...).
    pub native_state: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub actual_ce: Option<String>,
    #[serde(default)]
    pub started: Option<Timestamp>,
    #[serde(default)]
    pub ended: Option<Timestamp>,
}

/// Which file `peek` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeekFile {
    Stdout,
    Stderr,
    /// A path relative to the job's working directory.
    Path(String),
}

/// Checks a path that a user gives relative to a job's working directory (a `peek` file,
/// an output pattern): it must be non-empty, relative, and free of `..`, so that it cannot
/// leave the directory. Backends call this before touching the file.
pub fn check_inside_workdir(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    for part in Path::new(path).components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is absolute"));
            }
        }
    }
    Ok(())
}

/// The files of one (sub)job to collect after it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsRequest {
    pub job: BackendRef,
    pub patterns: Vec<String>,
}

/// What `outputs` collected for one (sub)job into its output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsReport {
    pub job: JobRef,
    /// File names relative to the output directory.
    pub collected: Vec<String>,
    /// Patterns that matched nothing.
    pub unmatched: Vec<String>,
}

/// A backend's description of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendDescription {
    pub name: String,
    pub version: String,
    /// How often the monitor should poll, in seconds, unless configured otherwise.
    pub poll_interval_secs: u32,
    /// The most (sub)jobs one call should carry.
    pub max_batch: u32,
}

/// Why a backend call failed as a whole. Failures of single jobs within a call are
/// reported per job instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BackendError {
    pub kind: BackendErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The backend does not implement this call.
    Unsupported,
    /// The backend's own code panicked; the call failed, the program goes on.
    Panicked,
    /// A command or service the backend relies on failed.
    Failed,
    /// It took too long.
    Timeout,
    /// The request or reply could not be understood.
    Protocol,
    /// The job's backend options are wrong.
    InvalidOptions,
}

impl std::fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendErrorKind::Unsupported => "unsupported",
            BackendErrorKind::Panicked => "plugin panicked",
            BackendErrorKind::Failed => "failed",
            BackendErrorKind::Timeout => "timed out",
            BackendErrorKind::Protocol => "protocol error",
            BackendErrorKind::InvalidOptions => "invalid options",
        })
    }
}

impl BackendError {
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> BackendError {
        BackendError::new(BackendErrorKind::Failed, message)
    }

    pub fn unsupported(what: &str) -> BackendError {
        BackendError::new(
            BackendErrorKind::Unsupported,
            format!("this backend does not support {what}"),
        )
    }
}

/// The result for one (sub)job within a batch call: its value, or why this one failed.
pub type PerJob<T> = Result<T, String>;

/// Where jobs run: the local machine, a batch system, the grid.
///
/// Implementations are plugins; the monitor and CLI only see `Arc<dyn Backend>` and
/// cannot tell a dynamically loaded plugin from one linked in. Every list call returns one
/// entry per input, in the same order.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn describe(&self) -> Result<BackendDescription, BackendError>;

    /// Hands jobs over. Returns per job the backend's id, or why it was not accepted.
    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Vec<PerJob<Submitted>>, BackendError>;

    /// Asks where jobs are. Must not block for long: it is called for thousands of jobs.
    async fn poll(&self, jobs: &[BackendRef]) -> Result<Vec<PollReport>, BackendError>;

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Vec<PerJob<()>>, BackendError>;

    /// The tail of a file of a job that may still be running, at most `max_bytes`.
    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError>;

    /// Collects the outputs of ended jobs into their output directories. Must be
    /// idempotent: after a crash it is called again for the same jobs.
    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Vec<PerJob<OutputsReport>>, BackendError>;
}
