//! Automatic resubmission of units that just failed, where the job's policy says so.

use std::collections::HashSet;
use std::sync::Arc;

use ganga_core::{
    JobId, JobRef, Status, UnitUpdate, auto_resubmission, auto_resubmit_single, auto_resubmit_split,
};

use super::{Event, Loop};
use crate::context::Instance;
use crate::handover::{Outgoing, SubmitReport, hand_over};
use crate::lease::SubmissionLease;
use crate::{Context, OpError, now};

impl Loop<'_> {
    /// Resubmits, where the job's policy says so, the units that just failed.
    pub(super) async fn auto_resubmit(&mut self, jobs: HashSet<JobId>) {
        for id in jobs {
            if self.resubmitting.contains(&id) {
                continue;
            }
            match self.resubmission(id).await {
                Ok(Some((instance, spec, outgoing))) => {
                    self.resubmitting.insert(id);
                    let (ctx, events) = (self.ctx().clone(), self.events.clone());
                    tokio::spawn(async move {
                        let result = resubmit(&ctx, &instance, id, &spec, outgoing).await;
                        let _ = events.send(Event::Resubmitted { job: id, result }).await;
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("job {id}: cannot decide on an automatic resubmission: {e}")
                }
            }
        }
    }

    /// What to resubmit of a job automatically, if anything.
    async fn resubmission(
        &self,
        id: JobId,
    ) -> Result<Option<(Arc<Instance>, ganga_core::JobSpec, Vec<Outgoing>)>, OpError> {
        let store = &self.ctx().store;
        let Some(job) = store.fresh_job(id).await? else {
            return Ok(None);
        };
        let Some(policy) = job.spec.auto_resubmit.or(self.settings().auto_resubmit) else {
            return Ok(None);
        };
        let outgoing = if !job.is_split() {
            if job.status() != Status::Failed
                || !auto_resubmit_single(&policy, job.run.auto_resubmits)
            {
                return Ok(None);
            }
            vec![Outgoing {
                unit: job.job_ref(),
                run: job.run.submit_count,
                overrides: Vec::new(),
                previous_id: job.run.backend.id.clone(),
            }]
        } else {
            if !auto_resubmit_split(&policy, &job.subjobs) {
                return Ok(None);
            }
            let n = job.subjob_count();
            let failed: Vec<u32> = store
                .statuses(id, 0..n)
                .await?
                .into_iter()
                .filter(|(_, s)| *s == Status::Failed)
                .map(|(i, _)| i)
                .collect();
            let mut outgoing = Vec::new();
            for i in failed {
                for sj in store.subjobs(id, i..i + 1).await? {
                    if sj.status() == Status::Failed
                        && auto_resubmit_single(&policy, sj.run.auto_resubmits)
                    {
                        outgoing.push(Outgoing {
                            unit: JobRef::subjob(id, sj.index),
                            run: sj.run.submit_count,
                            previous_id: sj.run.backend.id.clone(),
                            overrides: sj.overrides,
                        });
                    }
                }
            }
            outgoing
        };
        if outgoing.is_empty() {
            return Ok(None);
        }
        let instance = self.ctx().instance_for(id, &job.spec.backend.kind).await?;
        Ok(Some((instance, job.spec.without_splitter(), outgoing)))
    }
}

/// Starts the next run of failed units: records it, clears their collected outputs, and
/// hands them over.
pub(super) async fn resubmit(
    ctx: &Context,
    instance: &Instance,
    id: JobId,
    spec: &ganga_core::JobSpec,
    outgoing: Vec<Outgoing>,
) -> Result<SubmitReport, OpError> {
    let locks = ctx.locks.clone();
    let _lease = crate::store::blocking(move || SubmissionLease::acquire(&locks, id))
        .await?
        .map_err(|e| OpError::Io {
            job: JobRef::job(id),
            message: format!("cannot take the submission lock: {e}"),
        })?;
    let at = now();
    let updates: Vec<UnitUpdate> = outgoing
        .iter()
        .map(|o| UnitUpdate {
            unit: o.unit,
            seen: Status::Failed,
            run: o.run,
            change: auto_resubmission(at),
        })
        .collect();
    let outcome = ctx.store.update_units(updates).await?;
    let refused: HashSet<JobRef> = outcome.refused.into_iter().map(|(u, _)| u).collect();
    let mut next = Vec::with_capacity(outgoing.len());
    for o in outgoing {
        if refused.contains(&o.unit) {
            continue;
        }
        crate::operations::clear_outputs(ctx, o.unit).await?;
        next.push(Outgoing {
            run: o.run + 1,
            ..o
        });
    }
    hand_over(ctx, instance, id, spec, &next).await
}
