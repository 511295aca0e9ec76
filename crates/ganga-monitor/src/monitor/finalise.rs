//! Collecting the outputs of ended units, beside the polls, and settling how they ended.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ganga_core::{
    Answers, BackendRef, JobId, JobRef, OutputsReport, OutputsRequest, PerJob, Status, UnitUpdate,
    settle,
};

use super::{CycleReport, Ended, Event, Loop};
use crate::context::Instance;
use crate::handover::{CallError, call};
use crate::{Context, now};

impl Loop<'_> {
    /// Starts output collections, up to the concurrency allowed per backend.
    pub(super) fn start_finalising(&mut self) {
        let limit = self.settings().finalise_concurrency.max(1);
        let timeout = self.ctx().call_timeout;
        let names: Vec<String> = self.backends.keys().cloned().collect();
        for name in names {
            while let Some(b) = self.backends.get_mut(&name) {
                let Some(instance) = b.instance.clone() else {
                    break;
                };
                if b.finalising >= limit || b.finalise_queue.is_empty() {
                    break;
                }
                let n = instance.max_batch().min(b.finalise_queue.len());
                let batch: Vec<Ended> = b.finalise_queue.drain(..n).collect();
                b.finalising += 1;
                let (ctx, events, name) = (self.ctx().clone(), self.events.clone(), name.clone());
                tokio::spawn(async move {
                    let result = collect(&ctx, &instance, &batch, timeout).await;
                    let _ = events
                        .send(Event::Collected {
                            backend: name,
                            ended: batch,
                            result,
                        })
                        .await;
                });
            }
        }
    }

    /// Settles how collected units ended.
    pub(super) fn collected(
        &mut self,
        backend: &str,
        batch: Vec<Ended>,
        result: Result<Answers<OutputsReport>, CallError>,
        updates: &mut Vec<UnitUpdate>,
    ) -> CycleReport {
        let mut report = CycleReport {
            backend: backend.to_owned(),
            ..CycleReport::default()
        };
        if let Some(b) = self.backends.get_mut(backend) {
            b.finalising = b.finalising.saturating_sub(1);
        }
        for e in &batch {
            self.finalising.remove(&(e.unit, e.run));
        }
        let answers: HashMap<JobRef, PerJob<OutputsReport>> = match result {
            Ok(a) => a.into_iter().collect(),
            Err(e) => {
                report.problems.push(format!(
                    "backend `{backend}`: collecting the outputs of {} units failed (tried again later): {e}",
                    batch.len()
                ));
                return report;
            }
        };
        let at = now();
        for e in batch {
            match answers.get(&e.unit) {
                Some(Ok(out)) => {
                    self.settled.insert((e.unit, e.run), Instant::now());
                    let change = settle(e.succeeded, e.reason.as_deref(), out, at);
                    report.changed += 1;
                    report.finished += 1;
                    updates.push(UnitUpdate {
                        unit: e.unit,
                        seen: Status::Completing,
                        run: e.run,
                        change,
                    });
                }
                Some(Err(why)) => report.problems.push(format!(
                    "job {}: collecting its outputs failed (tried again later): {why}",
                    e.unit
                )),
                None => report.problems.push(format!(
                    "job {}: backend `{backend}` did not answer for its outputs (tried again later)",
                    e.unit
                )),
            }
        }
        report
    }
}

/// Collects the outputs of ended units.
pub(super) async fn collect(
    ctx: &Context,
    instance: &Instance,
    batch: &[Ended],
    timeout: Duration,
) -> Result<Answers<OutputsReport>, CallError> {
    let mut patterns: HashMap<JobId, Vec<String>> = HashMap::new();
    let mut requests = Vec::with_capacity(batch.len());
    for e in batch {
        if let std::collections::hash_map::Entry::Vacant(slot) = patterns.entry(e.unit.job) {
            let job = ctx
                .store
                .job(e.unit.job)
                .await
                .map_err(|e| CallError::Uncertain(e.to_string()))?;
            let Some(job) = job else { continue };
            slot.insert(job.spec.output_files.clone());
        }
        requests.push(OutputsRequest {
            job: BackendRef {
                job: e.unit,
                id: e.id.clone(),
                run: e.run,
                workspace: ctx.workspaces.dir(e.unit),
            },
            output_dir: ctx.workspaces.output_dir(e.unit),
            patterns: patterns.get(&e.unit.job).cloned().unwrap_or_default(),
        });
    }
    call(timeout, instance.backend.outputs(&requests)).await
}
