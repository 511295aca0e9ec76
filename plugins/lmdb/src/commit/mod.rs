//! `Store::commit`: checking a batch of changes (shape, then revisions) and applying it,
//! with the summaries, the active index, the subjobs' dictionaries and their records'
//! split items kept in step, all in one write transaction.
//!
//! A job is kept in three tables (`crate::parts`): a job put writes its state, and its
//! spec and splitter only where their encoding differs from what is stored. The records
//! of a job put are the ones the host sent (`RecordChanges`: encoded once, there), written
//! as they came but for the state's revision, which is bumped in place
//! (`ganga_records::restamp_state`); a job put through `Store::commit` is encoded here
//! into the same records first. A run update
//! (`Change::PutRun`) decodes only the stored state (for its revision and metadata) and
//! summary, and writes the state, the summary and the active entry.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ganga_core::{
    Change, Committed, Job, JobId, JobRef, JobSummary, RunUpdate, Status, StoreError,
};
use ganga_records::{
    Dictionary, JobRecord, JobState, RecordChanges, job_from_parts, restamp_state,
};
use heed::{RoTxn, RwTxn};

use crate::codec::{
    decode_spec, decode_splitter, decode_state, decode_summary, encode_active, encode_dict_record,
    encode_state_parts, encode_summary, summary_with_run,
};
use crate::env::{PartWrites, Tables};
use crate::error::{Doing, Failure};
use crate::indices::Indices;
use crate::ordered::OrderedPuts;
use crate::parts::get;
use crate::{keys, units};

mod subjobs;

use subjobs::{Items, put_subjobs, respell_split_items, stored_items};

/// What is stored of the state of a job a change touches.
enum Stored {
    Absent,
    Readable(Box<JobState>),
    /// The record exists but does not decode.
    Unreadable(String),
}

fn stored_state(tables: &Tables, txn: &RoTxn, id: JobId) -> Result<Stored, Failure> {
    Ok(
        match get(tables.jobs, txn, &keys::job(id), "reading table jobs")? {
            None => Stored::Absent,
            Some(bytes) => match decode_state(bytes) {
                Ok(state) => Stored::Readable(Box::new(state)),
                Err(detail) => Stored::Unreadable(detail),
            },
        },
    )
}

/// The tables a commit appends to, each remembering its last key.
struct Puts {
    jobs: OrderedPuts,
    specs: OrderedPuts,
    splitters: OrderedPuts,
    summaries: OrderedPuts,
    subjobs: OrderedPuts,
    dicts: OrderedPuts,
}

impl Puts {
    fn new(tables: &Tables) -> Puts {
        Puts {
            jobs: OrderedPuts::new(tables.jobs),
            specs: OrderedPuts::new(tables.specs),
            splitters: OrderedPuts::new(tables.splitters),
            summaries: OrderedPuts::new(tables.summaries),
            subjobs: OrderedPuts::new(tables.subjobs),
            dicts: OrderedPuts::new(tables.dicts),
        }
    }

    /// After a deletion: the last key of any table may have gone.
    fn forget_last(&mut self) {
        self.jobs.forget_last();
        self.specs.forget_last();
        self.splitters.forget_last();
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
    /// The subjob indices the job has records for (`None`: not known, a record written
    /// without them), and whether this commit added some.
    indices: Option<Indices>,
    indices_changed: bool,
}

impl OpenDictionary {
    fn stored(dict: Dictionary, indices: Option<Indices>) -> OpenDictionary {
        OpenDictionary {
            stored_len: Some(dict.len()),
            dict,
            indices,
            indices_changed: false,
        }
    }

