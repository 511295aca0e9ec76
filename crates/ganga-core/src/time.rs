//! Points in time, as the job model keeps them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Status;

/// Milliseconds since the Unix epoch, UTC. The core never reads the clock: callers pass
/// `now` in, so every decision is reproducible in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn from_secs(s: i64) -> Timestamp {
        Timestamp(s.saturating_mul(1000))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// When a job last entered each status (Ganga's `JobTime.timestamps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusTimes(BTreeMap<Status, Timestamp>);

impl StatusTimes {
    pub fn get(&self, status: Status) -> Option<Timestamp> {
        self.0.get(&status).copied()
    }

    pub fn set(&mut self, status: Status, at: Timestamp) {
        self.0.insert(status, at);
    }

    pub fn clear(&mut self, status: Status) {
        self.0.remove(&status);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Status, Timestamp)> + '_ {
        self.0.iter().map(|(&s, &t)| (s, t))
    }

    /// The latest time recorded for any status.
    pub fn latest(&self) -> Option<Timestamp> {
        self.0.values().copied().max()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Status, Timestamp)> for StatusTimes {
    fn from_iter<I: IntoIterator<Item = (Status, Timestamp)>>(iter: I) -> Self {
        StatusTimes(iter.into_iter().collect())
    }
}
