//! What the monitor's observations mean, as pure functions: given a unit as the store
//! indexes it and what its backend said, which change to write and what to do next.
//!
//! The rules that keep jobs safe live here, in one place a test can drive with data:
//! a unit ends only on evidence of an end (an exit record, a kill); a query that failed,
//! a missing answer or `Unknown` changes nothing; a unit the backend no longer knows is
//! failed as lost only after a grace period, never completed.

use crate::{
    ActiveUnit, AutoResubmit, OutputsReport, PerJob, PollReport, RemoteStatus, Status,
    StatusCounts, Submitted, Timestamp, UnitChange,
};

/// What to do with a unit after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Nothing to write.
    Nothing,
    /// Write this change.
    Update(UnitChange),
    /// It ended at the backend: write `update` (if any; it is `completing` then), then
    /// collect its outputs and [`settle`] how it ended.
    Finalise {
        update: Option<UnitChange>,
        succeeded: bool,
        /// Why it ended as it did, per the backend: kept when its end is settled.
        reason: Option<String>,
    },
    /// The backend does not know it: once it has been absent for the grace period, it is
    /// [`lost`].
    Absent,
}

/// What a poll answer means for a unit.
pub fn after_poll(unit: &ActiveUnit, report: &PollReport, now: Timestamp) -> PollOutcome {
    use Status::{Completing, Running, Submitted, Submitting};
    let status = unit.status;
    match report.status {
        RemoteStatus::Unknown => PollOutcome::Nothing,
        RemoteStatus::Absent => PollOutcome::Absent,
        RemoteStatus::Queued => match status {
            Submitting => {
                PollOutcome::Update(with_facts(UnitChange::to(Submitted, now), unit, report))
            }
            _ => facts_only(unit, report),
        },
        RemoteStatus::Running => match status {
            Submitting | Submitted => PollOutcome::Update(with_facts(
                UnitChange::to(Running, report.started.unwrap_or(now)),
                unit,
                report,
            )),
            _ => facts_only(unit, report),
        },
        RemoteStatus::Succeeded | RemoteStatus::Failed => {
            let succeeded = report.status == RemoteStatus::Succeeded;
            let update = match status {
                Completing => None,
                _ => Some(with_facts(
                    UnitChange::to(Completing, report.ended.unwrap_or(now)),
                    unit,
                    report,
                )),
            };
            PollOutcome::Finalise {
                update,
                succeeded,
                reason: report.reason.clone(),
            }
        }
        RemoteStatus::Killed => match status {
            // Outputs are being collected from an end recorded before the kill.
            Completing => PollOutcome::Nothing,
            _ => {
                let mut change = with_facts(
                    UnitChange::to(Status::Killed, report.ended.unwrap_or(now)),
                    unit,
                    report,
                );
                change.reason.get_or_insert_with(|| "killed".to_owned());
                PollOutcome::Update(change)
            }
        },
    }
}

/// The backend's facts of a report, on top of `change`: its word for the state (when it
/// differs from what is recorded), exit code, reason and where it ran.
fn with_facts(mut change: UnitChange, unit: &ActiveUnit, report: &PollReport) -> UnitChange {
    if unit.native_state.as_deref() != Some(report.native_state.as_str()) {
        change.native_state = Some(report.native_state.clone());
    }
    change.exit_code = report.exit_code;
    change.reason = report.reason.clone();
    change.actual_ce = report.actual_ce.clone();
    change
}

/// A unit whose status stays: written only if the backend's word for its state changed
/// (`PENDING (Priority)` → `PENDING (Resources)`), so an unchanged unit costs no write.
fn facts_only(unit: &ActiveUnit, report: &PollReport) -> PollOutcome {
    if unit.native_state.as_deref() == Some(report.native_state.as_str()) {
        return PollOutcome::Nothing;
    }
    PollOutcome::Update(UnitChange {
        native_state: Some(report.native_state.clone()),
        reason: report.reason.clone(),
        actual_ce: report.actual_ce.clone(),
        ..UnitChange::default()
    })
}

