//! Ganga's status set, its transition table and the derivation of a master's status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of a job or subjob, with Ganga's names and meaning.
///
/// The discriminants are stable: the store and the status counters index by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Status {
    New = 0,
    Submitting = 1,
    Submitted = 2,
    Running = 3,
    Completing = 4,
    Completed = 5,
    Failed = 6,
    Killed = 7,
    CompletedFrozen = 8,
    FailedFrozen = 9,
    Incomplete = 10,
    Unknown = 11,
    Removed = 12,
    Template = 13,
}

impl Status {
    /// Every status, in discriminant order.
    pub const ALL: [Status; 14] = [
        Status::New,
        Status::Submitting,
        Status::Submitted,
        Status::Running,
        Status::Completing,
        Status::Completed,
        Status::Failed,
        Status::Killed,
        Status::CompletedFrozen,
        Status::FailedFrozen,
        Status::Incomplete,
        Status::Unknown,
        Status::Removed,
        Status::Template,
    ];

    /// The order in which a master takes its status from its subjobs (Ganga's
    /// `updateMasterJobStatus`): the first status any subjob has wins.
    pub const MASTER_PRIORITY: [Status; 7] = [
        Status::Submitting,
        Status::Submitted,
        Status::Running,
        Status::Completing,
        Status::Failed,
        Status::Killed,
        Status::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Submitting => "submitting",
            Status::Submitted => "submitted",
            Status::Running => "running",
            Status::Completing => "completing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Killed => "killed",
            Status::CompletedFrozen => "completed_frozen",
            Status::FailedFrozen => "failed_frozen",
            Status::Incomplete => "incomplete",
            Status::Unknown => "unknown",
            Status::Removed => "removed",
            Status::Template => "template",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Status> {
        Status::ALL.get(i).copied()
    }

    /// A job in one of these states has work going on at a backend, so the monitor
    /// must look at it. (`unknown` is not: in Ganga's table it only leads to `removed`,
    /// so a backend that cannot answer leaves the status as it was instead.)
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Submitting | Status::Submitted | Status::Running | Status::Completing
        )
    }

    /// Nothing more will happen to a job in one of these states unless a user acts.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed
                | Status::Failed
                | Status::Killed
                | Status::CompletedFrozen
                | Status::FailedFrozen
                | Status::Removed
        )
    }

    /// The statuses this one may move to, Ganga's `Job.status_graph` (Job.py:671).
    /// Staying in the same status is always allowed and is not listed.
    pub fn successors(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Submitting, Removed],
            Submitting => &[New, Submitted, Unknown, Failed],
            Submitted => &[
                Running, Killed, Unknown, Failed, Completing, Completed, Submitting,
            ],
            Running => &[
                Completing, Completed, Failed, Killed, Unknown, Submitting, Submitted,
            ],
            Completing => &[Completed, Failed, Unknown, Submitting, Submitted],
            Killed => &[Removed, Failed, Submitting, Submitted, FailedFrozen],
            Failed => &[Removed, Submitting, Completed, Submitted, FailedFrozen],
            Completed => &[Removed, Failed, Submitting, Submitted, CompletedFrozen],
            CompletedFrozen => &[Completed],
            FailedFrozen => &[Failed],
            Incomplete => &[Removed],
            Unknown => &[Removed],
            Template => &[Removed],
            Removed => &[],
        }
    }

    /// Whether Ganga's transition table allows `self -> to`.
    pub fn can_become(self, to: Status) -> bool {
        self == to || self.successors().contains(&to)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A status name that is not one of Ganga's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status `{0}` (known: new, submitting, submitted, running, completing, completed, failed, killed, completed_frozen, failed_frozen, incomplete, unknown, removed, template)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// How many subjobs are in each status. A master keeps these counters so that its own
/// status and the `jobs` listing never need its subjobs loaded (Ganga recounts every
/// subjob on every change, which makes submission quadratic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts([u32; 14]);

impl StatusCounts {
    pub fn get(&self, status: Status) -> u32 {
        self.0[status.index()]
    }

    pub fn add(&mut self, status: Status, n: u32) {
        let slot = &mut self.0[status.index()];
        *slot = slot.saturating_add(n);
    }

    pub fn remove(&mut self, status: Status, n: u32) {
        let slot = &mut self.0[status.index()];
        *slot = slot.saturating_sub(n);
    }

    /// Moves one subjob from `from` to `to`.
    pub fn shift(&mut self, from: Status, to: Status) {
        if from != to {
            self.remove(from, 1);
            self.add(to, 1);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The non-zero counters, in status order.
    pub fn iter(&self) -> impl Iterator<Item = (Status, u32)> + '_ {
        Status::ALL
            .iter()
            .map(|&s| (s, self.get(s)))
            .filter(|&(_, n)| n > 0)
    }

    /// The master's status as Ganga derives it: the first status of
    /// [`Status::MASTER_PRIORITY`] that any subjob has. `None` when no subjob is in any
    /// of those (for example all are `new` or frozen): the master then keeps its status.
    pub fn master_status(&self) -> Option<Status> {
        Status::MASTER_PRIORITY
            .iter()
            .copied()
            .find(|&s| self.get(s) > 0)
    }

    /// Ganga's `returnSubjobStatuses` display: running/failed+killed/completing/completed.
    pub fn display_short(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.get(Status::Running),
            self.get(Status::Failed) + self.get(Status::Killed),
            self.get(Status::Completing),
            self.get(Status::Completed)
        )
    }
}

impl FromIterator<Status> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = Status>>(iter: I) -> Self {
        let mut counts = StatusCounts::default();
        for s in iter {
            counts.add(s, 1);
        }
        counts
    }
}
