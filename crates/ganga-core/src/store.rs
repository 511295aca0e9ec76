//! The Store trait: where jobs are kept between runs of `ganga`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    Job, JobId, JobRef, RunState, Status, StatusCounts, Subjob, SubjobIndex, Timestamp,
    UnitRefusal, UnitUpdate,
};

/// One change in a [`Store::commit`]. All changes of a commit land together or not at all.
// Changes live only until they are committed; boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
///
/// Plain data: how a change is encoded on its way to a store plugin is the protocol's
/// business (`ganga-protocol`, with `ganga-records`' packing).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Writes a job. `job.revision` is the revision the writer read (0 for a job it just
    /// created); if the stored one differs, another process changed the job meanwhile and
    /// the commit is refused with [`StoreError::Conflict`].
    PutJob(Job),
    /// Writes only a job's run state and subjob counters, at the revision read (as
    /// [`Change::PutJob`]); its spec and metadata stay as stored. What a change of status
    /// sends, so that it never carries (or rewrites) a master's large spec.
    PutRun(RunUpdate),
    /// Writes subjobs. The same commit must also put their master (as a job or a run
    /// update), whose status counters describe them.
    PutSubjobs { job: JobId, subjobs: Vec<Subjob> },
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

/// A unit (a job without subjobs, or a subjob) the monitor drives, from the store's index
/// of active units: what polling it needs, read without decoding its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveUnit {
    pub unit: JobRef,
    pub backend: String,
    pub status: Status,
    /// Its submission number (`submit_count`): which run the backend id belongs to.
    pub run: u32,
    /// The backend's id for this run, once recorded.
    #[serde(default)]
    pub id: Option<String>,
    /// The backend's word for its state, as last recorded.
    #[serde(default)]
    pub native_state: Option<String>,
    /// When it entered its status.
    #[serde(default)]
    pub since: Option<Timestamp>,
}

impl ActiveUnit {
    /// The index entry of a unit, from its run state.
    pub fn of(unit: JobRef, backend: &str, run: &RunState) -> ActiveUnit {
        ActiveUnit {
            unit,
            backend: backend.to_owned(),
            status: run.status,
            run: run.submit_count,
            id: run.backend.id.clone(),
            native_state: run.backend.native_state.clone(),
            since: run.times.get(run.status),
        }
    }
}

/// Where a page of [`Store::active_units`] starts: after this unit of this backend.
/// Units are ordered by backend name, then job id, then the job itself before its
/// subjobs in index order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitCursor {
    pub backend: String,
    pub unit: JobRef,
}

impl UnitCursor {
    pub fn after(unit: &ActiveUnit) -> UnitCursor {
        UnitCursor {
            backend: unit.backend.clone(),
            unit: unit.unit,
        }
    }
}

