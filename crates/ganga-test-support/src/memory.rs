//! [`MemoryStore`]: a [`Store`] that keeps jobs in memory.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ganga_core::{
    ActiveJob, Change, CheckReport, Committed, Job, JobId, JobSummary, Status, StatusCounts, Store,
    StoreDescription, StoreError, Subjob, SubjobIndex, SummaryEntry,
};
use ganga_records::RecordStore;

/// A store that keeps jobs in memory, for tests of what is built on the [`Store`] trait
/// (the core's default methods, the monitor's store handle and its retries) and for
/// plugin authors' tests that need a store but not a store plugin.
///
/// It keeps the trait's invariants: a commit is checked against the revisions its writer
/// read and lands whole or not at all; ids are never reused. It is not durable and keeps
/// no index of active units: the trait's defaults answer `active_units` and
/// `update_units`, so this is also how those defaults are tested.
///
/// [`MemoryStore::interfere`] plays another process that writes between a reader's read
/// and its commit.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: JobId,
    jobs: BTreeMap<JobId, Stored>,
    /// How many of the next commits find their jobs changed meanwhile.
    interfering: usize,
    /// Commits refused because of [`MemoryStore::interfere`].
    interfered: usize,
}

#[derive(Clone)]
struct Stored {
    job: Job,
    subjobs: BTreeMap<SubjobIndex, Subjob>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The next `commits` commits that write a stored job find it changed by another
    /// process since it was read: before each, the revision of every stored job it
    /// writes moves on by one, as if another `ganga` had committed it meanwhile, so the
    /// commit is refused with [`StoreError::Conflict`].
    pub fn interfere(&self, commits: usize) {
        self.state().interfering = commits;
    }

