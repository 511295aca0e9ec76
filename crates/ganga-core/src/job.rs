//! The job model: what a user describes ([`JobSpec`]), what the toolkit keeps about it
//! ([`Job`], [`Subjob`], [`RunState`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::split::{Override, Splitter};
use crate::{Options, Status, StatusCounts, StatusTimes, Timestamp};

/// A job's id: monotonic, never reused, assigned by the store.
pub type JobId = u64;

/// A subjob's index within its master, `0..n`.
pub type SubjobIndex = u32;

/// A job or one of its subjobs: `12` or `12.3` (Ganga's fqid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobRef {
    pub job: JobId,
    pub subjob: Option<SubjobIndex>,
}

impl JobRef {
    pub fn job(job: JobId) -> JobRef {
        JobRef { job, subjob: None }
    }

    pub fn subjob(job: JobId, subjob: SubjobIndex) -> JobRef {
        JobRef {
            job,
            subjob: Some(subjob),
        }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subjob {
            None => write!(f, "{}", self.job),
            Some(s) => write!(f, "{}.{}", self.job, s),
        }
    }
}

/// Text that is not a job reference such as `12` or `12.3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a job reference (expected ID or ID.SUBJOB, e.g. 12 or 12.3)")]
pub struct BadJobRef(pub String);

impl FromStr for JobRef {
    type Err = BadJobRef;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadJobRef(s.to_owned());
        match s.split_once('.') {
            None => Ok(JobRef::job(s.parse().map_err(|_| bad())?)),
            Some((j, sj)) => Ok(JobRef::subjob(
                j.parse().map_err(|_| bad())?,
                sj.parse().map_err(|_| bad())?,
            )),
        }
    }
}

/// What a user describes: everything needed to run the job, nothing about its progress.
/// A subjob's effective spec is its master's with the subjob's [`Override`]s applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub comment: String,
    pub application: Application,
    pub backend: BackendConfig,
    /// Absolute paths of files copied into the job's working directory before it runs.
    #[serde(default)]
    pub input_files: Vec<PathBuf>,
    /// Glob patterns, relative to the working directory, of files collected after the job
    /// ran. A pattern that matches nothing makes the job `failed` (Ganga's rule).
    #[serde(default)]
    pub output_files: Vec<String>,
    #[serde(default)]
    pub splitter: Option<Splitter>,
    /// Whether and how failed units are resubmitted automatically; `None` follows the
    /// user's configuration (off unless switched on there).
    #[serde(default)]
    pub auto_resubmit: Option<AutoResubmit>,
}

impl JobSpec {
    /// The spec without its splitter: what one unit of the job runs before its
    /// overrides. Never copies the splitter (which may hold a million argument lists).
    pub fn without_splitter(&self) -> JobSpec {
        JobSpec {
            name: self.name.clone(),
            comment: self.comment.clone(),
            application: self.application.clone(),
            backend: self.backend.clone(),
            input_files: self.input_files.clone(),
            output_files: self.output_files.clone(),
            splitter: None,
            auto_resubmit: self.auto_resubmit,
        }
    }
}

/// Ganga's auto-resubmit: a failed unit is submitted again, at most `max_attempts` times;
/// for a split job only once it has ended and at most `max_failed_fraction` of its ended
/// subjobs failed (more than that suggests something no retry will fix).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutoResubmit {
    pub max_attempts: u32,
    pub max_failed_fraction: f64,
}

impl AutoResubmit {
    /// Ganga's defaults (`MaxNumResubmits`, `MaxFracForResubmit`).
    pub const DEFAULT: AutoResubmit = AutoResubmit {
        max_attempts: 5,
        max_failed_fraction: 0.25,
    };

    /// No automatic resubmission.
    pub const OFF: AutoResubmit = AutoResubmit {
        max_attempts: 0,
        max_failed_fraction: 0.0,
    };
}

/// The program a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Application {
    Executable(Executable),
}

impl Application {
    pub fn executable(&self) -> &Executable {
        match self {
            Application::Executable(e) => e,
        }
    }

    pub fn executable_mut(&mut self) -> &mut Executable {
        match self {
            Application::Executable(e) => e,
        }
    }

    /// A short label for listings.
    pub fn label(&self) -> String {
        match self {
            Application::Executable(e) => e.exe.clone(),
        }
    }
}

/// Ganga's `Executable`: a command, its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executable {
    pub exe: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Which backend runs the job, and its options for this job (queue, extra flags...).
