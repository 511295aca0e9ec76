//! `Store::commit`: checking a batch of changes (shape, then revisions) and applying it,
//! with the summaries and the active index kept in step, all in one write transaction.

use std::collections::BTreeSet;
use std::ops::Bound;

use ganga_core::{Change, Committed, Job, JobId, JobRef, JobSummary, StoreError};
use heed::{RoTxn, RwTxn};

use crate::codec::{decode, encode};
use crate::env::Tables;
use crate::error::{Doing, Failure};
use crate::keys;

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
            Some(bytes) => match decode::<Job>(bytes) {
                Ok(job) => Stored::Readable(Box::new(job)),
                Err(detail) => Stored::Unreadable(detail),
            },
        },
    )
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

    let mut committed = Vec::new();
    for (change, stored) in changes.iter().zip(stored) {
        match change {
            Change::PutJob(job) => committed.push(put_job(tables, txn, job, stored)?),
            Change::PutSubjobs { job, subjobs } => {
                for subjob in subjobs {
                    let what = JobRef::subjob(*job, subjob.index);
                    let bytes = encode(&format!("subjob {what}"), subjob)?;
                    tables
                        .subjobs
                        .put(txn, &keys::subjob(*job, subjob.index), &bytes)
                        .doing(&format!("writing subjob {what} to table subjobs"))?;
                }
            }
            Change::RemoveJob { job, .. } => remove_job(tables, txn, *job, stored)?,
        }
    }
    Ok(committed)
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

fn put_job(tables: &Tables, txn: &mut RwTxn, job: &Job, old: Stored) -> Result<Committed, Failure> {
    let mut record = job.clone();
    // Checked in `check_shape`.
    record.revision = job.revision.saturating_add(1);
    let id = record.id;
    let key = keys::job(id);
    let bytes = encode(&format!("job {id}"), &record)?;
    tables
        .jobs
        .put(txn, &key, &bytes)
        .doing(&format!("writing job {id} to table jobs"))?;
    let summary = encode(
        &format!("the summary of job {id}"),
        &JobSummary::of(&record),
    )?;
    tables.summaries.put(txn, &key, &summary).doing(&format!(
        "writing the summary of job {id} to table summaries"
    ))?;
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
