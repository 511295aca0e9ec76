//! What users ask for: submit, resubmit, kill, remove, copy, force a status, peek.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};

use ganga_core::{
    BackendRef, Change, Job, JobId, JobRef, JobSpec, PeekFile, PerJob, Status, Submitted,
    Timestamp, UnitChange, UnitRun, UnitUpdate, check_inside_workdir,
};

use crate::context::Instance;
use crate::handover::{Outgoing, SubmitReport, about, call, hand_over};
use crate::lease::SubmissionLease;
use crate::store::blocking;
use crate::whole::{WholeJob, load, modify};
use crate::{Context, OpError, now};

/// How a kill went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReport {
    pub killed: Vec<JobRef>,
    /// Units left `submitting` by a submission that was cut off before it handed them
    /// over: nothing runs; they are now `failed`, to be resubmitted.
    pub never_started: Vec<JobRef>,
    /// Units the backend could not kill, and why; their status is unchanged.
    pub failed: Vec<(JobRef, String)>,
}

/// The verbs of the CLI, carried out against a store and backends.
#[derive(Clone)]
pub struct Operations {
    ctx: Context,
}

/// The largest file `peek` returns unless asked otherwise.
pub const DEFAULT_PEEK_BYTES: u64 = 64 * 1024;

impl Operations {
    pub fn new(ctx: Context) -> Operations {
        Operations { ctx }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Creates a job from a spec (split into subjobs if it has a splitter), in status
    /// `new`. Nothing runs yet.
    pub async fn create(&self, spec: JobSpec) -> Result<JobId, OpError> {
        let id = self.ctx.store.reserve_ids(1).await?;
        self.store_new(Job::new(id, spec, now())).await
    }

    /// Stores a `new` job, split into its subjobs.
    async fn store_new(&self, mut job: Job) -> Result<JobId, OpError> {
        let id = job.id;
        let subjobs = job.split(now())?;
        let mut changes = vec![Change::PutJob(job)];
        if !subjobs.is_empty() {
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        self.ctx.store.commit(changes).await?;
        Ok(id)
    }

    /// Creates and submits a job: it is stored already `submitting` (its subjobs too),
    /// then handed over chunk by chunk.
    pub async fn submit_spec(&self, spec: JobSpec) -> Result<SubmitReport, OpError> {
        // The backend must exist before anything is stored.
        let name = spec.backend.kind.clone();
        self.ctx
            .instance(&name)
            .await
            .map_err(OpError::Unavailable)?;
        let id = self.ctx.store.reserve_ids(1).await?;
        let at = now();
        let mut job = Job::new(id, spec, at);
        let mut subjobs = job.split(at)?;
        let lease = self.lease(id).await?;
        job.begin_submit(&mut subjobs, at)?;
        let outgoing = outgoing_all(&job, &subjobs);
        let spec = job.spec.without_splitter();
        let mut changes = vec![Change::PutJob(job)];
        if !subjobs.is_empty() {
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        self.ctx.store.commit(changes).await?;
        let instance = self.ctx.instance_for(id, &name).await?;
        let report = hand_over(&self.ctx, &instance, id, &spec, &outgoing).await;
        drop(lease);
        report
    }

    /// Submits a `new` job: it and its subjobs become `submitting`, are handed to the
    /// backend, and become `submitted` (or `failed`, with the backend's reason).
    pub async fn submit(&self, id: JobId) -> Result<SubmitReport, OpError> {
        let lease = self.lease(id).await?;
        let (outgoing, whole) = modify(&self.ctx, id, |w| {
            let WholeJob { job, subjobs, .. } = w;
            job.begin_submit(subjobs, now())?;
            Ok(outgoing_all(job, subjobs))
        })
        .await?;
        self.hand_over(lease, &whole, &outgoing).await
    }

    /// Resubmits a job's failed and killed subjobs (or the job itself if it has none),
    /// or the one subjob named.
    pub async fn resubmit(&self, target: JobRef) -> Result<SubmitReport, OpError> {
        let id = target.job;
        let lease = self.lease(id).await?;
        let (outgoing, whole) = modify(&self.ctx, id, |w| {
            let at = now();
            // The ids of the runs that end here, before they are cleared.
            let previous: HashMap<JobRef, Option<String>> = w
                .units()
                .into_iter()
                .filter_map(|u| Some((u, w.run(u)?.backend.id.clone())))
                .collect();
            let chosen: Vec<JobRef> = match target.subjob {
                None => {
                    let WholeJob { job, subjobs, .. } = &mut *w;
                    let indices = job.begin_resubmit(subjobs, at)?;
                    if subjobs.is_empty() {
                        vec![target]
                    } else {
                        indices.into_iter().map(|i| JobRef::subjob(id, i)).collect()
                    }
                }
                Some(i) => {
                    let at_index = usize::try_from(i).ok();
                    let sj = at_index
                        .and_then(|k| w.subjobs.get_mut(k))
                        .filter(|sj| sj.index == i)
                        .ok_or(OpError::NoSuchJob(target))?;
                    w.job.begin_resubmit_subjob(sj, at)?;
                    vec![target]
                }
            };
            Ok(chosen
                .into_iter()
                .map(|u| Outgoing {
                    unit: u,
                    run: w.run(u).map_or(1, |r| r.submit_count),
                    overrides: w
                        .subjob(u)
                        .map(|sj| sj.overrides.clone())
                        .unwrap_or_default(),
                    previous_id: previous.get(&u).cloned().flatten(),
                })
                .collect::<Vec<_>>())
        })
        .await?;
        // A new run starts without the outputs of the last one.
        for o in &outgoing {
            clear_outputs(&self.ctx, o.unit).await?;
        }
        self.hand_over(lease, &whole, &outgoing).await
    }

    /// Hands units that were just made `submitting` to the job's backend and records its
    /// answers; the submission lease is held until they are recorded.
    async fn hand_over(
        &self,
        lease: SubmissionLease,
        whole: &WholeJob,
        outgoing: &[Outgoing],
    ) -> Result<SubmitReport, OpError> {
        let id = whole.job.id;
        let instance = self
            .ctx
            .instance_for(id, &whole.job.spec.backend.kind)
            .await?;
        let report = hand_over(
            &self.ctx,
            &instance,
            id,
            &whole.job.spec.without_splitter(),
            outgoing,
        )
        .await;
        drop(lease);
        report
    }

    /// Takes the submission lease of a job, waiting for another submission of it to end.
    async fn lease(&self, id: JobId) -> Result<SubmissionLease, OpError> {
        let locks = self.ctx.locks.clone();
        blocking(move || SubmissionLease::acquire(&locks, id))
            .await?
            .map_err(|e| OpError::Io {
                job: JobRef::job(id),
                message: format!("cannot take the submission lock: {e}"),
            })
    }

    /// Refuses to act on a job another process is submitting right now.
    fn not_being_submitted(&self, id: JobId, verb: &'static str) -> Result<(), OpError> {
        match SubmissionLease::holder(&self.ctx.locks, id) {
            Ok(None) => Ok(()),
            Ok(Some(pid)) => Err(OpError::Busy {
                job: JobRef::job(id),
                verb,
                by: (pid != 0).then_some(pid),
            }),
            Err(e) => Err(OpError::Io {
                job: JobRef::job(id),
                message: format!("cannot tell whether it is being submitted: {e}"),
            }),
        }
    }

    /// Kills a job's submitted and running units (or the one subjob named) at the
    /// backend, and those a crashed submission left `submitting` but the backend took,
    /// and marks those it killed `killed`.
    pub async fn kill(&self, target: JobRef) -> Result<KillReport, OpError> {
        self.not_being_submitted(target.job, "kill")?;
        let whole = load(&self.ctx, target.job).await?;
        let units = units_to_kill(&whole, target)?;
        let instance = self
            .ctx
            .instance_for(target.job, &whole.job.spec.backend.kind)
            .await?;
        let mut failed = Vec::new();
        let (mut refs, cut_off) = self.split_by_id(&whole, &units);
        let found = self
            .find_cut_off(&instance, &whole, target, &cut_off, &mut refs, &mut failed)
            .await?;
        let killed = self.kill_at_backend(&instance, &refs, &mut failed).await;
        let updates = kill_updates(&whole, &killed, &found, now());
        let outcome = self.ctx.store.update_units(updates).await?;
        for (u, why) in outcome.refused {
            tracing::info!("job {u}: killed at its backend, status not changed here: {why}");
        }
        Ok(KillReport {
            killed,
            never_started: found.never_started,
            failed,
        })
    }

    /// The units with a backend id, as the backend knows them, and those cut off
    /// mid-submission before their id was recorded.
    fn split_by_id(&self, whole: &WholeJob, units: &[JobRef]) -> (Vec<BackendRef>, Vec<UnitRun>) {
        let mut refs = Vec::new();
        let mut cut_off = Vec::new();
        for &u in units {
            let Some(run) = whole.run(u) else { continue };
            let workspace = self.ctx.workspaces.dir(u);
            match &run.backend.id {
                Some(id) => refs.push(BackendRef {
                    job: u,
                    id: id.clone(),
                    run: run.submit_count,
                    workspace,
                }),
                None => cut_off.push(UnitRun {
                    job: u,
                    run: run.submit_count,
                    workspace,
                }),
            }
        }
        (refs, cut_off)
    }

    /// Asks the backend whether it took the units cut off mid-submission: those it took
    /// join `refs` (to be killed), those it never started are reported.
    async fn find_cut_off(
        &self,
        instance: &Instance,
        whole: &WholeJob,
        target: JobRef,
        cut_off: &[UnitRun],
        refs: &mut Vec<BackendRef>,
        failed: &mut Vec<(JobRef, String)>,
    ) -> Result<Found, OpError> {
        let mut found = Found::default();
        if cut_off.is_empty() {
            return Ok(found);
        }
        if !instance.description.capabilities.find {
            failed.extend(cut_off.iter().map(|u| {
                (
                    u.job,
                    "its submission was interrupted and its backend cannot tell whether it started"
                        .to_owned(),
                )
            }));
            return Ok(found);
        }
        let answers = call(self.ctx.call_timeout, instance.backend.find(cut_off))
            .await
            .map_err(|e| OpError::Io {
                job: target,
                message: format!("cannot tell which of its units were started: {e}"),
            })?;
        for (u, answer) in answers {
            match answer {
                Ok(Some(s)) => {
                    let run = whole.run(u).map_or(1, |r| r.submit_count);
                    refs.push(BackendRef {
                        job: u,
                        id: s.id.clone(),
                        run,
                        workspace: self.ctx.workspaces.dir(u),
                    });
                    found.started.insert(u, s);
                }
                Ok(None) => found.never_started.push(u),
                Err(e) => failed.push((u, about(u, &e))),
            }
        }
        Ok(found)
    }

    /// Kills `refs` at the backend, a batch at a time; returns those it killed.
    async fn kill_at_backend(
        &self,
        instance: &Instance,
        refs: &[BackendRef],
        failed: &mut Vec<(JobRef, String)>,
    ) -> Vec<JobRef> {
        let mut killed = Vec::new();
        for chunk in refs.chunks(instance.max_batch()) {
            match call(self.ctx.call_timeout, instance.backend.kill(chunk)).await {
                Ok(answers) => {
                    let answers: HashMap<JobRef, PerJob<()>> = answers.into_iter().collect();
                    for r in chunk {
                        match answers.get(&r.job) {
                            Some(Ok(())) => killed.push(r.job),
                            Some(Err(e)) => failed.push((r.job, about(r.job, e))),
                            None => failed.push((r.job, "the backend did not answer".into())),
                        }
                    }
                }
                Err(e) => failed.extend(chunk.iter().map(|r| (r.job, e.to_string()))),
            }
        }
        killed
    }

    /// Removes a job, its subjobs and its workspace. An active job must be killed first
    /// unless `force` (then it is killed on the way, as far as the backend can). A job
    /// another process is submitting is not removed.
    pub async fn remove(&self, id: JobId, force: bool) -> Result<(), OpError> {
        self.not_being_submitted(id, "remove")?;
        let whole = load(&self.ctx, id).await?;
        whole.job.check_remove(force)?;
        if whole.job.status().is_active()
            && let Err(e) = self.kill(JobRef::job(id)).await
        {
            tracing::warn!("job {id}: removing without a clean kill: {e}");
        }
        let store = &self.ctx.store;
        store
            .retry_on_conflict(|| async move {
                let job = store
                    .fresh_job(id)
                    .await?
                    .ok_or(OpError::NoSuchJob(JobRef::job(id)))?;
                let change = Change::RemoveJob {
                    job: id,
                    revision: job.revision,
                };
                store.commit(vec![change]).await
            })
            .await?;
        remove_dir(&self.ctx.workspaces.job_dir(id))
            .await
            .map_err(|message| OpError::Io {
                job: JobRef::job(id),
                message,
            })
    }

    /// A new job with the same spec, in status `new` (Ganga's `copy()`).
    pub async fn copy(&self, id: JobId) -> Result<JobId, OpError> {
        let job = self
            .ctx
            .store
            .job(id)
            .await?
            .ok_or(OpError::NoSuchJob(JobRef::job(id)))?;
        let new = self.ctx.store.reserve_ids(1).await?;
        self.store_new(job.copy_as(new, now())).await
    }

    /// Ganga's `force_status`: to `completed` or `failed`, on a job, a master (each subjob
    /// that can be forced is) or one subjob.
    pub async fn force_status(&self, target: JobRef, to: Status) -> Result<Vec<JobRef>, OpError> {
        let (changed, _) = modify(&self.ctx, target.job, |w| {
            let at = now();
            match target.subjob {
                Some(i) => {
                    let k = usize::try_from(i).ok();
                    let sj = k
                        .and_then(|k| w.subjobs.get_mut(k))
                        .filter(|sj| sj.index == i)
                        .ok_or(OpError::NoSuchJob(target))?;
                    w.job.force_subjob_status(sj, to, at)?;
                    Ok(vec![target])
                }
                None if w.subjobs.is_empty() => {
                    w.job.force_status(to, at)?;
                    Ok(vec![target])
                }
                None => {
                    let WholeJob { job, subjobs, .. } = w;
                    let indices = job.force_status_of_subjobs(subjobs, to, at)?;
                    Ok(indices
                        .into_iter()
                        .map(|i| JobRef::subjob(target.job, i))
                        .collect())
                }
            }
        })
        .await?;
        Ok(changed)
    }

    /// The tail of a unit's stdout, stderr or another file: from the backend while it
    /// runs, else from its output directory (falling back to the backend).
    pub async fn peek(
        &self,
        target: JobRef,
        file: PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, OpError> {
        let job = self
            .ctx
            .store
            .job(target.job)
            .await?
            .ok_or(OpError::NoSuchJob(target))?;
        let run = match target.subjob {
            None if job.is_split() => {
                return Err(OpError::Io {
                    job: target,
                    message:
                        "a split job runs nothing itself; peek at one of its subjobs (e.g. ID.0)"
                            .into(),
                });
            }
            None => job.run.clone(),
            Some(i) => {
                self.ctx
                    .store
                    .subjobs(target.job, i..i.saturating_add(1))
                    .await?
                    .pop()
                    .filter(|sj| sj.index == i)
                    .ok_or(OpError::NoSuchJob(target))?
                    .run
            }
        };
        let running = matches!(run.status, Status::Submitted | Status::Running);
        if !running && check_inside_workdir(file.name()).is_ok() {
            let path = self.ctx.workspaces.output_dir(target).join(file.name());
            if let Some(bytes) = blocking(move || tail(&path, max_bytes)).await? {
                return Ok(bytes);
            }
        }
        let id = run.backend.id.clone().ok_or_else(|| OpError::Io {
            job: target,
            message: format!("nothing to peek at: it is {} and was never run", run.status),
        })?;
        let r = BackendRef {
            job: target,
            id,
            run: run.submit_count,
            workspace: self.ctx.workspaces.dir(target),
        };
        let instance = self
            .ctx
            .instance_for(target.job, &job.spec.backend.kind)
            .await?;
        instance
            .backend
            .peek(&r, &file, max_bytes)
            .await
            .map_err(|error| OpError::Backend {
                job: target,
                backend: job.spec.backend.kind.clone(),
                error,
            })
    }
}

/// Every unit of a new job, to hand over in its first run.
fn outgoing_all(job: &Job, subjobs: &[ganga_core::Subjob]) -> Vec<Outgoing> {
    if subjobs.is_empty() {
        vec![Outgoing {
            unit: job.job_ref(),
            run: job.run.submit_count,
            overrides: Vec::new(),
            previous_id: None,
        }]
    } else {
        subjobs
            .iter()
            .map(|sj| Outgoing {
                unit: JobRef::subjob(job.id, sj.index),
                run: sj.run.submit_count,
                overrides: sj.overrides.clone(),
                previous_id: None,
            })
            .collect()
    }
}

/// The units of a split job that a kill reaches: submitted, running, or left
/// `submitting` by a submission that was cut off.
fn killable(whole: &WholeJob) -> Vec<JobRef> {
    whole
        .units()
        .into_iter()
        .filter(|&u| {
            whole.run(u).is_some_and(|r| {
                matches!(r.status, Status::Submitted | Status::Running)
                    || (r.status == Status::Submitting && r.backend.id.is_none())
            })
        })
        .filter(|&u| whole.has(u))
        .collect()
}

/// Removes the outputs a unit's last run left, before its next run.
pub(crate) async fn clear_outputs(ctx: &Context, unit: JobRef) -> Result<(), OpError> {
    remove_dir(&ctx.workspaces.output_dir(unit))
        .await
        .map_err(|message| OpError::Io { job: unit, message })
}

/// The last `max_bytes` of a file, read from there (never the whole file). `None` if it
/// is not there.
fn tail(path: &std::path::Path, max_bytes: u64) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let n = len.min(max_bytes);
    file.seek(SeekFrom::Start(len - n)).ok()?;
    let mut bytes = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    file.take(n).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

async fn remove_dir(dir: &std::path::Path) -> Result<(), String> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// What the backend said of units cut off mid-submission.
#[derive(Default)]
struct Found {
    /// Taken by the backend: killed like the others, their id recorded.
    started: HashMap<JobRef, Submitted>,
    never_started: Vec<JobRef>,
}

/// Which units of `whole` a kill of `target` is for, or why it is refused.
fn units_to_kill(whole: &WholeJob, target: JobRef) -> Result<Vec<JobRef>, OpError> {
    let units: Vec<JobRef> = match target.subjob {
        None => {
            if whole.subjobs.is_empty() {
                let run = &whole.job.run;
                let cut_off = run.status == Status::Submitting && run.backend.id.is_none();
                if !cut_off {
                    whole.job.kill_targets(&[])?;
                }
                vec![target]
            } else {
                killable(whole)
            }
        }
        Some(_) => {
            let run = whole.run(target).ok_or(OpError::NoSuchJob(target))?;
            if !matches!(
                run.status,
                Status::Submitted | Status::Running | Status::Submitting
            ) {
                return Err(ganga_core::LifecycleError::Refused {
                    job: target,
                    verb: "kill",
                    status: run.status,
                    hint: " (only submitted or running jobs can be killed)",
                }
                .into());
            }
            vec![target]
        }
    };
    if units.is_empty() {
        // Every unit of it is submitting (or ended): kill_targets says what it is.
        whole.job.kill_targets(&whole.subjobs)?;
    }
    Ok(units)
}

/// The status changes a kill leaves: units never started fail as such (`after_find`),
/// units killed become `killed` (with the id found for those cut off).
fn kill_updates(
    whole: &WholeJob,
    killed: &[JobRef],
    found: &Found,
    at: Timestamp,
) -> Vec<UnitUpdate> {
    let mut updates: Vec<UnitUpdate> = found
        .never_started
        .iter()
        .filter_map(|&u| {
            let run = whole.run(u)?;
            Some(UnitUpdate {
                unit: u,
                seen: run.status,
                run: run.submit_count,
                change: ganga_core::after_find(&None, at),
            })
        })
        .collect();
    updates.extend(killed.iter().filter_map(|&u| {
        let run = whole.run(u)?;
        let mut change = UnitChange::to(Status::Killed, at);
        change.reason = Some("killed by the user".into());
        if let Some(s) = found.started.get(&u) {
            change.id = Some(s.id.clone());
        }
        Some(UnitUpdate {
            unit: u,
            seen: run.status,
            run: run.submit_count,
            change,
        })
    }));
    updates
}
