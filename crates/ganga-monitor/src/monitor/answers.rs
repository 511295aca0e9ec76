//! What a backend's answers mean: polls and lookups of cut-off submissions, turned into
//! unit updates by the core's rules.

use std::collections::HashMap;
use std::time::Instant;

use ganga_core::{
    ActiveUnit, Answers, JobRef, PerJob, PollOutcome, PollReport, Status, Submitted, UnitChange,
    UnitUpdate, after_find, after_poll, lost,
};

use super::{CycleReport, Ended, Loop};
use crate::handover::CallError;
use crate::now;

impl Loop<'_> {
    /// What one poll's answers mean; the changes go to `updates`, ended units to `ended`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn polled(
        &mut self,
        backend: &str,
        units: &[ActiveUnit],
        answers: Answers<PollReport>,
        failures: &[CallError],
        full: bool,
        updates: &mut Vec<UnitUpdate>,
        ended: &mut Vec<(String, Ended, bool)>,
    ) -> CycleReport {
        let at = now();
        let instant = Instant::now();
        let grace = self.settings().lost_grace;
        let mut report = CycleReport {
            backend: backend.to_owned(),
            polled: units.len(),
            ..CycleReport::default()
        };
        let answered = answers.len();
        let mut answers = Keyed::new(answers);
        let before = updates.len();
        let mut ambiguous = 0usize;
        for u in units {
            let answer = match answers.take(&u.unit) {
                None => continue,
                Some(None) => {
                    ambiguous += 1;
                    continue;
                }
                Some(Some(answer)) => answer,
            };
            let r = match answer {
                Ok(r) => r,
                Err(e) => {
                    report
                        .problems
                        .push(format!("job {}: backend `{backend}`: {e}", u.unit));
                    continue;
                }
            };
            // (Hashing every unit of a big poll against an empty table costs more than
            // deciding on it.)
            if r.status != ganga_core::RemoteStatus::Absent && !self.absent_since.is_empty() {
                self.absent_since.remove(&(u.unit, u.run));
            }
            let update = |change: UnitChange| UnitUpdate {
                unit: u.unit,
                seen: u.status,
                run: u.run,
                change,
            };
            match after_poll(u, &r, at) {
                PollOutcome::Nothing => {}
                PollOutcome::Update(change) => updates.push(update(change)),
                PollOutcome::Finalise {
                    update: change,
                    succeeded,
                    reason,
                } => {
                    let Some(id) = u.id.clone() else { continue };
                    let e = Ended {
                        unit: u.unit,
                        run: u.run,
                        id,
                        succeeded,
                        reason,
                    };
                    match change {
                        Some(c) => {
                            updates.push(update(c));
                            ended.push((backend.to_owned(), e, true));
                        }
                        None if !self.finalising.contains(&(u.unit, u.run))
                            && !self.settled.contains_key(&(u.unit, u.run)) =>
                        {
                            ended.push((backend.to_owned(), e, false));
                        }
                        None => {}
                    }
                }
                PollOutcome::Absent => {
                    let first = *self.absent_since.entry((u.unit, u.run)).or_insert(instant);
                    let absent_for = instant.saturating_duration_since(first);
                    if absent_for >= grace {
                        self.absent_since.remove(&(u.unit, u.run));
                        updates.push(update(lost(at, absent_for.as_secs(), None)));
                    }
                }
            }
        }
        let changes = &updates[before..];
        report.changed = changes.iter().filter(|u| u.change.status.is_some()).count();
        report.finished = changes
            .iter()
            .filter(|u| {
                matches!(
                    u.change.status,
                    Some((Status::Failed | Status::Killed | Status::Completed, _))
                )
            })
            .count();
        if ambiguous > 0 {
            report.problems.push(format!(
                "backend `{backend}` answered twice, differently, for {ambiguous} units; they are asked again later"
            ));
        }
        if answered < units.len() && failures.is_empty() {
            report.problems.push(format!(
                "backend `{backend}` answered for {answered} of {} units; the others are asked again later",
                units.len()
            ));
        }
        for f in failures {
            report.problems.push(format!(
                "backend `{backend}`: a poll failed (its units stay as they are): {f}"
            ));
        }
        if full {
            self.polls += 1;
            self.last_poll = Some(at);
            let jitter = self.next_jitter();
            if let Some(b) = self.backends.get_mut(backend) {
                b.polling = false;
                b.last_poll = Some(at);
                if let Some(pace) = &mut b.pace {
                    let wait = if !failures.is_empty() {
                        b.last_error = failures.last().map(ToString::to_string);
                        pace.failed(jitter)
                    } else if report.changed > 0 {
                        b.last_error = None;
                        pace.changed()
                    } else {
                        b.last_error = None;
                        pace.quiet()
                    };
                    b.next_due = Instant::now() + wait;
                }
            }
        }
        report
    }

    /// Polls at once the units a watching backend named.
    pub(super) async fn poll_changed(&mut self, backend: &str, units: Vec<JobRef>) {
        let read = self.ctx().store.units_of(backend, units).await;
        match read {
            Ok(units) => {
                let units: Vec<ActiveUnit> = units
                    .into_iter()
                    .filter(|u| u.id.is_some() && !self.finalising.contains(&(u.unit, u.run)))
                    .collect();
                if !units.is_empty() {
                    self.spawn_poll(backend, units, false);
                }
            }
            Err(e) => tracing::warn!("cannot read the units backend `{backend}` named: {e}"),
        }
    }

    /// Records what the backend found of interrupted submissions.
    pub(super) fn found(
        &mut self,
        units: Vec<ActiveUnit>,
        result: Result<Answers<Option<Submitted>>, CallError>,
        updates: &mut Vec<UnitUpdate>,
    ) {
        let at = now();
        let update = |u: &ActiveUnit, change| UnitUpdate {
            unit: u.unit,
            seen: Status::Submitting,
            run: u.run,
            change,
        };
        match result {
            Ok(answers) => {
                let answers: HashMap<JobRef, PerJob<Option<Submitted>>> =
                    answers.into_iter().collect();
                for u in &units {
                    match answers.get(&u.unit) {
                        Some(Ok(found)) => updates.push(update(u, after_find(found, at))),
                        Some(Err(e)) => {
                            tracing::warn!(
                                "job {}: cannot tell whether it was submitted: {e}",
                                u.unit
                            )
                        }
                        None => {}
                    }
                }
            }
            Err(CallError::Refused(why)) => {
                for u in &units {
                    let mut change = UnitChange::to(Status::Failed, at);
                    change.reason = Some(format!(
                        "the submission was interrupted, and it cannot be told whether it started ({why}); resubmit it"
                    ));
                    updates.push(update(u, change));
                }
            }
            Err(CallError::Uncertain(why)) => {
                tracing::warn!(
                    "cannot tell what became of {} interrupted submissions (asked again later): {why}",
                    units.len()
                );
            }
        }
    }
}