    /// Its record, if this commit changed it.
    fn record_to_write(&self) -> Option<Vec<u8>> {
        if self.stored_len == Some(self.dict.len()) && !self.indices_changed {
            return None;
        }
        Some(match &self.indices {
            Some(indices) => encode_dict_record(&self.dict, indices),
            None => self.dict.encode(),
        })
    }
}

/// Refuses to write over a job whose stored record cannot be read.
fn corrupt(id: JobId, detail: String) -> Failure {
    StoreError::Corrupt {
        job: JobRef::job(id),
        detail: format!(
            "{detail}; the stored record cannot be overwritten safely, remove the job instead"
        ),
    }
    .into()
}

/// What a commit is given: changes alone (`Store::commit`), or changes with the records
/// of every job they put, as the host sent them (`RecordStore::commit_records`).
#[derive(Clone, Copy)]
pub(crate) enum Commit<'a> {
    Changes(&'a [Change]),
    Sent(&'a RecordChanges),
}

impl<'a> Commit<'a> {
    pub(crate) fn changes(self) -> &'a [Change] {
        match self {
            Commit::Changes(changes) => changes,
            Commit::Sent(sent) => sent.changes(),
        }
    }

    /// The records of each job put (in the order of the changes; `None` for the other
    /// changes): the ones sent, or else encoded here.
    fn job_records(self) -> Vec<Option<Cow<'a, JobRecord>>> {
        self.changes()
            .iter()
            .enumerate()
            .map(|(i, change)| match change {
                Change::PutJob(job) => Some(match self {
                    Commit::Sent(sent) => sent
                        .job_record(i)
                        .map_or_else(|| Cow::Owned(JobRecord::of(job)), Cow::Borrowed),
                    Commit::Changes(_) => Cow::Owned(JobRecord::of(job)),
                }),
                _ => None,
            })
            .collect()
    }
}