/// What [`Store::update_units`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitsUpdated {
    /// The new revisions of the jobs whose units changed.
    pub committed: Vec<Committed>,
    /// Updates not applied, and why: the unit changed meanwhile, the transition is not
    /// allowed, or the unit no longer exists.
    pub refused: Vec<(JobRef, UnitRefusal)>,
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

    /// The subjobs of `job` whose index is in `range`, in index order.
    fn subjobs(&self, job: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError>;

    /// Up to `limit` summaries of jobs with id `>= from`, in id order.
    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError>;

    /// Every job in an active status (see [`Status::is_active`]).
    fn active(&self) -> Result<Vec<ActiveJob>, StoreError>;

    /// Up to `limit` units in an active status, in [`UnitCursor`] order, starting after
    /// `after`. A store keeps an index of them, so that the monitor reads what it polls
    /// without decoding jobs. This default reads the jobs instead.
    fn active_units(
        &self,
        after: Option<&UnitCursor>,
        limit: u32,
    ) -> Result<Vec<ActiveUnit>, StoreError> {
        let mut jobs = self.active()?;
        jobs.sort_by(|a, b| (&a.backend, a.id).cmp(&(&b.backend, b.id)));
        let mut out = Vec::new();
        for active in jobs {
            if let Some(c) = after
                && (active.backend.as_str(), active.id) < (c.backend.as_str(), c.unit.job)
            {
                continue;
            }
            let Some(job) = self.job(active.id)? else {
                continue;
            };
            let units: Vec<ActiveUnit> = if job.is_split() {
                self.subjobs(job.id, 0..job.subjob_count())?
                    .iter()
                    .filter(|sj| sj.status().is_active())
                    .map(|sj| {
                        ActiveUnit::of(JobRef::subjob(job.id, sj.index), &active.backend, &sj.run)
                    })
                    .collect()
            } else if job.status().is_active() {
                vec![ActiveUnit::of(job.job_ref(), &active.backend, &job.run)]
            } else {
                Vec::new()
            };
            for unit in units {
                if after.is_some_and(|c| UnitCursor::after(&unit) <= *c) {
                    continue;
                }
                out.push(unit);
                if out.len() >= limit as usize {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Applies changes to units in one transaction: each is applied only if its unit is
    /// still in the status and run the writer saw (so a change made meanwhile by another
    /// process is never overwritten), through the status rules, keeping each master's
    /// counters and derived status. What a status change costs is the unit's own record.
    ///
    /// This default reads whole jobs and writes them back in one [`Store::commit`]; if
    /// another process commits one of them between the read and the write, nothing is
    /// written and the answer is [`StoreError::Conflict`]: the caller reads again and
    /// retries (the monitor's store handle does). A store that keeps an index of units
    /// applies each update against what it holds inside its transaction instead, and
    /// never conflicts.
    fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        let mut by_job: BTreeMap<JobId, Vec<&UnitUpdate>> = BTreeMap::new();
        for u in updates {
            by_job.entry(u.unit.job).or_default().push(u);
        }
        let mut refused = Vec::new();
        let mut changes = Vec::new();
        for (id, updates) in by_job {
            let Some(mut job) = self.job(id)? else {
                refused.extend(updates.iter().map(|u| (u.unit, UnitRefusal::NoSuchUnit)));
                continue;
            };
            let mut subjobs: BTreeMap<SubjobIndex, Subjob> = BTreeMap::new();
            for u in &updates {
                if let Some(i) = u.unit.subjob
                    && !subjobs.contains_key(&i)
                    && let Some(sj) = self.subjobs(id, i..i.saturating_add(1))?.pop()
                {
                    subjobs.insert(i, sj);
                }
            }
            let mut changed = std::collections::BTreeSet::new();
            let mut applied = false;
            for u in &updates {
                let result = match u.unit.subjob {
                    None => job.apply_unit_update(None, u),
                    Some(i) => match subjobs.get_mut(&i) {
                        Some(sj) => job.apply_unit_update(Some(sj), u).inspect(|_| {
                            changed.insert(i);
                        }),
                        None => Err(UnitRefusal::NoSuchUnit),
                    },
                };
                match result {
                    Ok(()) => applied = true,
                    Err(why) => refused.push((u.unit, why)),
                }
            }
            if !applied {
                continue;
            }
            changes.push(Change::PutRun(RunUpdate::of(&job)));
            if !changed.is_empty() {
                changes.push(Change::PutSubjobs {
                    job: id,
                    subjobs: changed
                        .into_iter()
                        .filter_map(|i| subjobs.remove(&i))
                        .collect(),
                });
            }
        }
        let committed = if changes.is_empty() {
            Vec::new()
        } else {
            self.commit(&changes)?
        };
        Ok(UnitsUpdated { committed, refused })
    }

    /// Writes a consistent, compacted copy of the whole store to the directory `dest`
    /// (which must not exist yet), while others go on reading and writing.
    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        let _ = dest;
        Err(StoreError::Unsupported("backups".to_owned()))
    }

    /// Checks that indexes and summaries agree with the job records.
    fn check(&self) -> Result<CheckReport, StoreError>;

    /// A stable text rendering of every table, for snapshot tests and bug reports.
    fn dump(&self) -> Result<String, StoreError>;
}