/// A backend's answers by unit, each taken at most once. A unit answered twice,
/// differently, has no answer it can be trusted with (it is asked again later); the same
/// answer twice is one answer. Answers for units not asked about are never looked at.
pub(super) struct Keyed<T> {
    answers: Vec<Option<PerJob<T>>>,
    /// Where each unit's answer is in `answers`; `None`: answered twice, differently.
    /// Positions rather than the answers themselves: a poll report is large, and moving
    /// 100,000 of them into and out of a table cost more than deciding on them.
    at: HashMap<JobRef, Option<usize>>,
}

impl<T: PartialEq> Keyed<T> {
    pub(super) fn new(answers: Answers<T>) -> Keyed<T> {
        let mut at: HashMap<JobRef, Option<usize>> = HashMap::with_capacity(answers.len());
        let mut kept: Vec<Option<PerJob<T>>> = Vec::with_capacity(answers.len());
        for (unit, answer) in answers {
            match at.get_mut(&unit) {
                None => {
                    at.insert(unit, Some(kept.len()));
                    kept.push(Some(answer));
                }
                Some(seen) => {
                    let same =
                        seen.and_then(|i| kept.get(i)).and_then(Option::as_ref) == Some(&answer);
                    if !same {
                        *seen = None;
                    }
                }
            }
        }
        Keyed { answers: kept, at }
    }

    /// The unit's answer: `None` if it has none, `Some(None)` if it had two.
    pub(super) fn take(&mut self, unit: &JobRef) -> Option<Option<PerJob<T>>> {
        let at = self.at.remove(unit)?;
        Some(at.and_then(|i| self.answers.get_mut(i).and_then(Option::take)))
    }
}