/// Applies `commit` in `txn`. On any error the caller aborts the transaction, so a
/// refused commit writes nothing.
pub(crate) fn apply(
    tables: &Tables,
    txn: &mut RwTxn,
    commit: Commit<'_>,
) -> Result<Vec<Committed>, Failure> {
    let changes = commit.changes();
    check_shape(tables, txn, changes)?;
    let stored = check_revisions(tables, txn, changes)?;
    // Only now that the commit is known to go ahead: a refused one encodes nothing.
    let records = commit.job_records();

    let mut puts = Puts::new(tables);
    let mut dicts: BTreeMap<JobId, OpenDictionary> = BTreeMap::new();
    // First, while every stored subjob record still goes with the splitter its master has
    // now: for each job put, its splitter's encoding is compared with the stored one; if
    // it changed, the records that leave out a split item the new splitter changes get it
    // written out (before this commit's own subjobs are written against the new one).
    // What each job put does to table splitters: `Some(new encoding)` if it changed.
    let mut splitter_puts: Vec<Option<Option<&[u8]>>> = Vec::with_capacity(changes.len());
    for ((change, stored), record) in changes.iter().zip(&stored).zip(&records) {
        let (Change::PutJob(job), Some(record)) = (change, record) else {
            splitter_puts.push(None);
            continue;
        };
        let new = record.splitter.as_deref().map(Vec::as_slice);
        let key = keys::job(job.id);
        let old = get(tables.splitters, txn, &key, "reading table splitters")?;
        if old == new {
            splitter_puts.push(None);
            continue;
        }
        if let Stored::Readable(_) = stored {
            let old = match old {
                Some(bytes) => decode_splitter(bytes)
                    .map_err(|detail| corrupt(job.id, format!("table splitters: {detail}")))?,
                None => None,
            };
            if old.is_some() {
                respell_split_items(
                    tables,
                    txn,
                    &mut puts,
                    &mut dicts,
                    job.id,
                    old.as_ref(),
                    job.spec.splitter.as_ref(),
                )?;
            }
        }
        splitter_puts.push(Some(new));
    }
    // Every job whose subjobs are put is put in the same commit, or has its run updated
    // (`check_shape`): its subjobs are written against that master's splitter, as this
    // commit leaves it.
    let masters: BTreeMap<JobId, &Job> = changes
        .iter()
        .filter_map(|c| match c {
            Change::PutJob(job) => Some((job.id, job)),
            _ => None,
        })
        .collect();
    // Jobs that may have entries in the index of active units: their subjobs put that
    // are not active have theirs deleted (a new job's, or one without active units,
    // have none to delete).
    let may_have_units: BTreeMap<JobId, bool> = changes
        .iter()
        .zip(&stored)
        .filter_map(|(c, s)| match c {
            Change::PutJob(_) | Change::PutRun(_) => Some((
                c.job(),
                match s {
                    Stored::Absent => false,
                    Stored::Readable(state) => {
                        state.run.status.is_active()
                            || state.subjobs.iter().any(|(st, n)| st.is_active() && n > 0)
                    }
                    Stored::Unreadable(_) => true,
                },
            )),
            _ => None,
        })
        .collect();
    let mut committed = Vec::new();
    for (((change, stored), splitter_put), record) in
        changes.iter().zip(stored).zip(splitter_puts).zip(&records)
    {
        match change {
            Change::PutJob(job) => {
                // Invariant: `job_records` gives every job put its records.
                let Some(record) = record else {
                    return Err(invalid(format!("job {}: put without its records", job.id)));
                };
                committed.push(put_job(
                    tables,
                    txn,
                    &mut puts,
                    job,
                    record,
                    stored,
                    splitter_put,
                )?);
            }
            Change::PutRun(update) => {
                committed.push(put_run(tables, txn, &mut puts, update, stored)?);
            }
            Change::PutSubjobs { job, subjobs } => {
                let items = match masters.get(job) {
                    Some(master) => Items::Splitter(master.spec.splitter.as_ref()),
                    // Only overrides can be left out: without any, no item is needed.
                    None if subjobs.iter().all(|s| s.overrides.is_empty()) => Items::Splitter(None),
                    // The items of these subjobs alone, read from the stored splitter.
                    None => Items::Picked(stored_items(tables, txn, *job, subjobs)?),
                };
                put_subjobs(
                    tables, txn, &mut puts, &mut dicts, changes, *job, subjobs, &items,
                )?;
                let backend = match masters.get(job) {
                    Some(master) => Some(master.spec.backend.kind.clone()),
                    None => stored_backend(tables, txn, *job)?,
                };
                let Some(backend) = backend else {
                    return Err(corrupt(
                        *job,
                        format!(
                            "neither its summary nor its spec says which backend job {job} \
                             is on, so its subjobs cannot be indexed"
                        ),
                    ));
                };
                let may_have = may_have_units.get(job).copied().unwrap_or(true);
                for sj in subjobs {
                    if sj.status().is_active() || may_have {
                        units::put_unit(
                            tables,
                            txn,
                            &backend,
                            JobRef::subjob(*job, sj.index),
                            &sj.run,
                        )?;
                    }
                }
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
        if let Some(record) = open.record_to_write() {
            puts.dicts.put(txn, &keys::job(id), &record, || {
                format!("writing the dictionary of job {id} to table dicts")
            })?;
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
        let (id, revision) = match change {
            Change::PutJob(job) => {
                if let Some(problem) = keys::backend_name_problem(&job.spec.backend.kind) {
                    return Err(invalid(format!("job {}: {problem}", job.id)));
                }
                (job.id, job.revision)
            }
            Change::PutRun(update) => (update.job, update.revision),
            Change::RemoveJob { job, .. } => {
                if put.contains(job) || !removed.insert(*job) {
                    return Err(invalid(format!(
                        "job {job} is changed twice in one commit (removed and put, or \
                         removed twice)"
                    )));
                }
                continue;
            }
            Change::PutSubjobs { .. } => continue,
        };
        if id >= next_id {
            return Err(invalid(format!(
                "job {id} was put but was never reserved (the next id to reserve is \
                 {next_id}); reserve ids with reserve_ids first"
            )));
        }
        if revision == u64::MAX {
            return Err(invalid(format!(
                "job {id} is at the last possible revision"
            )));
        }
        if removed.contains(&id) || !put.insert(id) {
            return Err(invalid(format!(
                "job {id} is changed twice in one commit; put it once, in its final state"
            )));
        }
    }
    for change in changes {
        if let Change::PutSubjobs { job, .. } = change
            && !put.contains(job)
        {
            return Err(invalid(format!(
                "subjobs of job {job} were put without their master: a commit that puts \
                 subjobs must also put job {job} (or update its run), whose status counters \
                 describe them"
            )));
        }
    }
    Ok(())
}

fn invalid(message: String) -> Failure {
    StoreError::Invalid(message).into()
}

/// Compares every revision with the stored one and returns what is stored of each
/// changed job's state (in the order of `changes`). Every conflict is listed, not just
/// the first. Only states are decoded.
fn check_revisions(
    tables: &Tables,
    txn: &RoTxn,
    changes: &[Change],
) -> Result<Vec<Stored>, Failure> {
    let mut conflicts = Vec::new();
    let mut stored_jobs = Vec::with_capacity(changes.len());
    for change in changes {
        let stored = match change {
            Change::PutJob(Job { id, revision, .. })
            | Change::PutRun(RunUpdate {
                job: id, revision, ..
            }) => {
                let stored = stored_state(tables, txn, *id)?;
                let is_run = matches!(change, Change::PutRun(_));
                match &stored {
                    // A run update needs a job to update.
                    Stored::Absent if *revision != 0 || is_run => conflicts.push(*id),
                    Stored::Readable(old) if old.revision != *revision => conflicts.push(*id),
                    // Nobody could have read this record, so its revision is unknown: the
                    // write would blindly replace whatever it was.
                    Stored::Unreadable(detail) => {
                        return Err(corrupt(*id, format!("table jobs: {detail}")));
                    }
                    _ => {}
                }
                stored
            }
            Change::RemoveJob { job, revision } => {
                let stored = stored_state(tables, txn, *job)?;
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

/// Writes a job from its records (`sent`: as the host sent them, or as encoded here): its
/// state with its revision bumped, its spec and splitter where they changed
/// (`splitter_put`: the splitter's new encoding if it differs from the stored one,
/// `Some(None)` for none), its summary and its active entry.
#[allow(clippy::too_many_arguments)]
fn put_job(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    job: &Job,
    sent: &JobRecord,
    old: Stored,
    splitter_put: Option<Option<&[u8]>>,
) -> Result<Committed, Failure> {
    let mut record = job.clone();
    // Checked in `check_shape`.
    record.revision = job.revision.saturating_add(1);
    let id = record.id;
    let key = keys::job(id);
    let backend = &record.spec.backend.kind;
    let mut state = Vec::with_capacity(sent.state.len() + 8);
    let sent_revision = restamp_state(&sent.state, record.revision, &mut state)
        .map_err(|e| invalid(format!("job {id}: the state record sent for it: {e}")))?;
    if sent_revision != job.revision {
        return Err(invalid(format!(
            "job {id}: the state record sent for it is at revision {sent_revision}, the job \
             at {}",
            job.revision
        )));
    }

    // The spec: compared with the stored one first. The backend the job had (for its
    // active entry) is the new one unless the spec changed.
    let spec: &[u8] = &sent.spec;
    let (spec_changed, old_backend) = {
        let stored = get(tables.specs, txn, &key, "reading table specs")?;
        match (&old, stored) {
            (_, Some(stored)) if stored == spec => (false, Some(backend.clone())),
            (Stored::Readable(_), Some(stored)) => {
                let old_spec = decode_spec(stored)
                    .map_err(|detail| corrupt(id, format!("table specs: {detail}")))?;
                (true, Some(old_spec.backend.kind))
            }
            (Stored::Readable(_), None) => {
                return Err(corrupt(id, format!("table specs: job {id} has no spec")));
            }
            _ => (true, None),
        }
    };
    puts.jobs.put(txn, &key, &state, || {
        format!("writing job {id} to table jobs")
    })?;
    PartWrites::count(&tables.writes.states);
    if spec_changed {
        puts.specs.put(txn, &key, spec, || {
            format!("writing the spec of job {id} to table specs")
        })?;
        PartWrites::count(&tables.writes.specs);
    }
    match splitter_put {
        None => {}
        Some(Some(splitter)) => {
            puts.splitters.put(txn, &key, splitter, || {
                format!("writing the splitter of job {id} to table splitters")
            })?;
            PartWrites::count(&tables.writes.splitters);
        }
        Some(None) => {
            PartWrites::count(&tables.writes.splitters);
            tables
                .splitters
                .delete(txn, &key)
                .doing(&format!("deleting the splitter of job {id}"))?;
            puts.splitters.forget_last();
        }
    }
    let summary = encode_summary(&JobSummary::of(&record));
    puts.summaries.put(txn, &key, &summary, || {
        format!("writing the summary of job {id} to table summaries")
    })?;
    // Deleted whatever the old status, so that a stale entry cannot outlive a put.
    if let Some(old_backend) = &old_backend
        && let Stored::Readable(_) = &old
    {
        delete_active(tables, txn, old_backend, id)?;
    }
    if record.status().is_active() {
        put_active(tables, txn, backend, id, record.status(), record.revision)?;
    }
    // The index of active units: the job is one unless it is split.
    if let (Some(old_backend), Stored::Readable(_)) = (&old_backend, &old)
        && old_backend != backend
    {
        units::move_units_of_job(tables, txn, old_backend, backend, id)?;
    }
    if !record.is_split() && record.status().is_active() {
        units::put_unit(tables, txn, backend, JobRef::job(id), &record.run)?;
    } else if let Stored::Readable(_) = &old {
        tables
            .units
            .delete(txn, &keys::unit(backend, JobRef::job(id)))?;
    }
    Ok(Committed {
        job: id,
        revision: record.revision,
    })
}

/// Writes a job's new run state and counters: its state record (keeping the stored
/// metadata), its summary (the stored one, brought up to date) and its active entry. The
/// spec and the splitter are neither read nor written.
fn put_run(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    update: &RunUpdate,
    old: Stored,
) -> Result<Committed, Failure> {
    let id = update.job;
    let key = keys::job(id);
    // `check_revisions` refused any other.
    let Stored::Readable(old) = old else {
        return Err(StoreError::Conflict { jobs: vec![id] }.into());
    };
    let revision = update.revision.saturating_add(1);
    let summary = {
        let stored = get(tables.summaries, txn, &key, "reading table summaries")?;
        match stored.map(|bytes| decode_summary(id, bytes)) {
            Some(Ok(summary)) => summary,
            // A summary that is missing or damaged is made again from the spec.
            problem => {
                let spec = get(tables.specs, txn, &key, "reading table specs")?
                    .ok_or_else(|| format!("job {id} has no spec"))
                    .and_then(decode_spec)
                    .map_err(|detail| {
                        let summary = match problem {
                            Some(Err(e)) => format!("its summary does not decode ({e})"),
                            _ => "it has no summary".to_owned(),
                        };
                        corrupt(
                            id,
                            format!(
                                "table specs: {detail}, and {summary}: the summary of job \
                                 {id} cannot be written"
                            ),
                        )
                    })?;
                let state = JobState {
                    revision,
                    run: update.run.clone(),
                    subjobs: update.subjobs.clone(),
                    metadata: BTreeMap::new(),
                };
                JobSummary::of(&job_from_parts(id, state, spec, None))
            }
        }
    };
    let summary = summary_with_run(summary, &update.run, &update.subjobs);
    let state = encode_state_parts(revision, &update.run, &update.subjobs, &old.metadata);
    puts.jobs.put(txn, &key, &state, || {
        format!("writing job {id} to table jobs")
    })?;
    PartWrites::count(&tables.writes.states);
    puts.summaries
        .put(txn, &key, &encode_summary(&summary), || {
            format!("writing the summary of job {id} to table summaries")
        })?;
    delete_active(tables, txn, &summary.backend, id)?;
    if update.run.status.is_active() {
        put_active(
            tables,
            txn,
            &summary.backend,
            id,
            update.run.status,
            revision,
        )?;
    }
    let job_unit = JobRef::job(id);
    if update.subjobs.is_empty() {
        units::put_unit(tables, txn, &summary.backend, job_unit, &update.run)?;
    } else {
        tables
            .units
            .delete(txn, &keys::unit(&summary.backend, job_unit))?;
    }
    Ok(Committed { job: id, revision })
}

fn remove_job(tables: &Tables, txn: &mut RwTxn, id: JobId, old: Stored) -> Result<(), Failure> {
    let backend = match old {
        Stored::Readable(_) => stored_backend(tables, txn, id)?,
        Stored::Unreadable(_) | Stored::Absent => None,
    };
    let key = keys::job(id);
    for (table, name) in [
        (tables.jobs, "job"),
        (tables.specs, "spec"),
        (tables.splitters, "splitter"),
        (tables.summaries, "summary"),
        (tables.dicts, "dictionary"),
    ] {
        table
            .delete(txn, &key)
            .doing(&format!("deleting the {name} of job {id}"))?;
    }
    let first = keys::group(id, 0);
    let last = keys::group(id, u32::MAX);
    tables
        .subjobs
        .delete_range(
            txn,
            &(Bound::Included(&first[..]), Bound::Included(&last[..])),
        )
        .doing(&format!("deleting the subjobs of job {id}"))?;
    units::delete_units_of_job(tables, txn, backend.as_deref(), id)?;
    match backend {
        Some(backend) => delete_active(tables, txn, &backend, id)?,
        // Which backend the job had is unknown: look for its entry in the whole index
        // (which holds only the active jobs, so is short).
        None => {
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

/// The backend of a stored job, from its summary or else its spec; `None` if neither
/// decodes.
fn stored_backend(tables: &Tables, txn: &RoTxn, id: JobId) -> Result<Option<String>, Failure> {
    let key = keys::job(id);
    if let Some(Ok(summary)) = get(tables.summaries, txn, &key, "reading table summaries")?
        .map(|bytes| decode_summary(id, bytes))
    {
        return Ok(Some(summary.backend));
    }
    Ok(get(tables.specs, txn, &key, "reading table specs")?
        .and_then(|bytes| decode_spec(bytes).ok())
        .map(|spec| spec.backend.kind))
}

fn put_active(
    tables: &Tables,
    txn: &mut RwTxn,
    backend: &str,
    id: JobId,
    status: Status,
    revision: u64,
) -> Result<(), Failure> {
    tables
        .active
        .put(
            txn,
            &keys::active(backend, id),
            &encode_active(status, revision),
        )
        .doing(&format!("writing job {id} to table active"))
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