/// The core does not know what the options mean; the backend plugin does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// The backend plugin's name, e.g. `local`.
    pub kind: String,
    #[serde(default)]
    pub options: Options,
}

impl BackendConfig {
    pub fn named(kind: impl Into<String>) -> BackendConfig {
        BackendConfig {
            kind: kind.into(),
            options: Options::new(),
        }
    }
}

/// What a backend told us about one (sub)job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Every field may be left out: it reads as its default.
#[serde(default)]
pub struct BackendInfo {
    /// The backend's own id (a pid, a Slurm job id, a DIRAC job id).
    pub id: Option<String>,
    /// The backend's own word for the state (`PENDING`, `Matched`...), kept beside ours.
    pub native_state: Option<String>,
    pub exit_code: Option<i32>,
    /// Why the job ended as it did, when the backend or the toolkit knows.
    pub reason: Option<String>,
    /// Where it ran: a host, a batch node, a grid site.
    pub actual_ce: Option<String>,
}

/// The part of a job or subjob that changes as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    #[serde(default)]
    pub times: StatusTimes,
    /// How many times it was handed to a backend (Ganga's `info.submit_counter`): the
    /// number of its current run.
    #[serde(default)]
    pub submit_count: u32,
    /// How many of those submissions were automatic resubmissions after a failure.
    #[serde(default)]
    pub auto_resubmits: u32,
    #[serde(default)]
    pub backend: BackendInfo,
    /// Files collected into the output directory, relative to it.
    #[serde(default)]
    pub outputs: Vec<String>,
}

impl RunState {
    pub fn new(now: Timestamp) -> RunState {
        let mut times = StatusTimes::default();
        times.set(Status::New, now);
        RunState {
            status: Status::New,
            times,
            submit_count: 0,
            auto_resubmits: 0,
            backend: BackendInfo::default(),
            outputs: Vec::new(),
        }
    }
}

/// A job: a user's spec, its progress, and (for a master) counters of its subjobs'
/// statuses. Subjobs are kept apart ([`Subjob`]) so that a job can be listed, loaded and
/// changed without them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    /// Bumped by the store on every write; a write carrying a stale revision is refused,
    /// so two processes never overwrite each other's changes unknowingly.
    #[serde(default)]
    pub revision: u64,
    /// Shared, because it is large (a splitter may hold thousands of argument lists) and
    /// rarely changes while the run state changes all the time: copies of a job share it,
    /// and a change of status never copies it. Change it with `Arc::make_mut`.
    pub spec: Arc<JobSpec>,
    pub run: RunState,
    /// How many subjobs are in each status; empty for a job that was not split.
    #[serde(default)]
    pub subjobs: StatusCounts,
    /// Free-form facts about the job that are not part of its definition: where it came
    /// from (`ganga.uuid`, `ganga.id` for a job migrated from Ganga), user labels.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Job {
    /// A new job in status `new`.
    pub fn new(id: JobId, spec: JobSpec, now: Timestamp) -> Job {
        Job {
            id,
            revision: 0,
            spec: Arc::new(spec),
            run: RunState::new(now),
            subjobs: StatusCounts::default(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn status(&self) -> Status {
        self.run.status
    }

    pub fn is_split(&self) -> bool {
        !self.subjobs.is_empty()
    }

    pub fn subjob_count(&self) -> u32 {
        u32::try_from(self.subjobs.total()).unwrap_or(u32::MAX)
    }

    pub fn job_ref(&self) -> JobRef {
        JobRef::job(self.id)
    }
}

/// A subjob, stored as what differs from its master: the splitter's values for it and
/// its own progress. Its effective spec is [`Subjob::effective_spec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subjob {
    pub index: SubjobIndex,
    #[serde(default)]
    pub overrides: Vec<Override>,
    pub run: RunState,
}

impl Subjob {
    pub fn new(index: SubjobIndex, overrides: Vec<Override>, now: Timestamp) -> Subjob {
        Subjob {
            index,
            overrides,
            run: RunState::new(now),
        }
    }

    pub fn status(&self) -> Status {
        self.run.status
    }

    /// The spec this subjob runs: the master's, with this subjob's overrides applied and no
    /// splitter.
    pub fn effective_spec(&self, master: &JobSpec) -> JobSpec {
        let mut spec = master.without_splitter();
        for o in &self.overrides {
            o.apply(&mut spec);
        }
        spec
    }
}
