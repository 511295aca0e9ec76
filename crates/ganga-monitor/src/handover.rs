//! Handing units to their backend: building what the backend needs, submitting in
//! chunks of its `max_batch`, and recording each chunk's answers as soon as they come, so
//! that a process killed mid-way leaves every unit either recorded or findable.

use std::collections::HashMap;
use std::time::Duration;

use ganga_core::{
    Answers, BackendErrorKind, JobRef, JobSpec, Override, PerJob, Status, SubmitSpec, Submitted,
    UnitChange, UnitRun, UnitUpdate, after_find, after_submit,
};

use crate::context::Instance;
use crate::{Context, OpError, now};

/// One unit to hand over: it is `submitting` in run `run`.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) unit: JobRef,
    pub(crate) run: u32,
    pub(crate) overrides: Vec<Override>,
    /// The backend's id of its previous run, if it had one.
    pub(crate) previous_id: Option<String>,
}

/// How a submission went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitReport {
    pub job: ganga_core::JobId,
    /// Units the backend accepted.
    pub submitted: usize,
    /// Units the backend refused, and why; they are now `failed`.
    pub failed: Vec<(JobRef, String)>,
    /// Units whose fate the backend could not tell yet: they stay `submitting`, and the
    /// monitor asks the backend about them once this submission has ended.
    pub undecided: Vec<(JobRef, String)>,
}

/// Hands `units` of a job with spec `spec` to `instance`, chunk by chunk, recording
/// every answer. The caller holds the job's submission lease.
pub(crate) async fn hand_over(
    ctx: &Context,
    instance: &Instance,
    job: ganga_core::JobId,
    spec: &JobSpec,
    units: &[Outgoing],
) -> Result<SubmitReport, OpError> {
    let mut report = SubmitReport {
        job,
        ..SubmitReport::default()
    };
    let base = spec.without_splitter();
    for chunk in units.chunks(instance.max_batch()) {
        let specs: Vec<SubmitSpec> = chunk.iter().map(|u| submit_spec(ctx, &base, u)).collect();
        let answers = call(ctx.call_timeout, instance.backend.submit(&specs)).await;
        let (decided, undecided) = match answers {
            Ok(answers) => keyed_answers(chunk, answers),
            Err(CallError::Refused(message)) => (
                chunk
                    .iter()
                    .map(|u| (u.unit, Err(message.clone())))
                    .collect(),
                Vec::new(),
            ),
            Err(CallError::Uncertain(message)) => (
                Vec::new(),
                chunk.iter().map(|u| (u.unit, message.clone())).collect(),
            ),
        };
        let mut updates = Vec::with_capacity(chunk.len());
        let runs: HashMap<JobRef, u32> = chunk.iter().map(|u| (u.unit, u.run)).collect();
        let at = now();
        for (unit, answer) in &decided {
            match answer {
                Ok(_) => report.submitted += 1,
                Err(reason) => report.failed.push((*unit, about(*unit, reason))),
            }
            let answer = answer.clone().map_err(|r| about(*unit, &r));
            updates.push(update(*unit, runs[unit], after_submit(&answer, at)));
        }
        // Units the backend may or may not have taken: ask it, if it can tell.
        let mut still = Vec::new();
        if !undecided.is_empty() && instance.description.capabilities.find {
            let asked: Vec<UnitRun> = undecided
                .iter()
                .map(|(u, _)| UnitRun {
                    job: *u,
                    run: runs[u],
                    workspace: ctx.workspaces.dir(*u),
                })
                .collect();
            let found = call(ctx.call_timeout, instance.backend.find(&asked))
                .await
                .unwrap_or_default();
            let mut found: HashMap<JobRef, PerJob<Option<Submitted>>> = found.into_iter().collect();
            for (unit, why) in undecided {
                match found.remove(&unit) {
                    Some(Ok(f)) => {
                        match &f {
                            Some(_) => report.submitted += 1,
                            None => report.failed.push((unit, why.clone())),
                        }
                        let mut change = after_find(&f, at);
                        if f.is_none() {
                            change.reason = Some(format!("submission failed: {why}"));
                        }
                        updates.push(update(unit, runs[&unit], change));
                    }
                    _ => still.push((unit, why)),
                }
            }
        } else {
            still = undecided;
        }
        report.undecided.extend(still);
        let outcome = ctx.store.update_units(updates).await?;
        for (unit, why) in outcome.refused {
            tracing::warn!("job {unit}: its submission's answer was not recorded: {why}");
        }
    }
    Ok(report)
}

fn update(unit: JobRef, run: u32, change: UnitChange) -> UnitUpdate {
    UnitUpdate {
        unit,
        seen: Status::Submitting,
        run,
        change,
    }
}

/// What the backend needs to run one unit. Never copies the master's splitter.
fn submit_spec(ctx: &Context, base: &JobSpec, u: &Outgoing) -> SubmitSpec {
    let mut spec = base.clone();
    for o in &u.overrides {
        o.apply(&mut spec);
    }
    let ganga_core::Application::Executable(exe) = spec.application;
    SubmitSpec {
        job: u.unit,
        run: u.run,
        previous_id: u.previous_id.clone(),
        name: spec.name,
        exe: exe.exe,
        args: exe.args,
        env: exe.env,
        input_files: spec.input_files,
        output_patterns: spec.output_files,
        workspace: ctx.workspaces.dir(u.unit),
        output_dir: ctx.workspaces.output_dir(u.unit),
        options: spec.backend.options,
    }
}

/// Answers for the units of a chunk: those answered, and those the backend left out.
#[allow(clippy::type_complexity)]
fn keyed_answers(
    chunk: &[Outgoing],
    answers: Answers<Submitted>,
) -> (Vec<(JobRef, PerJob<Submitted>)>, Vec<(JobRef, String)>) {
    let mut by_unit: HashMap<JobRef, PerJob<Submitted>> = HashMap::with_capacity(answers.len());
    for (unit, answer) in answers {
        by_unit.entry(unit).or_insert(answer);
    }
    let mut decided = Vec::with_capacity(chunk.len());
    let mut undecided = Vec::new();
    for u in chunk {
        match by_unit.remove(&u.unit) {
            Some(answer) => decided.push((u.unit, answer)),
            None => undecided.push((u.unit, "the backend did not answer for it".to_owned())),
        }
    }
    (decided, undecided)
}

/// Why a backend call gave no answers.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// It refused the request as such: nothing was done.
    Refused(String),
    /// It failed or did not answer in time: something may have been done.
    Uncertain(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused(m) | CallError::Uncertain(m) => f.write_str(m),
        }
    }
}

/// A backend call under a timeout.
pub(crate) async fn call<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, ganga_core::BackendError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(match e.kind {
            BackendErrorKind::InvalidOptions
            | BackendErrorKind::Unsupported
            | BackendErrorKind::Unauthorized => CallError::Refused(e.to_string()),
            _ => CallError::Uncertain(e.to_string()),
        }),
        Err(_) => Err(CallError::Uncertain(format!(
            "the backend did not answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// A backend's message about one unit, without the unit's name if the backend put it
/// first (the caller names the unit itself).
pub(crate) fn about(job: JobRef, message: &str) -> String {
    message
        .strip_prefix(&format!("job {job}: "))
        .unwrap_or(message)
        .to_owned()
}
