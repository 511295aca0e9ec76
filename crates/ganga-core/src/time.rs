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
///
/// Kept inline (a bit set and one slot per status) rather than in a map: a million subjobs
/// in memory each hold one, and a map would cost each an allocation.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusTimes {
    set: u16,
    at: [i64; Status::ALL.len()],
}

impl StatusTimes {
    pub fn get(&self, status: Status) -> Option<Timestamp> {
        let i = status.index();
        (self.set & (1 << i) != 0).then(|| Timestamp(self.at[i]))
    }

    pub fn set(&mut self, status: Status, at: Timestamp) {
        let i = status.index();
        self.set |= 1 << i;
        self.at[i] = at.as_millis();
    }

    pub fn clear(&mut self, status: Status) {
        let i = status.index();
        self.set &= !(1 << i);
        self.at[i] = 0;
    }

    /// The times recorded, in status order.
    pub fn iter(&self) -> impl Iterator<Item = (Status, Timestamp)> + '_ {
        Status::ALL
            .iter()
            .filter_map(|&s| self.get(s).map(|t| (s, t)))
    }

    /// The latest time recorded for any status.
    pub fn latest(&self) -> Option<Timestamp> {
        self.iter().map(|(_, t)| t).max()
    }

    pub fn is_empty(&self) -> bool {
        self.set == 0
    }

    pub fn len(&self) -> usize {
        self.set.count_ones() as usize
    }
}

impl fmt::Debug for StatusTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Status, Timestamp)> for StatusTimes {
    fn from_iter<I: IntoIterator<Item = (Status, Timestamp)>>(iter: I) -> Self {
        let mut times = StatusTimes::default();
        for (s, t) in iter {
            times.set(s, t);
        }
        times
    }
}

/// As a map from status to time, as it always was on the wire and in JSON.
impl Serialize for StatusTimes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for StatusTimes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<Status, Timestamp>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
