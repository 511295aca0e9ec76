//! The Backend trait: where jobs run. Batch-first: every call takes a list of units (a job
//! without subjobs, or a subjob) and answers keyed by [`JobRef`]; the caller (the monitor)
//! decides how often to ask, how to chunk, how long to wait and when to back off.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{JobRef, Options, Timestamp, Value};

/// Everything a backend needs to run one unit. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitSpec {
    pub job: JobRef,
    /// Which submission of this unit this is (1 for the first, 2 after one resubmit...).
    /// Records a backend keeps about a run (an exit record) name it, so that a record of
    /// an earlier run can never finish this one.
    pub run: u32,
    /// The backend's id of this unit's previous run, when it is resubmitted: a backend
    /// that can run a job again under the same id (DIRAC's reschedule) may use it.
    #[serde(default)]
    pub previous_id: Option<String>,
    pub name: String,
    pub exe: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files to copy into the working directory before the job starts.
    pub input_files: Vec<PathBuf>,
    /// Glob patterns of files to collect once it ended.
    pub output_patterns: Vec<String>,
    /// A directory that belongs to this unit alone; the backend creates it if needed and
    /// may keep anything there. It may hold a previous run's files: a backend must not
    /// rely on an empty directory, nor let a previous run's records count for this one.
    pub workspace: PathBuf,
    /// Where collected outputs (and stdout/stderr) go.
    pub output_dir: PathBuf,
    /// The job's backend options from its job file (queue, flags...).
    pub options: Options,
}

impl SubmitSpec {
    /// Why no process could be started as this spec says, if that is so: a workspace that
    /// is not an absolute path of UTF-8 text on one line; an executable that is empty,
    /// starts with `-` (a wrapper or env(1) would take it for an option) or holds a NUL
    /// or a newline; an argument or environment value with a NUL; an environment name
    /// that is empty, holds `=` or a NUL, or starts with `-`; an output pattern that
    /// could leave the working directory or is not a glob. Backends call it before they
    /// write anything for the unit.
    pub fn check_runnable(&self) -> Result<(), String> {
        let ws = &self.workspace;
        if !ws.is_absolute() {
            return Err(format!(
                "the workspace {} is not an absolute path",
                ws.display()
            ));
        }
        if ws.to_str().is_none_or(|w| w.contains('\n')) {
            return Err(format!(
                "the workspace {} is not a path of UTF-8 text without newlines",
                ws.display()
            ));
        }
        if self.exe.is_empty() {
            return Err("no executable given".to_owned());
        }
        if self.exe.starts_with('-') {
            return Err(format!("the executable `{}` starts with `-`", self.exe));
        }
        if self.exe.contains(['\0', '\n']) {
            return Err("the executable's name contains a NUL or a newline".to_owned());
        }
        if let Some(i) = self.args.iter().position(|a| a.contains('\0')) {
            return Err(format!("argument {} contains a NUL character", i + 1));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) || name.starts_with('-') {
                return Err(format!(
                    "`{}` cannot be the name of an environment variable",
                    name.escape_debug()
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "the value of environment variable {name} contains a NUL character"
                ));
            }
        }
        for pattern in &self.output_patterns {
            check_inside_workdir(pattern)
                .and_then(|()| {
                    glob::Pattern::new(pattern)
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| format!("output pattern `{pattern}` is not usable: {e}"))?;
        }
        Ok(())
    }
}

/// A unit a backend already knows, as the monitor names it in later calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRef {
    pub job: JobRef,
    /// The id the backend returned from `submit`.
    pub id: String,
    /// The submission this id belongs to (see [`SubmitSpec::run`]).
    pub run: u32,
    pub workspace: PathBuf,
}

/// A unit whose hand-over was cut off before its id was recorded (the `ganga` that
/// submitted it died): what [`Backend::find`] is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRun {
    pub job: JobRef,
    pub run: u32,
    pub workspace: PathBuf,
}

/// The backend's answer to `submit` (or `find`) for one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: String,
    #[serde(default)]
    pub actual_ce: Option<String>,
}

impl Submitted {
    pub fn id(id: impl Into<String>) -> Submitted {
        Submitted {
            id: id.into(),
            actual_ce: None,
        }
    }
}

/// What the backend saw of a unit, mapped onto what the toolkit needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteStatus {
    /// Accepted, waiting to run.
    Queued,
    Running,
    /// Ended with success (exit code 0).
    Succeeded,
    /// Ended without success: a non-zero exit code, a launch failure, a limit hit.
    Failed,
    /// Ended because it was killed.
    Killed,
    /// The backend does not know this unit and holds no evidence of how it ended (no
    /// exit record). The monitor fails it as lost once it has been absent for a grace
    /// period; a backend never decides that on its own.
    Absent,
    /// The backend could not tell this time; ask again later. Never changes a unit.
    Unknown,
}

/// One unit's state at the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    pub status: RemoteStatus,
    /// The backend's own word for it (`PENDING (Resources)`, `exited 1`, `Matched`...).
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

