//! Status changes and the verbs a user applies to jobs (submit, kill, resubmit, remove,
//! copy, force_status), as pure functions over the model. Callers do the I/O: ask the
//! backend, then record what it said with these functions, then store the result.

use crate::{
    BackendInfo, Job, JobRef, JobSpec, RunState, SplitError, Status, Subjob, SubjobIndex, Timestamp,
};

/// A verb or a status change that the rules refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleError {
    #[error("job {job}: cannot go from {from} to {to}")]
    Illegal {
        job: JobRef,
        from: Status,
        to: Status,
    },
    #[error("job {job}: cannot {verb} a job that is {status}{hint}")]
    Refused {
        job: JobRef,
        verb: &'static str,
        status: Status,
        hint: &'static str,
    },
    #[error("job {job}: nothing to resubmit (no failed or killed subjobs)")]
    NothingToResubmit { job: JobRef },
    #[error("job {job}: {status} is not a status that can be forced (only completed or failed)")]
    NotForceable { job: JobRef, status: Status },
    #[error("job {job}: {source}")]
    Split { job: JobRef, source: SplitError },
}

impl RunState {
    /// Moves to `to` if the transition table allows it, recording the time.
    fn transition(
        &mut self,
        job: JobRef,
        to: Status,
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        if !self.status.can_become(to) {
            return Err(LifecycleError::Illegal {
                job,
                from: self.status,
                to,
            });
        }
        if self.status != to {
            self.status = to;
            self.times.set(to, now);
        }
        Ok(())
    }

    /// Readies a finished (sub)job for another run: a new submission, no backend facts,
    /// no collected outputs.
    fn reset_for_resubmit(&mut self) {
        self.backend = BackendInfo::default();
        self.outputs.clear();
    }
}

impl Job {
    /// Changes the status of a job that has no subjobs (or of a master directly, which
    /// only `force_status` and the master derivation do).
    pub fn set_status(&mut self, to: Status, now: Timestamp) -> Result<(), LifecycleError> {
        let job = self.job_ref();
        self.run.transition(job, to, now)
    }

    /// Changes one subjob's status, keeps the master's counters, and re-derives the master's
    /// status.
    pub fn set_subjob_status(
        &mut self,
        sj: &mut Subjob,
        to: Status,
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        let from = sj.run.status;
        sj.run
            .transition(JobRef::subjob(self.id, sj.index), to, now)?;
        self.subjobs.shift(from, to);
        self.derive_status(now);
        Ok(())
    }

    /// Sets a master's status from its subjob counters, as Ganga's `updateMasterJobStatus`
    /// does. The derived status is a view of the subjobs, so it is applied even where the
    /// table has no direct edge. Returns whether it changed.
    pub fn derive_status(&mut self, now: Timestamp) -> bool {
        match self.subjobs.master_status() {
            Some(s) if s != self.run.status => {
                self.run.status = s;
                self.run.times.set(s, now);
                true
            }
            _ => false,
        }
    }

    /// Makes the subjobs of a `new` job from its splitter. A job without a splitter has none.
    pub fn split(&mut self, now: Timestamp) -> Result<Vec<Subjob>, LifecycleError> {
        let job = self.job_ref();
        if self.run.status != Status::New {
            return Err(refused(job, "split", self.run.status, ""));
        }
        let Some(splitter) = &self.spec.splitter else {
            return Ok(Vec::new());
        };
        let overrides = splitter
            .split()
            .map_err(|source| LifecycleError::Split { job, source })?;
        let subjobs: Vec<Subjob> = overrides
            .into_iter()
            .enumerate()
            .map(|(i, o)| Subjob::new(index(i), o, now))
            .collect();
        self.subjobs = subjobs.iter().map(Subjob::status).collect();
        Ok(subjobs)
    }

    /// Starts submitting a `new` job: it and all its subjobs become `submitting`.
    pub fn begin_submit(
        &mut self,
        subjobs: &mut [Subjob],
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        if self.run.status != Status::New {
            return Err(refused(
                self.job_ref(),
                "submit",
                self.run.status,
                " (only a new job can be submitted; copy it or resubmit it)",
            ));
        }
        if subjobs.is_empty() {
            self.set_status(Status::Submitting, now)?;
            self.run.submit_count += 1;
        } else {
            for sj in subjobs.iter_mut() {
                self.set_subjob_status(sj, Status::Submitting, now)?;
                sj.run.submit_count += 1;
            }
            self.run.submit_count += 1;
        }
        Ok(())
    }

    /// Chooses what `resubmit` runs again and makes it `submitting`: the job itself if it
    /// has no subjobs (it must be completed, failed or killed), else only its failed and
    /// killed subjobs. Returns the indices of the subjobs chosen.
    pub fn begin_resubmit(
        &mut self,
        subjobs: &mut [Subjob],
        now: Timestamp,
    ) -> Result<Vec<SubjobIndex>, LifecycleError> {
        let job = self.job_ref();
        if !matches!(
            self.run.status,
            Status::Completed | Status::Failed | Status::Killed
        ) {
            return Err(refused(
                job,
                "resubmit",
                self.run.status,
                " (only completed, failed or killed jobs can be resubmitted)",
            ));
        }
        if !self.is_split() {
            self.set_status(Status::Submitting, now)?;
            self.run.submit_count += 1;
            self.run.reset_for_resubmit();
            return Ok(Vec::new());
        }
        let mut chosen = Vec::new();
        for sj in subjobs
            .iter_mut()
            .filter(|sj| matches!(sj.status(), Status::Failed | Status::Killed))
        {
            self.set_subjob_status(sj, Status::Submitting, now)?;
            sj.run.submit_count += 1;
            sj.run.reset_for_resubmit();
            chosen.push(sj.index);
        }
        if chosen.is_empty() {
            return Err(LifecycleError::NothingToResubmit { job });
        }
        self.run.submit_count += 1;
        Ok(chosen)
    }