    /// How many commits [`MemoryStore::interfere`] has refused so far.
    pub fn interfered(&self) -> usize {
        self.state().interfered
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-made commit behind: commits are
        // made on a copy and swapped in whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Another process's commit of each stored job that `changes` write.
    fn interfere(&mut self, changes: &[Change]) -> bool {
        if self.interfering == 0 {
            return false;
        }
        let mut touched = false;
        for change in changes {
            if let Some(stored) = self.jobs.get_mut(&change.job())
                && !matches!(change, Change::PutSubjobs { .. })
            {
                stored.job.revision += 1;
                touched = true;
            }
        }
        if touched {
            self.interfering -= 1;
            self.interfered += 1;
        }
        touched
    }

    /// The jobs after `changes`, or why they are refused.
    fn apply(&self, changes: &[Change]) -> Result<BTreeMap<JobId, Stored>, StoreError> {
        let mut jobs = self.jobs.clone();
        let mut conflicts = Vec::new();
        let mut written: BTreeMap<JobId, u64> = BTreeMap::new();
        for change in changes {
            let id = change.job();
            let seen = match change {
                Change::PutJob(job) => Some(job.revision),
                Change::PutRun(update) => Some(update.revision),
                Change::RemoveJob { revision, .. } => Some(*revision),
                Change::PutSubjobs { .. } => None,
            };
            if let Some(seen) = seen {
                if id >= self.next_id {
                    return Err(StoreError::Invalid(format!(
                        "job {id} was put but was never reserved"
                    )));
                }
                if written.insert(id, seen).is_some() {
                    return Err(StoreError::Invalid(format!(
                        "job {id} is changed twice in one commit"
                    )));
                }
                let stored = self.jobs.get(&id).map(|s| s.job.revision);
                let is_put_job = matches!(change, Change::PutJob(_));
                match stored {
                    None if !(is_put_job && seen == 0) => conflicts.push(id),
                    Some(now) if now != seen => conflicts.push(id),
                    _ => {}
                }
            }
            match change {
                Change::PutJob(job) => {
                    let mut job = job.clone();
                    job.revision += 1;
                    let subjobs = jobs.remove(&id).map(|s| s.subjobs).unwrap_or_default();
                    jobs.insert(id, Stored { job, subjobs });
                }
                Change::PutRun(update) => {
                    if let Some(stored) = jobs.get_mut(&id) {
                        stored.job.revision = update.revision + 1;
                        stored.job.run = update.run.clone();
                        stored.job.subjobs = update.subjobs.clone();
                    }
                }
                Change::PutSubjobs { job, subjobs } => {
                    if !written.contains_key(job) {
                        return Err(StoreError::Invalid(format!(
                            "subjobs of job {job} were put without their master"
                        )));
                    }
                    if let Some(stored) = jobs.get_mut(job) {
                        for sj in subjobs {
                            stored.subjobs.insert(sj.index, sj.clone());
                        }
                    }
                }
                Change::RemoveJob { .. } => {
                    jobs.remove(&id);
                }
            }
        }
        if conflicts.is_empty() {
            Ok(jobs)
        } else {
            conflicts.sort_unstable();
            conflicts.dedup();
            Err(StoreError::Conflict { jobs: conflicts })
        }
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            name: "memory".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            format_version: 0,
            location: "memory".to_owned(),
        })
    }

    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
        let mut state = self.state();
        let first = state.next_id;
        state.next_id = first
            .checked_add(n)
            .ok_or_else(|| StoreError::Invalid(format!("cannot reserve {n} more job ids")))?;
        Ok(first)
    }

    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        let mut state = self.state();
        if state.interfere(changes) {
            let mut jobs: Vec<JobId> = changes.iter().map(Change::job).collect();
            jobs.sort_unstable();
            jobs.dedup();
            return Err(StoreError::Conflict { jobs });
        }
        let jobs = state.apply(changes)?;
        let committed = changes
            .iter()
            .filter(|c| matches!(c, Change::PutJob(_) | Change::PutRun(_)))
            .filter_map(|c| {
                let id = c.job();
                jobs.get(&id).map(|s| Committed {
                    job: id,
                    revision: s.job.revision,
                })
            })
            .collect();
        state.jobs = jobs;
        Ok(committed)
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.state().jobs.get(&id).map(|s| s.job.clone()))
    }

    fn subjobs(&self, job: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        Ok(self
            .state()
            .jobs
            .get(&job)
            .map(|s| s.subjobs.range(range).map(|(_, sj)| sj.clone()).collect())
            .unwrap_or_default())
    }

    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        Ok(self
            .state()
            .jobs
            .range(from..)
            .take(limit as usize)
            .map(|(_, s)| SummaryEntry::Readable(JobSummary::of(&s.job)))
            .collect())
    }

    fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
        Ok(self
            .state()
            .jobs
            .values()
            .filter(|s| s.job.status().is_active())
            .map(|s| ActiveJob {
                id: s.job.id,
                backend: s.job.spec.backend.kind.clone(),
                status: s.job.status(),
                revision: s.job.revision,
            })
            .collect())
    }

    fn check(&self) -> Result<CheckReport, StoreError> {
        let state = self.state();
        let mut report = CheckReport::default();
        for stored in state.jobs.values() {
            report.jobs += 1;
            report.subjobs += stored.subjobs.len() as u64;
            let mut counts = StatusCounts::default();
            for sj in stored.subjobs.values() {
                counts.add(sj.status(), 1);
            }
            if counts != stored.job.subjobs {
                report.problems.push(format!(
                    "job {}: its counters say {:?}, its subjobs {:?}",
                    stored.job.id, stored.job.subjobs, counts
                ));
            }
        }
        Ok(report)
    }

    fn dump(&self) -> Result<String, StoreError> {
        let state = self.state();
        let mut out = String::new();
        for stored in state.jobs.values() {
            let status: Status = stored.job.status();
            out.push_str(&format!(
                "job {} revision {} {status} ({} subjobs)\n",
                stored.job.id,
                stored.job.revision,
                stored.subjobs.len()
            ));
        }
        Ok(out)
    }
}

/// Records are encoded from what the store answers (the trait's defaults).
impl RecordStore for MemoryStore {}
