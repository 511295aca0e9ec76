//! The Store trait: where jobs are kept between runs of `ganga`.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::compact::SubjobBatch;
use crate::{Job, JobId, JobRef, RunState, Status, StatusCounts, Subjob, SubjobIndex, Timestamp};

/// One change in a [`Store::commit`]. All changes of a commit land together or not at all.
// Changes live only until they are committed; boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Writes a job. `job.revision` is the revision the writer read (0 for a job it just
    /// created); if the stored one differs, another process changed the job meanwhile and
    /// the commit is refused with [`StoreError::Conflict`].
    PutJob(#[serde(with = "crate::compact::packed_job")] Job),
    /// Writes only a job's run state and subjob counters, at the revision read (as
    /// [`Change::PutJob`]); its spec and metadata stay as stored. What a change of status
    /// sends, so that it never carries (or rewrites) a master's large spec.
    PutRun(#[serde(with = "crate::compact::packed_run")] RunUpdate),
    /// Writes subjobs. The same commit must also put their master (as a job or a run
    /// update), whose status counters describe them.
    PutSubjobs {
        job: JobId,
        #[serde(with = "crate::compact::packed_subjobs")]
        subjobs: Vec<Subjob>,
    },
    /// Deletes a job and its subjobs, if it is still at `revision`.
    RemoveJob { job: JobId, revision: u64 },
}

/// A job's run state and subjob counters: the part of a job that changes as it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    pub job: JobId,
    /// The revision the writer read.
    pub revision: u64,
    pub run: RunState,
    pub subjobs: StatusCounts,
}

impl RunUpdate {
    pub fn of(job: &Job) -> RunUpdate {
        RunUpdate {
            job: job.id,
            revision: job.revision,
            run: job.run.clone(),
            subjobs: job.subjobs.clone(),
        }
    }
}

impl Change {
    /// The job a change is about.
    pub fn job(&self) -> JobId {
        match self {
            Change::PutJob(job) => job.id,
            Change::PutRun(update) => update.job,
            Change::PutSubjobs { job, .. } | Change::RemoveJob { job, .. } => *job,
        }
    }
}

/// A job's new revision after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub job: JobId,
    pub revision: u64,
}

/// What `ganga jobs` shows of a job; kept apart from the job so that listing reads
/// nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: JobId,
    pub name: String,
    pub status: Status,
    pub backend: String,
    pub application: String,
    pub subjobs: StatusCounts,
    pub exit_code: Option<i32>,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub comment: String,
}

impl JobSummary {
    pub fn of(job: &Job) -> JobSummary {
        JobSummary {
            id: job.id,
            name: job.spec.name.clone(),
            status: job.run.status,
            backend: job.spec.backend.kind.clone(),
            application: job.spec.application.label(),
            subjobs: job.subjobs.clone(),
            exit_code: job.run.backend.exit_code,
            created: job.run.times.get(Status::New),
            updated: job.run.times.latest(),
            comment: job.spec.comment.clone(),
        }
    }
}

/// A listed job: its summary, or why its record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryEntry {
    Readable(JobSummary),
    Unreadable { id: JobId, error: String },
}

impl SummaryEntry {
    pub fn id(&self) -> JobId {
        match self {
            SummaryEntry::Readable(s) => s.id,
            SummaryEntry::Unreadable { id, .. } => *id,
        }
    }
}

/// A job the monitor has to look at, from the store's index of active jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveJob {
    pub id: JobId,
    pub backend: String,
    pub status: Status,
    /// The job's revision: a monitor holding an older copy must read it again.
    pub revision: u64,
}

/// The result of a consistency check: do the indexes agree with the records?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub jobs: u64,
    pub subjobs: u64,
    pub problems: Vec<String>,
}

/// A store's description of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDescription {
    pub name: String,
    pub version: String,
    pub format_version: u32,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreError {
    #[error("jobs {} were changed by another process meanwhile", list(.jobs))]
    Conflict { jobs: Vec<JobId> },
    #[error("job {job}: record unreadable: {detail}")]
    Corrupt { job: JobRef, detail: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Io(String),
    #[error("the store does not support {0}")]
    Unsupported(String),
    #[error("the store plugin panicked: {0}")]
    Panicked(String),
    #[error("store protocol error: {0}")]
    Protocol(String),
}

fn list(ids: &[JobId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where jobs are kept. Calls block (they are short disk operations); async callers run
/// them on a blocking thread pool.
///
/// Invariants an implementation keeps: ids are never reused; a commit is atomic and
/// durable when it returns; readers in other processes see either all of a commit or
/// none of it; a record that cannot be decoded is reported for that job alone.
pub trait Store: Send + Sync {
    fn describe(&self) -> Result<StoreDescription, StoreError>;

    /// Reserves `n` consecutive new job ids and returns the first.
    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError>;

    /// Applies all changes in one transaction and returns the new revisions of the jobs put.
    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError>;

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// The same job as [`Store::job`], as its records: what crosses the plugin boundary.
    /// A store that keeps compact records answers with them as they are, so the job is
    /// decoded once, by the caller.
    fn job_record(&self, id: JobId) -> Result<Option<crate::compact::JobRecord>, StoreError> {
        Ok(self.job(id)?.map(|job| crate::compact::JobRecord::of(&job)))
    }

    /// The subjobs of `job` whose index is in `range`, in index order.
    fn subjobs(&self, job: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        self.subjob_batch(job, range)?
            .unpack()
            .map_err(|(index, e)| StoreError::Corrupt {
                job: JobRef::subjob(job, index),
                detail: e.to_string(),
            })
    }

    /// The same subjobs as [`Store::subjobs`], packed: what crosses the plugin boundary.
    /// A store that keeps compact records answers with them as they are, so nothing is
    /// decoded until the caller needs it.
    fn subjob_batch(
        &self,
        job: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<SubjobBatch, StoreError>;

    /// Up to `limit` summaries of jobs with id `>= from`, in id order.
    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError>;

    /// Every job in an active status (see [`Status::is_active`]).
    fn active(&self) -> Result<Vec<ActiveJob>, StoreError>;

    /// Checks that indexes and summaries agree with the job records.
    fn check(&self) -> Result<CheckReport, StoreError>;

    /// A stable text rendering of every table, for snapshot tests and bug reports.
    fn dump(&self) -> Result<String, StoreError>;
}