impl PollReport {
    /// A report with a status and the backend's word for it, and nothing else.
    pub fn new(status: RemoteStatus, native_state: impl Into<String>) -> PollReport {
        PollReport {
            status,
            native_state: native_state.into(),
            exit_code: None,
            reason: None,
            actual_ce: None,
            started: None,
            ended: None,
        }
    }
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

impl PeekFile {
    /// The file's name as a user gives it (`stdout`, `stderr`, or the path).
    pub fn name(&self) -> &str {
        match self {
            PeekFile::Stdout => "stdout",
            PeekFile::Stderr => "stderr",
            PeekFile::Path(p) => p,
        }
    }
}

/// Checks a path that a user gives relative to a job's working directory (a `peek` file,
/// an output pattern): it must be non-empty, relative, and free of `..`, so that its text
/// cannot leave the directory. (A symbolic link on the way can still lead out: whoever
/// opens the file must resolve it beneath the directory.)
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

/// The files of one ended unit to collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsRequest {
    pub job: BackendRef,
    /// Where they go.
    pub output_dir: PathBuf,
    pub patterns: Vec<String>,
}

/// What `outputs` collected for one unit into its output directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsReport {
    /// File names relative to the output directory.
    pub collected: Vec<String>,
    /// Patterns that matched nothing.
    pub unmatched: Vec<String>,
    /// What matched but was left out, and why (a link leading out of the working
    /// directory, a FIFO...): said in the unit's reason.
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// What a backend can do beyond the calls every backend answers. Declared in
/// [`BackendDescription`]; the monitor uses what is declared and nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
// Every field may be left out: it reads as its default.
#[serde(default)]
pub struct Capabilities {
    /// [`Backend::poll_all`] answers for every unit from one listing: the monitor sends
    /// all active units of the backend in one call instead of chunks.
    pub poll_all: bool,
    /// [`Backend::changes`] tells which units changed, so they can be polled at once.
    pub watch: bool,
    /// [`Backend::find`] can tell whether a unit was handed over before its id was
    /// recorded.
    pub find: bool,
}

/// A backend's description of itself, asked once per backend instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendDescription {
    pub name: String,
    pub version: String,
    /// How often the monitor should poll, in seconds, unless configured otherwise.
    pub poll_interval_secs: u32,
    /// The most units one call should carry.
    pub max_batch: u32,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The names of the per-job options (`[backend]` keys of a job file) this backend
    /// knows; a job file naming another is refused. `None`: the backend does not say.
    #[serde(default)]
    pub options: Option<Vec<String>>,
}

/// One step of a plugin's own command (`ganga dirac login`): what to print now, and
/// whether to call again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStep {
    /// Text for the user, printed as soon as the step returns.
    pub output: String,
    /// If set, the command goes on: call [`Backend::command`] again with this state.
    #[serde(default)]
    pub state: Option<Value>,
    /// The exit status of the command, once it ends (no `state`).
    #[serde(default)]
    pub exit_code: i32,
}

/// Why a backend call failed as a whole. Failures of single units within a call are
/// reported per unit instead.
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
    /// The backend's credentials are missing, expired or refused: the user must log in.
    Unauthorized,
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
            BackendErrorKind::Unauthorized => "not authorised",
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

/// The result for one unit within a batch call: its value, or why this one failed.
pub type PerJob<T> = Result<T, String>;

/// The answer to a batch call: one entry per unit the backend answers for, keyed by the
/// unit, in any order. A unit missing from an answer was not answered for (it is asked
/// again later); it never means a change.
pub type Answers<T> = Vec<(JobRef, PerJob<T>)>;

/// Where jobs run: the local machine, a batch system, the grid.
///
/// Implementations are plugins; the monitor and CLI only see `Arc<dyn Backend>` and
/// cannot tell a dynamically loaded plugin from one linked in. The monitor owns cadence:
/// it decides how often each call is made, with how many units, under which timeout;
/// a backend answers once, promptly, and keeps no schedule of its own.
#[async_trait]
pub trait Backend: Send + Sync {
    /// What the backend is and can do; asked once per backend instance.
    async fn describe(&self) -> Result<BackendDescription, BackendError>;

    /// Hands units over. Answers per unit with the backend's id, or why it was not
    /// accepted.
    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError>;

    /// Asks where units are. Must not block for long: it is called for thousands.
    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError>;

    /// Asks about every active unit of this backend at once (capability `poll_all`):
    /// one listing of the backend's jobs of this home, matched to the units.
    async fn poll_all(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        self.poll(jobs).await
    }

    /// Waits up to `wait` for units whose state may have changed and names them (maybe
    /// none). Capability `watch`.
    async fn changes(&self, wait: Duration) -> Result<Vec<JobRef>, BackendError> {
        let _ = wait;
        Err(BackendError::unsupported("watching for changes"))
    }

    /// Whether these runs of units were handed over although their ids were never
    /// recorded: `Some` with the id if so, `None` if certainly not. Capability `find`.
    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        let _ = jobs;
        Err(BackendError::unsupported("finding interrupted submissions"))
    }

    /// Stops units. A unit answered `Ok` is stopped or being stopped, and a later poll
    /// says `Killed` (unless it had ended before).
    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError>;

    /// The tail of a file of a unit that may still be running, at most `max_bytes`.
    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError>;

    /// Collects the outputs of ended units into their output directories. Must be
    /// idempotent: after a crash it is called again for the same units.
    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError>;

    /// A command of the backend's own (`ganga <backend> ARGS...`, e.g. `ganga dirac
    /// login`), one step at a time: the caller prints each step's output and calls
    /// again with its state until it has none.
    async fn command(
        &self,
        args: &[String],
        state: Option<Value>,
    ) -> Result<CommandStep, BackendError> {
        let _ = (args, state);
        Err(BackendError::unsupported("commands of its own"))
    }
}
