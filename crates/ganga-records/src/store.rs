//! [`RecordStore`]: a store that hands its records over as they are.

use std::ops::Range;

use ganga_core::{Committed, JobId, JobRef, Store, StoreError, Subjob, SubjobIndex};

use crate::{JobRecord, RecordChanges, SubjobBatch};

/// A [`Store`] that also answers with compact records: what crosses the plugin boundary
/// and what the cache holds. A store that keeps these records on disk hands them over as
/// they are, so that a job is decoded once, by the caller, and a page of subjobs only as
/// far as the caller reads it. The defaults encode what [`Store`] answers, for a store
/// that keeps something else.
pub trait RecordStore: Store {
    /// The same commit as [`Store::commit`] of `changes.changes()`, given the records of
    /// every job put as well: a store that keeps these records writes them as they came
    /// (a job is then encoded once, by the caller, across the plugin boundary too).
    fn commit_records(&self, changes: &RecordChanges) -> Result<Vec<Committed>, StoreError> {
        self.commit(changes.changes())
    }

    /// The same job as [`Store::job`], as its records.
    fn job_record(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.job(id)?.map(|job| JobRecord::of(&job)))
    }

    /// The same subjobs as [`Store::subjobs`], packed.
    fn subjob_batch(
        &self,
        job: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<SubjobBatch, StoreError> {
        Ok(SubjobBatch::pack(&self.subjobs(job, range)?))
    }
}

impl SubjobBatch {
    /// Every subjob of this batch of `job`'s, decoded; a record that does not decode is
    /// reported as that subjob's.
    pub fn subjobs_of(&self, job: JobId) -> Result<Vec<Subjob>, StoreError> {
        self.unpack().map_err(|(index, e)| StoreError::Corrupt {
            job: JobRef::subjob(job, index),
            detail: e.to_string(),
        })
    }
}
