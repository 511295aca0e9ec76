//! `Store::commit`: checking a batch of changes (shape, then revisions) and applying it,
//! with the summaries, the active index and the subjobs' dictionaries kept in step, all
//! in one write transaction.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ganga_core::compact::{Dictionary, encode_subjob};
use ganga_core::{
    Change, Committed, Job, JobId, JobRef, JobSummary, Status, StoreError, Subjob, Timestamp,
};
use heed::{RoTxn, RwTxn};

use crate::codec::{decode_dictionary, decode_job, encode_job, encode_summary};
use crate::env::Tables;
use crate::error::{Doing, Failure};
use crate::keys;
use crate::ordered::OrderedPuts;

/// What is stored of a job a change touches.
enum Stored {
    Absent,
    Readable(Box<Job>),
    /// The record exists but does not decode.
    Unreadable(String),
}

fn stored_job(tables: &Tables, txn: &RoTxn, id: JobId) -> Result<Stored, Failure> {
    Ok(
        match tables
            .jobs
            .get(txn, &keys::job(id))
            .doing("reading table jobs")?
        {
            None => Stored::Absent,
            Some(bytes) => match decode_job(id, bytes) {
                Ok(job) => Stored::Readable(Box::new(job)),
                Err(detail) => Stored::Unreadable(detail),
            },
        },
    )
}

/// The tables a commit appends to, each remembering its last key.
struct Puts {
    jobs: OrderedPuts,
    summaries: OrderedPuts,
    subjobs: OrderedPuts,
    dicts: OrderedPuts,
}

impl Puts {
    fn new(tables: &Tables) -> Puts {
        Puts {
            jobs: OrderedPuts::new(tables.jobs),
            summaries: OrderedPuts::new(tables.summaries),
            subjobs: OrderedPuts::new(tables.subjobs),
            dicts: OrderedPuts::new(tables.dicts),
        }
    }

    /// After a removal: the last key of any table may have gone.
    fn forget_last(&mut self) {
        self.jobs.forget_last();
        self.summaries.forget_last();
        self.subjobs.forget_last();
        self.dicts.forget_last();
    }
}

/// A job's dictionary while a commit encodes its subjobs.
struct OpenDictionary {
    dict: Dictionary,
    /// How many strings the stored dictionary has; `None` if none is stored yet.
    stored_len: Option<usize>,
}

/// Applies `changes` in `txn`. On any error the caller aborts the transaction, so a
/// refused commit writes nothing.
pub(crate) fn apply(
    tables: &Tables,
    txn: &mut RwTxn,
    changes: &[Change],
) -> Result<Vec<Committed>, Failure> {
    check_shape(tables, txn, changes)?;
    let stored = check_revisions(tables, txn, changes)?;

    let mut puts = Puts::new(tables);
    let mut dicts: BTreeMap<JobId, OpenDictionary> = BTreeMap::new();
    let mut committed = Vec::new();
    for (change, stored) in changes.iter().zip(stored) {
        match change {
            Change::PutJob(job) => committed.push(put_job(tables, txn, &mut puts, job, stored)?),
            Change::PutSubjobs { job, subjobs } => {
                put_subjobs(tables, txn, &mut puts, &mut dicts, changes, *job, subjobs)?;
            }
            Change::RemoveJob { job, .. } => {
                remove_job(tables, txn, *job, stored)?;
                puts.forget_last();
            }
        }
    }
    // A dictionary is written once per commit, after all its job's subjobs, and only if
    // it is new or grew. It only ever grows, so the records already stored stay valid.
    for (id, open) in dicts {
        if open.stored_len != Some(open.dict.len()) {
            puts.dicts
                .put(txn, &keys::job(id), &open.dict.encode(), || {
                    format!("writing the dictionary of job {id} to table dicts")
                })?;
        }
    }
    Ok(committed)
}

/// Encodes and writes subjobs against their job's dictionary, which is read (or made)
/// once per commit and grows as new strings come.
fn put_subjobs(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    dicts: &mut BTreeMap<JobId, OpenDictionary>,
    changes: &[Change],
    job: JobId,
    subjobs: &[Subjob],
) -> Result<(), Failure> {
    if subjobs.is_empty() {
        return Ok(());
    }
    let open = match dicts.entry(job) {
        Entry::Occupied(open) => open.into_mut(),
        Entry::Vacant(vacant) => {
            vacant.insert(open_dictionary(tables, txn, changes, job, subjobs)?)
        }
    };
    let mut record = Vec::with_capacity(64);
    for subjob in subjobs {
        record.clear();
        encode_subjob(subjob, &mut open.dict, None, &mut record);
        puts.subjobs
            .put(txn, &keys::subjob(job, subjob.index), &record, || {
                format!(
                    "writing subjob {} to table subjobs",
                    JobRef::subjob(job, subjob.index)
                )
            })?;
    }
    Ok(())
}

