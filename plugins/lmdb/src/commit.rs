//! `Store::commit`: checking a batch of changes (shape, then revisions) and applying it,
//! with the summaries, the active index, the subjobs' dictionaries and their records'
//! split items kept in step, all in one write transaction.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ganga_core::compact::{Dictionary, encode_subjob};
use ganga_core::{
    Change, Committed, Job, JobId, JobRef, JobSummary, Splitter, Status, StoreError, Subjob,
    SubjobIndex, Timestamp,
};
use heed::{RoTxn, RwTxn};

use crate::codec::{
    decode_dictionary, decode_job, decode_subjob, encode_job, encode_summary, split_item, split_len,
};
use crate::env::Tables;
use crate::error::{Doing, Failure};
use crate::group::{self, GROUP_SIZE, first_index, group_of, last_index};
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
    // First, while every stored subjob record still goes with the splitter its master has
    // now: the records that leave out a split item the master's new splitter changes get
    // it written out (before this commit's own subjobs are written against the new one).
    for (change, stored) in changes.iter().zip(&stored) {
        if let (Change::PutJob(job), Stored::Readable(old)) = (change, stored)
            && old.spec.splitter != job.spec.splitter
        {
            respell_split_items(
                tables,
                txn,
                &mut puts,
                &mut dicts,
                job.id,
                old.spec.splitter.as_ref(),
                job.spec.splitter.as_ref(),
            )?;
        }
    }
    // Every job whose subjobs are put is put in the same commit (`check_shape`): its
    // subjobs are written against that master's splitter.
    let masters: BTreeMap<JobId, &Job> = changes
        .iter()
        .filter_map(|c| match c {
            Change::PutJob(job) => Some((job.id, job)),
            _ => None,
        })
        .collect();
    let mut committed = Vec::new();
    for (change, stored) in changes.iter().zip(stored) {
        match change {
            Change::PutJob(job) => committed.push(put_job(tables, txn, &mut puts, job, stored)?),
            Change::PutSubjobs { job, subjobs } => {
                let splitter = masters.get(job).and_then(|m| m.spec.splitter.as_ref());
                put_subjobs(
                    tables, txn, &mut puts, &mut dicts, changes, *job, subjobs, splitter,
                )?;
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

/// Encodes subjobs against their job's dictionary (read or made once per commit, growing
/// as new strings come) and their master's split items, and splices them into their
/// groups: each group touched is read and written once, the records already in it
/// copied as they are. Of two puts of one index, the later wins.
#[allow(clippy::too_many_arguments)]
fn put_subjobs(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    dicts: &mut BTreeMap<JobId, OpenDictionary>,
    changes: &[Change],
    job: JobId,
    subjobs: &[Subjob],
    splitter: Option<&Splitter>,
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
    let mut records: BTreeMap<SubjobIndex, Vec<u8>> = BTreeMap::new();
    for subjob in subjobs {
        let item = split_item(splitter, subjob.index);
        let mut record = Vec::with_capacity(48);
        encode_subjob(subjob, &mut open.dict, item.as_deref(), &mut record);
        records.insert(subjob.index, record);
    }
    let mut records = records.into_iter().peekable();
    let mut new: Vec<(usize, Vec<u8>)> = Vec::with_capacity(GROUP_SIZE as usize);
    while let Some((index, record)) = records.next() {
        let g = group_of(index);
        new.clear();
        new.push(((index - first_index(g)) as usize, record));
        while let Some((index, record)) = records.next_if(|(i, _)| group_of(*i) == g) {
            new.push(((index - first_index(g)) as usize, record));
        }
        write_group(tables, txn, puts, job, g, &new)?;
    }
    Ok(())
}

/// Puts records into group `g` of `job` at the positions `new` names.
fn write_group(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    job: JobId,
    g: u32,
    new: &[(usize, Vec<u8>)],
) -> Result<(), Failure> {
    let key = keys::group(job, g);
    // A new job's groups go after the table's last key: nothing to read.
    let value = if puts.subjobs.is_after_last(txn, &key)? {
        group::splice(&[], new)
    } else {
        match tables
            .subjobs
            .get(txn, &key)
            .doing("reading table subjobs")?
        {
            None => group::splice(&[], new),
            Some(stored) => {
                let slots = group::parse(stored).map_err(|detail| {
                    let first = first_index(g) + new.first().map_or(0, |(k, _)| *k as u32);
                    StoreError::Corrupt {
                        job: JobRef::subjob(job, first),
                        detail: format!(
                            "table subjobs: the group of subjobs {job}.{}–{job}.{} does not \
                             decode: {detail}; subjobs cannot be written into it, remove the \
                             job instead",
                            first_index(g),
                            last_index(g)
                        ),
                    }
                })?;
                group::splice(&slots, new)
            }
        }
    };
    puts.subjobs.put(txn, &key, &value, || {
        format!(
            "writing subjobs {job}.{}–{job}.{} to table subjobs",
            first_index(g),
            last_index(g)
        )
    })
}

/// Keeps every subjob record of `job` readable across a change of its master's splitter
/// from `old` to `new`: a record that left out its overrides because they were `old`'s
/// item gets them written out (or left out again, if `new` gives the same ones), for every
/// index whose item changes. Records of other indices, records that spell out their
/// overrides and records that do not decode are left as they are (a record that does not
/// decode stays unreadable either way); a group that does not decode too. Without a
/// readable dictionary no record of the job decodes, so there is nothing to do.
fn respell_split_items(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    dicts: &mut BTreeMap<JobId, OpenDictionary>,
    job: JobId,
    old: Option<&Splitter>,
    new: Option<&Splitter>,
) -> Result<(), Failure> {
    let Some(old) = old else {
        return Ok(());
    };
    let Some(last) = split_len(old)
        .checked_sub(1)
        .map(|l| SubjobIndex::try_from(l).unwrap_or(SubjobIndex::MAX))
    else {
        return Ok(());
    };
    let start = keys::group(job, 0);
    let end = keys::group_of_subjob(job, last);
    let bounds = (Bound::Included(&start[..]), Bound::Included(&end[..]));
    let mut groups = Vec::new();
    for entry in tables
        .subjobs
        .range(txn, &bounds)
        .doing("reading table subjobs")?
    {
        let (key, _) = entry.doing("reading table subjobs")?;
        if let Some((_, g)) = keys::parse_group(key) {
            groups.push(g);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let open = match dicts.entry(job) {
        Entry::Occupied(open) => open.into_mut(),
        Entry::Vacant(vacant) => match tables
            .dicts
            .get(txn, &keys::job(job))
            .doing("reading table dicts")?
            .map(decode_dictionary)
        {
            Some(Ok(dict)) => vacant.insert(OpenDictionary {
                stored_len: Some(dict.len()),
                dict,
            }),
            None | Some(Err(_)) => return Ok(()),
        },
    };
    for g in groups {
        let key = keys::group(job, g);
        let Some(stored) = tables
            .subjobs
            .get(txn, &key)
            .doing("reading table subjobs")?
        else {
            continue;
        };
        let Ok(slots) = group::parse(stored) else {
            continue;
        };
        let mut respelled: Vec<(usize, Vec<u8>)> = Vec::new();
        for (k, record) in slots.iter().enumerate() {
            let Some(record) = record else { continue };
            let index = first_index(g) + k as u32;
            let Some(old_item) = split_item(Some(old), index) else {
                continue;
            };
            let new_item = split_item(new, index);
            if new_item.as_ref() == Some(&old_item) {
                continue;
            }
            let Ok(subjob) = decode_subjob(index, record, &open.dict, Some(&old_item)) else {
                continue;
            };
            // Only a record whose overrides are the item can have left them out.
            if subjob.overrides != old_item {
                continue;
            }
            let mut rewritten = Vec::with_capacity(record.len() + old_item.len() * 16);
            encode_subjob(&subjob, &mut open.dict, new_item.as_deref(), &mut rewritten);
            respelled.push((k, rewritten));
        }
        if !respelled.is_empty() {
            let value = group::splice(&slots, &respelled);
            puts.subjobs.put(txn, &key, &value, || {
                format!(
                    "rewriting subjobs {job}.{}–{job}.{} for the new splitter of job {job}",
                    first_index(g),
                    last_index(g)
                )
            })?;
        }
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
    let first = keys::group(id, 0);
    let last = keys::group(id, u32::MAX);
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
