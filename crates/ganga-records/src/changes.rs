//! [`RecordChanges`]: a commit as it crosses the plugin boundary, every job put with the
//! records it was encoded into once, by the side that made it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use ganga_core::{Change, JobId, RunUpdate, Subjob};

use crate::JobRecord;

/// A commit's changes, and for every job they put the records a store keeps of it
/// ([`JobRecord`]: its state, spec and splitter), encoded once by the side that made the
/// changes. A store that keeps these records writes them as they came
/// ([`crate::RecordStore::commit_records`]) and reads its decisions (revisions, statuses,
/// backends, splitters) from the decoded changes beside them.
///
/// The two always describe the same jobs: records are made from the changes
/// ([`RecordChanges::new`]) or the changes decoded from the records (on the wire, where a
/// record that does not decode refuses the whole commit, naming its job).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChanges {
    changes: Vec<Change>,
    /// One per change: the records of a `PutJob`'s job, `None` for any other change.
    records: Vec<Option<JobRecord>>,
}

impl RecordChanges {
    /// `changes` with the records of every job they put.
    pub fn new(changes: Vec<Change>) -> RecordChanges {
        let records = changes
            .iter()
            .map(|c| match c {
                Change::PutJob(job) => Some(JobRecord::of(job)),
                _ => None,
            })
            .collect();
        RecordChanges { changes, records }
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The records of the job that `changes()[index]` puts (`None` if it puts none).
    pub fn job_record(&self, index: usize) -> Option<&JobRecord> {
        self.records.get(index).and_then(Option::as_ref)
    }

    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}

/// A change on the wire: a job put as its id and its three records; a run update as
/// [`crate::packed_run`], subjobs as a packed batch.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Out<'a> {
    PutJob(JobId, &'a ByteBuf, &'a ByteBuf, Option<&'a ByteBuf>),
    PutRun(#[serde(with = "crate::packed_run")] &'a RunUpdate),
    PutSubjobs {
        job: JobId,
        #[serde(with = "crate::packed_subjobs")]
        subjobs: &'a [Subjob],
    },
    RemoveJob {
        job: JobId,
        revision: u64,
    },
}

// Each is decoded and turned into a `Change` at once; boxing the run would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum In {
    PutJob(JobId, ByteBuf, ByteBuf, Option<ByteBuf>),
    PutRun(#[serde(with = "crate::packed_run")] RunUpdate),
    PutSubjobs {
        job: JobId,
        #[serde(with = "crate::packed_subjobs")]
        subjobs: Vec<Subjob>,
    },
    RemoveJob {
        job: JobId,
        revision: u64,
    },
}

impl Serialize for RecordChanges {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.changes.len());
        for (change, record) in self.changes.iter().zip(&self.records) {
            out.push(match (change, record) {
                (Change::PutJob(job), Some(r)) => {
                    Out::PutJob(job.id, &r.state, &r.spec, r.splitter.as_ref())
                }
                (Change::PutJob(job), None) => {
                    // Invariant of the type: `new` and `deserialize` give every put its
                    // records; refused rather than sent without them.
                    return Err(serde::ser::Error::custom(format!(
                        "job {}: put without its records",
                        job.id
                    )));
                }
                (Change::PutRun(update), _) => Out::PutRun(update),
                (Change::PutSubjobs { job, subjobs }, _) => Out::PutSubjobs { job: *job, subjobs },
                (Change::RemoveJob { job, revision }, _) => Out::RemoveJob {
                    job: *job,
                    revision: *revision,
                },
            });
        }
        s.collect_seq(out)
    }
}

impl<'de> Deserialize<'de> for RecordChanges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RecordChanges, D::Error> {
        let sent = Vec::<In>::deserialize(d)?;
        let mut changes = Vec::with_capacity(sent.len());
        let mut records = Vec::with_capacity(sent.len());
        for change in sent {
            let (change, record) = match change {
                In::PutJob(id, state, spec, splitter) => {
                    let record = JobRecord {
                        state,
                        spec,
                        splitter,
                    };
                    let job = record.decode(id).map_err(|e| {
                        D::Error::custom(format!("job {id}: the records sent do not decode: {e}"))
                    })?;
                    // A store writes the splitter record as it came: one that decodes as
                    // "none" would be a record a job without a splitter never has.
                    if record.splitter.is_some() && job.spec.splitter.is_none() {
                        return Err(D::Error::custom(format!(
                            "job {id}: a splitter record was sent that says it has none"
                        )));
                    }
                    (Change::PutJob(job), Some(record))
                }
                In::PutRun(update) => (Change::PutRun(update), None),
                In::PutSubjobs { job, subjobs } => (Change::PutSubjobs { job, subjobs }, None),
                In::RemoveJob { job, revision } => (Change::RemoveJob { job, revision }, None),
            };
            changes.push(change);
            records.push(record);
        }
        Ok(RecordChanges { changes, records })
    }
}