    /// Resubmits one subjob chosen by the user (`ganga resubmit 12.3`); it must be
    /// completed, failed or killed.
    pub fn begin_resubmit_subjob(
        &mut self,
        sj: &mut Subjob,
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        if !matches!(
            sj.status(),
            Status::Completed | Status::Failed | Status::Killed
        ) {
            return Err(refused(
                JobRef::subjob(self.id, sj.index),
                "resubmit",
                sj.status(),
                " (only completed, failed or killed subjobs can be resubmitted)",
            ));
        }
        self.set_subjob_status(sj, Status::Submitting, now)?;
        sj.run.submit_count += 1;
        sj.run.reset_for_resubmit();
        Ok(())
    }

    /// Checks that `kill` applies and returns the subjobs to kill: those `submitted` or
    /// `running`. For a job without subjobs the list is empty and the job itself is killed.
    pub fn kill_targets(&self, subjobs: &[Subjob]) -> Result<Vec<SubjobIndex>, LifecycleError> {
        if !matches!(self.run.status, Status::Submitted | Status::Running) {
            return Err(refused(
                self.job_ref(),
                "kill",
                self.run.status,
                " (only submitted or running jobs can be killed)",
            ));
        }
        Ok(subjobs
            .iter()
            .filter(|sj| matches!(sj.status(), Status::Submitted | Status::Running))
            .map(|sj| sj.index)
            .collect())
    }

    /// Checks that the job may be removed. An active job must be killed first unless the
    /// removal is forced; a `completing` job may never be removed (its outputs are being
    /// collected).
    pub fn check_remove(&self, force: bool) -> Result<(), LifecycleError> {
        let status = self.run.status;
        if status == Status::Completing {
            return Err(refused(
                self.job_ref(),
                "remove",
                status,
                " (wait until its outputs are collected)",
            ));
        }
        if status.is_active() && !force {
            return Err(refused(
                self.job_ref(),
                "remove",
                status,
                " (kill it first, or force the removal)",
            ));
        }
        Ok(())
    }

    /// A new job with the same spec (Ganga's `copy()`): status `new`, no subjobs, no
    /// history.
    pub fn copy_as(&self, id: crate::JobId, now: Timestamp) -> Job {
        Job::new(id, JobSpec::clone(&self.spec), now)
    }

    /// Ganga's `force_status` on a job without subjobs.
    pub fn force_status(&mut self, to: Status, now: Timestamp) -> Result<(), LifecycleError> {
        let job = self.job_ref();
        check_forceable(job, self.run.status, to)?;
        self.run.transition(job, to, now)
    }

    /// Ganga's `force_status` on a master: every subjob that can be forced to `to` is, then
    /// the master is derived again. Returns the indices of the subjobs changed.
    pub fn force_status_of_subjobs(
        &mut self,
        subjobs: &mut [Subjob],
        to: Status,
        now: Timestamp,
    ) -> Result<Vec<SubjobIndex>, LifecycleError> {
        let job = self.job_ref();
        if !matches!(to, Status::Completed | Status::Failed) {
            return Err(LifecycleError::NotForceable { job, status: to });
        }
        let mut changed = Vec::new();
        for sj in subjobs.iter_mut() {
            if sj.status() != to
                && check_forceable(JobRef::subjob(self.id, sj.index), sj.status(), to).is_ok()
            {
                self.set_subjob_status(sj, to, now)?;
                changed.push(sj.index);
            }
        }
        Ok(changed)
    }

    /// Ganga's `force_status` on one subjob.
    pub fn force_subjob_status(
        &mut self,
        sj: &mut Subjob,
        to: Status,
        now: Timestamp,
    ) -> Result<(), LifecycleError> {
        check_forceable(JobRef::subjob(self.id, sj.index), sj.status(), to)?;
        self.set_subjob_status(sj, to, now)
    }
}

/// `force_status` only leads to `completed` (from completing or failed) or to `failed`
/// (from submitting, submitted, running, completing, completed or killed), as in Ganga.
fn check_forceable(job: JobRef, from: Status, to: Status) -> Result<(), LifecycleError> {
    let allowed: &[Status] = match to {
        Status::Completed => &[Status::Completing, Status::Failed],
        Status::Failed => &[
            Status::Submitting,
            Status::Submitted,
            Status::Running,
            Status::Completing,
            Status::Completed,
            Status::Killed,
        ],
        _ => return Err(LifecycleError::NotForceable { job, status: to }),
    };
    if allowed.contains(&from) {
        Ok(())
    } else {
        Err(LifecycleError::Illegal { job, from, to })
    }
}

fn refused(job: JobRef, verb: &'static str, status: Status, hint: &'static str) -> LifecycleError {
    LifecycleError::Refused {
        job,
        verb,
        status,
        hint,
    }
}

fn index(i: usize) -> SubjobIndex {
    SubjobIndex::try_from(i).unwrap_or(SubjobIndex::MAX)
}

/// The spec a subjob (or the job itself) runs.
pub fn effective_spec(job: &Job, subjob: Option<&Subjob>) -> JobSpec {
    match subjob {
        Some(sj) => sj.effective_spec(&job.spec),
        None => job.spec.without_splitter(),
    }
}
