//! Units (what a backend runs: a job without subjobs, or a subjob) and the changes the
//! monitor makes to them, applied through the status rules.
//!
//! A [`UnitUpdate`] names the status and run its writer saw; it is applied only if the
//! unit is still there. That makes it safe to apply inside a store's write transaction
//! without having read the whole job first, and makes two processes that change the same
//! unit at once see each other: the second update is refused, never merged blindly.

use serde::{Deserialize, Serialize};

use crate::{Job, JobRef, RunState, Status, Subjob, Timestamp};

/// A change to one unit, made from what its backend (or the monitor) found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitUpdate {
    pub unit: JobRef,
    /// The status the writer saw; the update is refused if the unit has another.
    pub seen: Status,
    /// The run (submit count) the writer saw; the update is refused if it has another.
    pub run: u32,
    pub change: UnitChange,
}

/// What changes in a unit. Fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Every field may be left out: it reads as its default.
#[serde(default)]
pub struct UnitChange {
    /// The new status, and when it was entered.
    pub status: Option<(Status, Timestamp)>,
    /// Starts a new run first (an automatic resubmission): the submit count goes up, the
    /// backend facts and collected outputs of the last run are cleared, and the unit
    /// counts one more automatic resubmission. `status` must then be `submitting`.
    pub new_run: bool,
    pub id: Option<String>,
    pub native_state: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub actual_ce: Option<String>,
    pub outputs: Option<Vec<String>>,
}

impl UnitChange {
    /// A change of status alone.
    pub fn to(status: Status, at: Timestamp) -> UnitChange {
        UnitChange {
            status: Some((status, at)),
            ..UnitChange::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == UnitChange::default()
    }
}

/// Why a [`UnitUpdate`] was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum UnitRefusal {
    /// The unit is no longer in the status or run the writer saw: someone else changed
    /// it meanwhile. The writer should look again.
    #[error("it changed meanwhile (now {status}, run {run})")]
    Changed { status: Status, run: u32 },
    #[error("it cannot go from {from} to {to}")]
    Illegal { from: Status, to: Status },
    #[error("it no longer exists")]
    NoSuchUnit,
}

impl Job {
    /// Applies an update to this job (`subjob: None`, for a job without subjobs) or to
    /// one of its subjobs, keeping the master's counters and derived status. The job's
    /// revision is not touched: the store bumps it when it writes.
    pub fn apply_unit_update(
        &mut self,
        subjob: Option<&mut Subjob>,
        update: &UnitUpdate,
    ) -> Result<(), UnitRefusal> {
        match subjob {
            None => {
                if self.is_split() || update.unit != self.job_ref() {
                    return Err(UnitRefusal::NoSuchUnit);
                }
                let from = self.run.status;
                apply(&mut self.run, update)?;
                debug_assert!(from == self.run.status || !self.is_split());
                Ok(())
            }
            Some(sj) => {
                if update.unit != JobRef::subjob(self.id, sj.index) {
                    return Err(UnitRefusal::NoSuchUnit);
                }
                let from = sj.run.status;
                apply(&mut sj.run, update)?;
                let to = sj.run.status;
                if from != to {
                    self.subjobs.shift(from, to);
                    let at = update.change.status.map_or(Timestamp(0), |(_, at)| at);
                    self.derive_status(at);
                }
                Ok(())
            }
        }
    }
}

/// Applies an update to one run state: checks what the writer saw, then the status
/// change (through `submitted` when a unit still `submitting` is found further on), then
/// the facts.
fn apply(run: &mut RunState, update: &UnitUpdate) -> Result<(), UnitRefusal> {
    if run.status != update.seen || run.submit_count != update.run {
        return Err(UnitRefusal::Changed {
            status: run.status,
            run: run.submit_count,
        });
    }
    let c = &update.change;
    let mut next = run.clone();
    if c.new_run {
        next.submit_count += 1;
        next.auto_resubmits += 1;
        next.backend = crate::BackendInfo::default();
        next.outputs.clear();
    }
    if let Some((to, at)) = c.status {
        for step in path(next.status, to).ok_or(UnitRefusal::Illegal {
            from: next.status,
            to,
        })? {
            next.status = step;
            next.times.set(step, at);
        }
    }
    if c.id.is_some() {
        next.backend.id = c.id.clone();
    }
    if c.native_state.is_some() {
        next.backend.native_state = c.native_state.clone();
    }
    if c.exit_code.is_some() {
        next.backend.exit_code = c.exit_code;
    }
    if c.reason.is_some() {
        next.backend.reason = c.reason.clone();
    }
    if c.actual_ce.is_some() {
        next.backend.actual_ce = c.actual_ce.clone();
    }
    if let Some(outputs) = &c.outputs {
        next.outputs = outputs.clone();
    }
    *run = next;
    Ok(())
}

/// The statuses a unit passes through from `from` to `to`: directly where the table
/// allows it, else, from `submitting`, through `submitted` (a unit whose submission was
/// being recorded when the backend already ran it on). `None` if neither is allowed.
fn path(from: Status, to: Status) -> Option<Vec<Status>> {
    if from == to {
        Some(Vec::new())
    } else if from.can_become(to) {
        Some(vec![to])
    } else if from == Status::Submitting && Status::Submitted.can_become(to) {
        Some(vec![Status::Submitted, to])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_table() {
        assert_eq!(
            path(Status::Submitting, Status::Killed),
            Some(vec![Status::Submitted, Status::Killed])
        );
        assert_eq!(
            path(Status::Running, Status::Completing),
            Some(vec![Status::Completing])
        );
        assert_eq!(path(Status::Completed, Status::Running), None);
        assert_eq!(path(Status::Killed, Status::Running), None);
        assert_eq!(path(Status::Failed, Status::Failed), Some(Vec::new()));
    }
}
