//! What users ask for: submit, resubmit, kill, remove, copy, force a status, peek.

use std::sync::Arc;

use ganga_core::{
    Backend, BackendError, Change, Job, JobId, JobRef, JobSpec, PeekFile, Status, SubmitSpec,
    Submitted, effective_spec,
};

use crate::units::{Loaded, Unit, blocking, commit, load, modify};
use crate::{Context, OpError, now};

/// How a submission went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    pub job: JobId,
    /// Units handed to the backend.
    pub submitted: usize,
    /// Units the backend refused, and why; they are now `failed`.
    pub failed: Vec<(JobRef, String)>,
}

/// How a kill went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReport {
    pub killed: Vec<JobRef>,
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

    fn backend_for(&self, job: &Job) -> Result<Arc<dyn Backend>, OpError> {
        let name = &job.spec.backend.kind;
        self.ctx
            .backends
            .backend(name)
            .map_err(|message| OpError::NoBackend {
                job: job.job_ref(),
                backend: name.clone(),
                message,
            })
    }

    /// Creates a job from a spec (split into subjobs if it has a splitter), in status
    /// `new`. Nothing runs yet.
    pub async fn create(&self, spec: JobSpec) -> Result<JobId, OpError> {
        let store = self.ctx.store.clone();
        let id = blocking(move || store.reserve_ids(1)).await??;
        let mut job = Job::new(id, spec, now());
        let subjobs = job.split(now())?;
        let mut changes = vec![Change::PutJob(job)];
        if !subjobs.is_empty() {
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        commit(&self.ctx, changes).await?;
        Ok(id)
    }

    /// Creates and submits a job.
    pub async fn submit_spec(&self, spec: JobSpec) -> Result<SubmitReport, OpError> {
        // Check the backend exists before anything is stored.
        let name = spec.backend.kind.clone();
        self.ctx
            .backends
            .backend(&name)
            .map_err(OpError::Unavailable)?;
        let id = self.create(spec).await?;
        self.submit(id).await
    }

    /// Submits a `new` job: it and its subjobs become `submitting`, are handed to the
    /// backend, and become `submitted` (or `failed`, with the backend's reason).
    pub async fn submit(&self, id: JobId) -> Result<SubmitReport, OpError> {
        let (units, loaded) = modify(&self.ctx, id, |l| {
            let Loaded { job, subjobs, .. } = l;
            job.begin_submit(subjobs, now())?;
            Ok(l.units())
        })
        .await?;
        self.hand_over(loaded, units).await
    }

    /// Resubmits a job's failed and killed subjobs (or the job itself if it has none),
    /// or the one subjob named.
    pub async fn resubmit(&self, target: JobRef) -> Result<SubmitReport, OpError> {
        let (units, loaded) = modify(&self.ctx, target.job, |l| {
            let now = now();
            match target.subjob {
                None => {
                    let Loaded { job, subjobs, .. } = l;
                    let chosen = job.begin_resubmit(subjobs, now)?;
                    Ok(if l.subjobs.is_empty() {
                        vec![None]
                    } else {
                        chosen
                            .iter()
                            .filter_map(|&index| l.unit_of(JobRef::subjob(target.job, index)))
                            .collect()
                    })
                }
                Some(_) => {
                    let unit = l.unit_of(target).ok_or(OpError::NoSuchJob(target))?;
                    let i = unit.ok_or(OpError::NoSuchJob(target))?;
                    l.job.begin_resubmit_subjob(&mut l.subjobs[i], now)?;
                    Ok(vec![unit])
                }
            }
        })
        .await?;
        // A new run starts from a clean directory: no outputs or markers of the last one.
        for &unit in &units {
            let dir = self.ctx.workspaces.dir(loaded.job_ref(unit));
            let keep_subjobs = unit.is_none() && !loaded.subjobs.is_empty();
            if !keep_subjobs {
                remove_dir(&dir).await.map_err(|message| OpError::Io {
                    job: loaded.job_ref(unit),
                    message,
                })?;
            }
        }
        self.hand_over(loaded, units).await
    }

    /// Gives `units` (all `submitting`) to the job's backend and records its answers.
    async fn hand_over(&self, loaded: Loaded, units: Vec<Unit>) -> Result<SubmitReport, OpError> {
        let id = loaded.job.id;
        let specs: Vec<SubmitSpec> = units
            .iter()
            .map(|&u| self.submit_spec_of(&loaded, u))
            .collect();
        let answers: Vec<(JobRef, Result<Submitted, String>)> =
            match self.backend_for(&loaded.job) {
                Err(e) => specs.iter().map(|s| (s.job, Err(e.to_string()))).collect(),
                Ok(backend) => {
                    let max_batch = match backend.describe().await {
                        Ok(d) => d.max_batch.max(1) as usize,
                        Err(_) => 100,
                    };
                    let mut answers = Vec::with_capacity(specs.len());
                    for chunk in specs.chunks(max_batch) {
                        match backend.submit(chunk).await {
                            Ok(results) => {
                                let mut results: std::collections::HashMap<_, _> =
                                    results.into_iter().collect();
                                answers.extend(chunk.iter().map(|s| {
                                    let answer = results.remove(&s.job).unwrap_or_else(|| {
                                        Err("the backend did not answer for it".to_owned())
                                    });
                                    (s.job, answer)
                                }));
                            }
                            Err(e) => answers
                                .extend(chunk.iter().map(|s| (s.job, Err(describe_error(&e))))),
                        }
                    }
                    answers
                }
            };
        let (report, _) = modify(&self.ctx, id, |l| {
            let now = now();
            let mut report = SubmitReport {
                job: id,
                submitted: 0,
                failed: Vec::new(),
            };
            for (job_ref, answer) in &answers {
                let Some(unit) = l.unit_of(*job_ref) else {
                    continue;
                };
                if l.status(unit) != Status::Submitting {
                    continue;
                }
                match answer {
                    Ok(submitted) => {
                        let facts = l.facts_mut(unit);
                        facts.backend.id = Some(submitted.id.clone());
                        facts.backend.actual_ce = submitted.actual_ce.clone();
                        l.set_status(unit, Status::Submitted, now)?;
                        report.submitted += 1;
                    }
                    Err(reason) => {
                        let reason = about(*job_ref, reason);
                        l.facts_mut(unit).backend.reason =
                            Some(format!("submission failed: {reason}"));
                        l.set_status(unit, Status::Failed, now)?;
                        report.failed.push((*job_ref, reason));
                    }
                }
            }
            Ok(report)
        })
        .await?;
        Ok(report)
    }

    fn submit_spec_of(&self, loaded: &Loaded, unit: Unit) -> SubmitSpec {
        let job_ref = loaded.job_ref(unit);
        let spec = effective_spec(&loaded.job, unit.map(|i| &loaded.subjobs[i]));
        let exe = spec.application.executable();
        SubmitSpec {
            job: job_ref,
            run: loaded.run(unit).submit_count,
            previous_id: None,
            name: spec.name.clone(),
            exe: exe.exe.clone(),
            args: exe.args.clone(),
            env: exe.env.clone(),
            input_files: spec.input_files.clone(),
            output_patterns: spec.output_files.clone(),
            workspace: self.ctx.workspaces.dir(job_ref),
            output_dir: self.ctx.workspaces.output_dir(job_ref),
            options: spec.backend.options.clone(),
        }
    }

    /// Kills a job's submitted and running units (or the one subjob named) at the backend
    /// and marks those the backend killed as `killed`.
    pub async fn kill(&self, target: JobRef) -> Result<KillReport, OpError> {
        let loaded = load(&self.ctx, target.job).await?;
        let units: Vec<Unit> = match target.subjob {
            None => {
                let indices = loaded.job.kill_targets(&loaded.subjobs)?;
                if loaded.subjobs.is_empty() {
                    vec![None]
                } else {
                    indices
                        .iter()
                        .filter_map(|&i| loaded.unit_of(JobRef::subjob(target.job, i)))
                        .collect()
                }
            }
            Some(_) => {
                let unit = loaded.unit_of(target).ok_or(OpError::NoSuchJob(target))?;
                let status = loaded.status(unit);
                if !matches!(status, Status::Submitted | Status::Running) {
                    return Err(ganga_core::LifecycleError::Refused {
                        job: target,
                        verb: "kill",
                        status,
                        hint: " (only submitted or running jobs can be killed)",
                    }
                    .into());
                }
                vec![unit]
            }
        };
        let mut failed = Vec::new();
        let refs: Vec<_> = units
            .iter()
            .filter_map(|&u| {
                let r = loaded.backend_ref(&self.ctx, u);
                if r.is_none() {
                    failed.push((
                        loaded.job_ref(u),
                        "the backend never gave it an id".to_owned(),
                    ));
                }
                r
            })
            .collect();
        let backend = self.backend_for(&loaded.job)?;
        let max_batch = match backend.describe().await {
            Ok(d) => d.max_batch.max(1) as usize,
            Err(_) => 100,
        };
        let mut killed = Vec::new();
        for chunk in refs.chunks(max_batch) {
            match backend.kill(chunk).await {
                Ok(results) => {
                    for (job, result) in results {
                        match result {
                            Ok(()) => killed.push(job),
                            Err(e) => failed.push((job, about(job, &e))),
                        }
                    }
                }
                Err(e) => failed.extend(chunk.iter().map(|r| (r.job, describe_error(&e)))),
            }
        }
        modify(&self.ctx, target.job, |l| {
            let now = now();
            for job_ref in &killed {
                if let Some(unit) = l.unit_of(*job_ref)
                    && l.status(unit).can_become(Status::Killed)
                    && !l.status(unit).is_final()
                {
                    l.facts_mut(unit).backend.reason = Some("killed by the user".into());
                    l.set_status(unit, Status::Killed, now)?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(KillReport { killed, failed })
    }

    /// Removes a job, its subjobs and its workspace. An active job must be killed first
    /// unless `force` (then it is killed on the way, as far as the backend can).
    pub async fn remove(&self, id: JobId, force: bool) -> Result<(), OpError> {
        let loaded = load(&self.ctx, id).await?;
        loaded.job.check_remove(force)?;
        if loaded.job.status().is_active()
            && let Err(e) = self.kill(JobRef::job(id)).await
        {
            tracing::warn!("job {id}: removing without a clean kill: {e}");
        }
        for _ in 0..8 {
            let job = load(&self.ctx, id).await?.job;
            let change = Change::RemoveJob {
                job: id,
                revision: job.revision,
            };
            match commit(&self.ctx, vec![change]).await {
                Ok(_) => {
                    return remove_dir(&self.ctx.workspaces.job_dir(id))
                        .await
                        .map_err(|message| OpError::Io {
                            job: JobRef::job(id),
                            message,
                        });
                }
                Err(OpError::Store(ganga_core::StoreError::Conflict { .. })) => {
                    self.ctx.cache.forget(id);
                }
                Err(e) => return Err(e),
            }
        }
        Err(OpError::Contended(JobRef::job(id)))
    }

    /// A new job with the same spec, in status `new`.
    pub async fn copy(&self, id: JobId) -> Result<JobId, OpError> {
        let loaded = load(&self.ctx, id).await?;
        self.create(JobSpec::clone(&loaded.job.spec)).await
    }

    /// Ganga's `force_status`: to `completed` or `failed`, on a job, a master (each subjob
    /// that can be forced is) or one subjob.
    pub async fn force_status(&self, target: JobRef, to: Status) -> Result<Vec<JobRef>, OpError> {
        let (changed, _) = modify(&self.ctx, target.job, |l| {
            let now = now();
            match target.subjob {
                Some(_) => {
                    let i = l
                        .unit_of(target)
                        .flatten()
                        .ok_or(OpError::NoSuchJob(target))?;
                    l.job.force_subjob_status(&mut l.subjobs[i], to, now)?;
                    Ok(vec![target])
                }
                None if l.subjobs.is_empty() => {
                    l.job.force_status(to, now)?;
                    Ok(vec![target])
                }
                None => {
                    let Loaded { job, subjobs, .. } = l;
                    let indices = job.force_status_of_subjobs(subjobs, to, now)?;
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

    /// The tail of a (sub)job's stdout, stderr or another file: from the backend while it
    /// runs, else from its output directory (falling back to the backend).
    pub async fn peek(
        &self,
        target: JobRef,
        file: PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, OpError> {
        let loaded = load(&self.ctx, target.job).await?;
        let unit = loaded.unit_of(target).ok_or(OpError::NoSuchJob(target))?;
        if unit.is_none() && !loaded.subjobs.is_empty() {
            return Err(OpError::Io {
                job: target,
                message: "a split job runs nothing itself; peek at one of its subjobs (e.g. ID.0)"
                    .into(),
            });
        }
        let running = matches!(loaded.status(unit), Status::Submitted | Status::Running);
        if !running {
            let name = match &file {
                PeekFile::Stdout => "stdout".to_owned(),
                PeekFile::Stderr => "stderr".to_owned(),
                PeekFile::Path(p) => p.clone(),
            };
            let path = self.ctx.workspaces.output_dir(target).join(&name);
            if !name.contains("..")
                && !name.starts_with('/')
                && let Ok(bytes) = tokio::fs::read(&path).await
            {
                let start = bytes.len().saturating_sub(max_bytes as usize);
                return Ok(bytes[start..].to_vec());
            }
        }
        let r = loaded
            .backend_ref(&self.ctx, unit)
            .ok_or_else(|| OpError::Io {
                job: target,
                message: format!(
                    "nothing to peek at: it is {} and was never run",
                    loaded.status(unit)
                ),
            })?;
        let backend = self.backend_for(&loaded.job)?;
        backend
            .peek(&r, &file, max_bytes)
            .await
            .map_err(|error| OpError::Backend {
                job: target,
                backend: loaded.job.spec.backend.kind.clone(),
                error,
            })
    }
}

fn describe_error(e: &BackendError) -> String {
    e.to_string()
}

/// A backend's message about one job, without the job's name if the backend put it first
/// (the caller names the job itself).
fn about(job: JobRef, message: &str) -> String {
    message
        .strip_prefix(&format!("job {job}: "))
        .unwrap_or(message)
        .to_owned()
}

async fn remove_dir(dir: &std::path::Path) -> Result<(), String> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}
