//! A job loaded with its subjobs for a change, and the loading, committing and retrying
//! around it. A "unit" is what a backend runs: the job itself when it has no subjobs,
//! else each subjob.

use std::sync::Arc;

use ganga_core::{
    BackendRef, Change, Committed, Job, JobId, JobRef, LifecycleError, RunState, RunUpdate, Status,
    StoreError, Subjob, Timestamp,
};

use crate::{Context, OpError};

/// How often a change is retried after another process changed the same job.
const MAX_ATTEMPTS: usize = 8;

/// One thing a backend runs: `None` is the job itself, `Some(i)` its `i`-th subjob.
pub(crate) type Unit = Option<usize>;

/// A job and all its subjobs, with a copy of the subjobs as read so that only those
/// changed are written back.
pub(crate) struct Loaded {
    pub(crate) job: Job,
    pub(crate) subjobs: Vec<Subjob>,
    read_job: Job,
    read: Vec<Subjob>,
}

impl Loaded {
    pub(crate) fn units(&self) -> Vec<Unit> {
        if self.subjobs.is_empty() {
            vec![None]
        } else {
            (0..self.subjobs.len()).map(Some).collect()
        }
    }

    pub(crate) fn job_ref(&self, unit: Unit) -> JobRef {
        match unit {
            None => JobRef::job(self.job.id),
            Some(i) => JobRef::subjob(self.job.id, self.subjobs[i].index),
        }
    }

    /// The unit naming `target`, if the job has it.
    pub(crate) fn unit_of(&self, target: JobRef) -> Option<Unit> {
        match target.subjob {
            None => Some(None),
            Some(index) => self
                .subjobs
                .iter()
                .position(|sj| sj.index == index)
                .map(Some),
        }
    }

    pub(crate) fn run(&self, unit: Unit) -> &RunState {
        match unit {
            None => &self.job.run,
            Some(i) => &self.subjobs[i].run,
        }
    }

    /// The unit's run state for changes other than its status (backend facts, outputs).
    pub(crate) fn facts_mut(&mut self, unit: Unit) -> &mut RunState {
        match unit {
            None => &mut self.job.run,
            Some(i) => &mut self.subjobs[i].run,
        }
    }

    pub(crate) fn status(&self, unit: Unit) -> Status {
        self.run(unit).status
    }

    /// Changes a unit's status through the core's rules (which keep the master's
    /// counters and derived status right).
    pub(crate) fn set_status(
        &mut self,
        unit: Unit,
        to: Status,
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        match unit {
            None => self.job.set_status(to, now),
            Some(i) => self.job.set_subjob_status(&mut self.subjobs[i], to, now),
        }
    }

    /// How the backend knows this unit, once it was given an id.
    pub(crate) fn backend_ref(&self, ctx: &Context, unit: Unit) -> Option<BackendRef> {
        let job = self.job_ref(unit);
        let id = self.run(unit).backend.id.clone()?;
        Some(BackendRef {
            job,
            id,
            run: self.run(unit).submit_count,
            workspace: ctx.workspaces.dir(job),
        })
    }

    /// Whether anything differs from what was read (or last committed).
    pub(crate) fn has_unsaved(&self) -> bool {
        self.job != self.read_job || self.subjobs != self.read
    }

    /// The changes that write this job back: the job (only its run state when its spec
    /// and metadata are as read, which keeps a status change small), and the subjobs that
    /// differ from what was read.
    pub(crate) fn changes(&self) -> Vec<Change> {
        let changed: Vec<Subjob> = self
            .subjobs
            .iter()
            .zip(&self.read)
            .filter(|(now, then)| now != then)
            .map(|(now, _)| now.clone())
            .collect();
        let same_spec =
            Arc::ptr_eq(&self.job.spec, &self.read_job.spec) || self.job.spec == self.read_job.spec;
        let mut changes = vec![
            if same_spec && self.job.metadata == self.read_job.metadata {
                Change::PutRun(RunUpdate::of(&self.job))
            } else {
                Change::PutJob(self.job.clone())
            },
        ];
        if !changed.is_empty() {
            changes.push(Change::PutSubjobs {
                job: self.job.id,
                subjobs: changed,
            });
        }
        changes
    }

    /// After a commit: the job now has `revision`, and what is held is what is stored.
    pub(crate) fn committed(&mut self, revision: u64) {
        self.job.revision = revision;
        self.read_job = self.job.clone();
        self.read = self.subjobs.clone();
    }
}

/// Runs blocking store work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::Internal(format!("a store task failed: {e}")))
}

/// Loads a job and all its subjobs.
pub(crate) async fn load(ctx: &Context, id: JobId) -> Result<Loaded, OpError> {
    let cache = ctx.cache.clone();
    let (job, subjobs) = blocking(move || -> Result<(Job, Vec<Subjob>), OpError> {
        let job = cache.job(id)?.ok_or(OpError::NoSuchJob(JobRef::job(id)))?;
        let job = Job::clone(&job);
        let subjobs = if job.is_split() {
            cache.subjobs(id, 0..job.subjob_count())?
        } else {
            Vec::new()
        };
        Ok((job, subjobs))
    })
    .await??;
    if subjobs.len() != job.subjob_count() as usize {
        return Err(OpError::Store(StoreError::Corrupt {
            job: JobRef::job(id),
            detail: format!(
                "the job counts {} subjobs but {} are stored",
                job.subjob_count(),
                subjobs.len()
            ),
        }));
    }
    Ok(Loaded {
        read_job: job.clone(),
        read: subjobs.clone(),
        job,
        subjobs,
    })
}

/// Commits changes in one transaction.
pub(crate) async fn commit(ctx: &Context, changes: Vec<Change>) -> Result<Vec<Committed>, OpError> {
    let cache = ctx.cache.clone();
    Ok(blocking(move || cache.commit(changes)).await??)
}

/// Loads a job, applies `f`, and commits the result; if another process changed the job
/// meanwhile, does it all again on the fresh job. `f` must therefore only compute from
/// what it is given (and what it captured), never act on the outside world.
pub(crate) async fn modify<R>(
    ctx: &Context,
    id: JobId,
    mut f: impl FnMut(&mut Loaded) -> Result<R, OpError>,
) -> Result<(R, Loaded), OpError> {
    for _ in 0..MAX_ATTEMPTS {
        let mut loaded = load(ctx, id).await?;
        let result = f(&mut loaded)?;
        if !loaded.has_unsaved() {
            return Ok((result, loaded));
        }
        match commit(ctx, loaded.changes()).await {
            Ok(committed) => {
                if let Some(c) = committed.iter().find(|c| c.job == id) {
                    loaded.committed(c.revision);
                }
                return Ok((result, loaded));
            }
            Err(OpError::Store(StoreError::Conflict { .. })) => {
                tracing::debug!(
                    job = id,
                    "changed by another process meanwhile; trying again"
                );
                ctx.cache.forget(id);
            }
            Err(e) => return Err(e),
        }
    }
    Err(OpError::Contended(JobRef::job(id)))
}