/// The stored dictionary of `job`, or a new one.
fn open_dictionary(
    tables: &Tables,
    txn: &RoTxn,
    changes: &[Change],
    job: JobId,
    subjobs: &[Subjob],
) -> Result<OpenDictionary, Failure> {
    Ok(
        match tables
            .dicts
            .get(txn, &keys::job(job))
            .doing("reading table dicts")?
        {
            Some(bytes) => {
                let dict = decode_dictionary(bytes).map_err(|detail| StoreError::Corrupt {
                    job: JobRef::job(job),
                    detail: format!(
                        "table dicts: {detail}; the subjobs of job {job} cannot be written \
                         against it, remove the job instead"
                    ),
                })?;
                OpenDictionary {
                    stored_len: Some(dict.len()),
                    dict,
                }
            }
            None => OpenDictionary {
                dict: Dictionary::new(dictionary_base(changes, job, subjobs)),
                stored_len: None,
            },
        },
    )
}

/// The base time of a new dictionary: the master's `new` time (the commit puts the master
/// too, see `check_shape`), or else the earliest time of the subjobs. Every time of the
/// job's subjobs is stored as a delta from it, and it never changes afterwards.
fn dictionary_base(changes: &[Change], job: JobId, subjobs: &[Subjob]) -> Timestamp {
    let master_created = changes.iter().find_map(|c| match c {
        Change::PutJob(j) if j.id == job => j.run.times.get(Status::New),
        _ => None,
    });
    master_created
        .or_else(|| {
            subjobs
                .iter()
                .flat_map(|s| s.run.times.iter().map(|(_, t)| t))
                .min()
        })
        .unwrap_or(Timestamp(0))
}

/// Refuses requests that are wrong whatever is stored.
fn check_shape(tables: &Tables, txn: &RoTxn, changes: &[Change]) -> Result<(), Failure> {
    let next_id = tables.next_job_id(txn)?;
    let mut put = BTreeSet::new();
    let mut removed = BTreeSet::new();
    for change in changes {
        match change {
            Change::PutJob(job) => {
                if job.id >= next_id {
                    return Err(invalid(format!(
                        "job {} was put but was never reserved (the next id to reserve is \
                         {next_id}); reserve ids with reserve_ids first",
                        job.id
                    )));
                }
                if let Some(problem) = keys::backend_name_problem(&job.spec.backend.kind) {
                    return Err(invalid(format!("job {}: {problem}", job.id)));
                }
                if job.revision == u64::MAX {
                    return Err(invalid(format!(
                        "job {} is at the last possible revision",
                        job.id
                    )));
                }
                if removed.contains(&job.id) || !put.insert(job.id) {
                    return Err(invalid(format!(
                        "job {} is changed twice in one commit; put it once, in its final \
                         state",
                        job.id
                    )));
                }
            }
            Change::RemoveJob { job, .. } => {
                if put.contains(job) || !removed.insert(*job) {
                    return Err(invalid(format!(
                        "job {job} is changed twice in one commit (removed and put, or \
                         removed twice)"
                    )));
                }
            }
            Change::PutSubjobs { .. } => {}
        }
    }
    for change in changes {
        if let Change::PutSubjobs { job, .. } = change
            && !put.contains(job)
        {
            return Err(invalid(format!(
                "subjobs of job {job} were put without their master: a commit that puts \
                 subjobs must also put job {job}, whose status counters describe them"
            )));
        }
    }
    Ok(())
}

fn invalid(message: String) -> Failure {
    StoreError::Invalid(message).into()
}