/// A unit absent at its backend for longer than the grace period: failed, as lost.
pub fn lost(now: Timestamp, absent_for_secs: u64, detail: Option<&str>) -> UnitChange {
    let mut change = UnitChange::to(Status::Failed, now);
    change.native_state = Some("lost".to_owned());
    change.reason = Some(match detail {
        Some(d) => format!("lost: {d}"),
        None => format!(
            "lost: its backend has not known it for {absent_for_secs} s and holds no record of how it ended"
        ),
    });
    change
}

/// How an ended unit ends once its outputs were collected: `completed` if it succeeded
/// and every output pattern matched, else `failed` with the reasons. What was left out
/// of the collection (and why) is said in the reason either way.
pub fn settle(
    succeeded: bool,
    backend_reason: Option<&str>,
    outputs: &OutputsReport,
    now: Timestamp,
) -> UnitChange {
    let mut notes: Vec<String> = Vec::new();
    if !succeeded && let Some(r) = backend_reason {
        notes.push(r.to_owned());
    }
    if !outputs.unmatched.is_empty() {
        let patterns = outputs
            .unmatched
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ");
        notes.push(format!("output pattern {patterns} matched nothing"));
    }
    if !outputs.skipped.is_empty() {
        notes.push(format!(
            "left out of the outputs: {}",
            outputs.skipped.join("; ")
        ));
    }
    let status = if succeeded && outputs.unmatched.is_empty() {
        Status::Completed
    } else {
        Status::Failed
    };
    let mut change = UnitChange::to(status, now);
    change.outputs = Some(outputs.collected.clone());
    if !notes.is_empty() {
        change.reason = Some(notes.join("; "));
    }
    change
}

/// What a backend's answer to a submission means for a unit in `submitting`.
pub fn after_submit(answer: &PerJob<Submitted>, now: Timestamp) -> UnitChange {
    match answer {
        Ok(s) => {
            let mut change = UnitChange::to(Status::Submitted, now);
            change.id = Some(s.id.clone());
            change.actual_ce = s.actual_ce.clone();
            change
        }
        Err(reason) => {
            let mut change = UnitChange::to(Status::Failed, now);
            change.reason = Some(format!("submission failed: {reason}"));
            change
        }
    }
}

/// What a backend's answer to [`crate::Backend::find`] means for a unit left
/// `submitting` by a `ganga` that died mid-submission.
pub fn after_find(found: &Option<Submitted>, now: Timestamp) -> UnitChange {
    match found {
        Some(s) => after_submit(&Ok(s.clone()), now),
        None => {
            let mut change = UnitChange::to(Status::Failed, now);
            change.reason = Some(
                "the submission was interrupted before the backend accepted it; resubmit it"
                    .to_owned(),
            );
            change
        }
    }
}

/// Whether a failed unit of a job without subjobs is resubmitted automatically.
pub fn auto_resubmit_single(policy: &AutoResubmit, auto_resubmits: u32) -> bool {
    auto_resubmits < policy.max_attempts
}

/// Whether the failed subjobs of a split job are resubmitted automatically, given its
/// subjob counters: only once none is active (Ganga decides on the ended master), and
/// only if at most `max_failed_fraction` of those that ended (completed or failed)
/// failed. Which of them go is [`auto_resubmit_single`]'s rule, per subjob.
pub fn auto_resubmit_split(policy: &AutoResubmit, counts: &StatusCounts) -> bool {
    if policy.max_attempts == 0
        || Status::ALL
            .iter()
            .any(|s| s.is_active() && counts.get(*s) > 0)
    {
        return false;
    }
    let failed = f64::from(counts.get(Status::Failed));
    let ended = failed + f64::from(counts.get(Status::Completed));
    failed > 0.0 && failed / ended <= policy.max_failed_fraction
}

/// The change that starts an automatic resubmission of a failed unit.
pub fn auto_resubmission(now: Timestamp) -> UnitChange {
    UnitChange {
        new_run: true,
        ..UnitChange::to(Status::Submitting, now)
    }
}
