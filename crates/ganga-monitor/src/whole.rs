//! A job with all its subjobs, as a user's verb changes it (force a status, begin a
//! (re)submission), and the read-change-commit loop around it.

use std::sync::Arc;

use ganga_core::{Change, Job, JobId, JobRef, RunState, RunUpdate, StoreError, Subjob};

use crate::{Context, OpError};

/// A job and all its subjobs, with a copy as read so that only what changed is written.
pub(crate) struct WholeJob {
    pub(crate) job: Job,
    pub(crate) subjobs: Vec<Subjob>,
    read_job: Job,
    read: Vec<Subjob>,
}

impl WholeJob {
    /// What its backend runs: the job itself if it has no subjobs, else each subjob.
    pub(crate) fn units(&self) -> Vec<JobRef> {
        if self.subjobs.is_empty() {
            vec![self.job.job_ref()]
        } else {
            self.subjobs
                .iter()
                .map(|sj| JobRef::subjob(self.job.id, sj.index))
                .collect()
        }
    }

    fn position(&self, unit: JobRef) -> Option<usize> {
        let i = unit.subjob?;
        // Subjobs are stored and read in index order, `0..n`.
        let at = usize::try_from(i).ok()?;
        (self.subjobs.get(at)?.index == i).then_some(at)
    }

    /// Whether the job has this unit.
    pub(crate) fn has(&self, unit: JobRef) -> bool {
        unit.job == self.job.id
            && match unit.subjob {
                None => self.subjobs.is_empty(),
                Some(_) => self.position(unit).is_some(),
            }
    }

    /// A unit's run state.
    pub(crate) fn run(&self, unit: JobRef) -> Option<&RunState> {
        match unit.subjob {
            None if self.subjobs.is_empty() => Some(&self.job.run),
            None => None,
            Some(_) => self.position(unit).map(|i| &self.subjobs[i].run),
        }
    }

    pub(crate) fn subjob(&self, unit: JobRef) -> Option<&Subjob> {
        self.position(unit).map(|i| &self.subjobs[i])
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
    fn committed(&mut self, revision: u64) {
        self.job.revision = revision;
        self.read_job = self.job.clone();
        self.read = self.subjobs.clone();
    }
}

/// Loads a job and all its subjobs.
pub(crate) async fn load(ctx: &Context, id: JobId) -> Result<WholeJob, OpError> {
    let job = ctx
        .store
        .job(id)
        .await?
        .ok_or(OpError::NoSuchJob(JobRef::job(id)))?;
    let job = Job::clone(&job);
    let subjobs = if job.is_split() {
        ctx.store.subjobs(id, 0..job.subjob_count()).await?
    } else {
        Vec::new()
    };
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
    Ok(WholeJob {
        read_job: job.clone(),
        read: subjobs.clone(),
        job,
        subjobs,
    })
}

/// Loads a job, applies `f`, and commits the result; if another process changed the job
/// meanwhile, does it all again on the fresh job. `f` must therefore only compute from
/// what it is given (and what it captured), never act on the outside world.
pub(crate) async fn modify<R>(
    ctx: &Context,
    id: JobId,
    f: impl Fn(&mut WholeJob) -> Result<R, OpError> + Sync,
) -> Result<(R, WholeJob), OpError> {
    let f = &f;
    ctx.store
        .retry_on_conflict(|| async move {
            let mut whole = load(ctx, id).await?;
            let result = f(&mut whole)?;
            if whole.has_unsaved() {
                let committed = ctx.store.commit(whole.changes()).await?;
                if let Some(c) = committed.iter().find(|c| c.job == id) {
                    whole.committed(c.revision);
                }
            }
            Ok((result, whole))
        })
        .await
}