/// Compares every revision with the stored one and returns what is stored of each
/// changed job (in the order of `changes`). Every conflict is listed, not just the first.
fn check_revisions(
    tables: &Tables,
    txn: &RoTxn,
    changes: &[Change],
) -> Result<Vec<Stored>, Failure> {
    let mut conflicts = Vec::new();
    let mut stored_jobs = Vec::with_capacity(changes.len());
    for change in changes {
        let stored = match change {
            Change::PutJob(job) => {
                let stored = stored_job(tables, txn, job.id)?;
                match &stored {
                    Stored::Absent if job.revision != 0 => conflicts.push(job.id),
                    Stored::Readable(old) if old.revision != job.revision => {
                        conflicts.push(job.id);
                    }
                    // Nobody could have read this record, so its revision is unknown: the
                    // write would blindly replace whatever it was.
                    Stored::Unreadable(detail) => {
                        return Err(StoreError::Corrupt {
                            job: JobRef::job(job.id),
                            detail: format!(
                                "{detail}; the stored record cannot be overwritten safely, \
                                 remove the job instead"
                            ),
                        }
                        .into());
                    }
                    _ => {}
                }
                stored
            }
            Change::RemoveJob { job, revision } => {
                let stored = stored_job(tables, txn, *job)?;
                match &stored {
                    Stored::Absent => conflicts.push(*job),
                    Stored::Readable(old) if old.revision != *revision => conflicts.push(*job),
                    // Removing is the way out for a record that cannot be read, so it
                    // is allowed although its revision cannot be compared.
                    _ => {}
                }
                stored
            }
            Change::PutSubjobs { .. } => Stored::Absent,
        };
        stored_jobs.push(stored);
    }
    if conflicts.is_empty() {
        Ok(stored_jobs)
    } else {
        conflicts.sort_unstable();
        conflicts.dedup();
        Err(StoreError::Conflict { jobs: conflicts }.into())
    }
}

fn put_job(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    job: &Job,
    old: Stored,
) -> Result<Committed, Failure> {
    let mut record = job.clone();
    // Checked in `check_shape`.
    record.revision = job.revision.saturating_add(1);
    let id = record.id;
    let key = keys::job(id);
    puts.jobs.put(txn, &key, &encode_job(&record), || {
        format!("writing job {id} to table jobs")
    })?;
    let summary = encode_summary(&JobSummary::of(&record));
    puts.summaries.put(txn, &key, &summary, || {
        format!("writing the summary of job {id} to table summaries")
    })?;
    // Deleted whatever the old status, so that a stale entry cannot outlive a put.
    if let Stored::Readable(old) = &old {
        delete_active(tables, txn, &old.spec.backend.kind, id)?;
    }
    if record.status().is_active() {
        tables
            .active
            .put(
                txn,
                &keys::active(&record.spec.backend.kind, id),
                &[record.status() as u8],
            )
            .doing(&format!("writing job {id} to table active"))?;
    }
    Ok(Committed {
        job: id,
        revision: record.revision,
    })
}

fn remove_job(tables: &Tables, txn: &mut RwTxn, id: JobId, old: Stored) -> Result<(), Failure> {
    let key = keys::job(id);
    tables
        .jobs
        .delete(txn, &key)
        .doing(&format!("deleting job {id} from table jobs"))?;
    tables
        .summaries
        .delete(txn, &key)
        .doing(&format!("deleting the summary of job {id}"))?;
    tables
        .dicts
        .delete(txn, &key)
        .doing(&format!("deleting the dictionary of job {id}"))?;
    let first = keys::subjob(id, 0);
    let last = keys::subjob(id, u32::MAX);
    tables
        .subjobs
        .delete_range(
            txn,
            &(Bound::Included(&first[..]), Bound::Included(&last[..])),
        )
        .doing(&format!("deleting the subjobs of job {id}"))?;
    match old {
        Stored::Readable(old) => delete_active(tables, txn, &old.spec.backend.kind, id)?,
        // Which backend the job had is unknown: look for its entry in the whole index
        // (which holds only the active jobs, so is short).
        Stored::Unreadable(_) | Stored::Absent => {
            let mut stale = Vec::new();
            for entry in tables.active.iter(txn).doing("reading table active")? {
                let (k, _) = entry.doing("reading table active")?;
                if keys::parse_active(k).is_some_and(|(_, job)| job == id) {
                    stale.push(k.to_vec());
                }
            }
            for k in stale {
                tables
                    .active
                    .delete(txn, &k)
                    .doing(&format!("deleting job {id} from table active"))?;
            }
        }
    }
    Ok(())
}

fn delete_active(
    tables: &Tables,
    txn: &mut RwTxn,
    backend: &str,
    id: JobId,
) -> Result<(), Failure> {
    tables
        .active
        .delete(txn, &keys::active(backend, id))
        .doing(&format!("deleting job {id} from table active"))?;
    Ok(())
}
