//! The index of active units (table `units`) and the monitor's calls on it:
//! `Store::active_units` reads a page of it without decoding any job, and
//! `Store::update_units` applies status changes to units in one write transaction,
//! reading and writing only what they touch: each job's state and summary, and the
//! groups that hold the subjobs changed. The rules are the core's
//! (`Job::apply_unit_update`); a subjob's record is written back with its overrides
//! copied as stored (`ganga_records::encode_subjob_run`), so neither a master's spec nor its
//! splitter is read.
//!
//! The index holds one entry per unit whose status is active: a job without subjobs, or
//! a subjob (a split job's master is not a unit). Every change that touches a unit keeps
//! it in step, in the same transaction (`crate::commit` and [`update_units`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use ganga_core::{
    ActiveUnit, Application, BackendConfig, Committed, Executable, Job, JobId, JobRef, JobSpec,
    JobSummary, RunState, StoreError, Subjob, SubjobIndex, UnitCursor, UnitRefusal, UnitUpdate,
    UnitsUpdated,
};
use ganga_records::{
    Dictionary, UnitEntry, decode_subjob_run, decode_unit_entry, encode_subjob_run,
    encode_unit_entry,
};
use heed::{RoTxn, RwTxn};

use crate::codec::{
    decode_dict_record, decode_state, decode_summary, encode_active, encode_dict_record,
    encode_state_parts, encode_summary, summary_with_run,
};
use crate::env::{PartWrites, Tables};
use crate::error::Failure;
use crate::group::{self, first_index, group_of};
use crate::keys;

/// Writes the index entry of `unit` on `backend` for its run state: an entry if it is
/// active, none otherwise.
pub(crate) fn put_unit(
    tables: &Tables,
    txn: &mut RwTxn,
    backend: &str,
    unit: JobRef,
    run: &RunState,
) -> Result<(), Failure> {
    let key = keys::unit(backend, unit);
    if run.status.is_active() {
        let mut entry = Vec::with_capacity(48);
        encode_unit_entry(run, &mut entry);
        tables.units.put(txn, &key, &entry)
    } else {
        tables.units.delete(txn, &key).map(|_| ())
    }
}

/// Deletes the index entries of job `id` (itself and its subjobs): those under
/// `backend`, or, when which backend the job had is unknown (its records do not decode),
/// wherever they are.
pub(crate) fn delete_units_of_job(
    tables: &Tables,
    txn: &mut RwTxn,
    backend: Option<&str>,
    id: JobId,
) -> Result<(), Failure> {
    match backend {
        Some(backend) => {
            let (first, last) = keys::units_of_job(backend, id);
            tables.units.delete_range(
                txn,
                &(Bound::Included(&first[..]), Bound::Included(&last[..])),
            )?;
        }
        None => {
            let mut stale = Vec::new();
            for entry in tables.units.iter(txn)? {
                // A damaged entry of this job goes too; others are left for `check`.
                let key = match entry {
                    Ok((key, _)) => key.to_vec(),
                    Err(Failure::Damaged { key, .. }) => key,
                    Err(e) => return Err(e),
                };
                if keys::parse_unit(&key).is_some_and(|(_, unit)| unit.job == id) {
                    stale.push(key);
                }
            }
            for key in stale {
                tables.units.delete(txn, &key)?;
            }
        }
    }
    Ok(())
}

/// Moves the index entries of job `id` from backend `from` to backend `to` (its spec
/// changed backend).
pub(crate) fn move_units_of_job(
    tables: &Tables,
    txn: &mut RwTxn,
    from: &str,
    to: &str,
    id: JobId,
) -> Result<(), Failure> {
    let (first, last) = keys::units_of_job(from, id);
    let bounds = (Bound::Included(&first[..]), Bound::Included(&last[..]));
    let mut moved = Vec::new();
    for entry in tables.units.range(txn, &bounds)? {
        let (key, value) = entry?;
        if let Some((_, unit)) = keys::parse_unit(key) {
            moved.push((keys::unit(to, unit), value.to_vec()));
        }
    }
    tables.units.delete_range(txn, &bounds)?;
    for (key, value) in moved {
        tables.units.put(txn, &key, &value)?;
    }
    Ok(())
}

/// Up to `limit` entries of the index after `after`, in key order (= `UnitCursor`
/// order).
pub(crate) fn active_units(
    tables: &Tables,
    txn: &RoTxn,
    after: Option<&UnitCursor>,
    limit: u32,
) -> Result<Vec<ActiveUnit>, Failure> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let start = after.map(|c| keys::unit(&c.backend, c.unit));
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) = match &start {
        Some(key) => (Bound::Excluded(&key[..]), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    };
    for entry in tables.units.range(txn, &bounds)? {
        let (key, value) = entry?;
        let Some((backend, unit)) = keys::parse_unit(key) else {
            return Err(damaged_entry(
                key,
                "its key is not a backend and a unit".to_owned(),
            ));
        };
        let entry = decode_unit_entry(value)
            .map_err(|e| damaged_entry(key, format!("its value does not decode: {e}")))?;
        out.push(active_unit(backend, unit, entry));
        if out.len() >= limit as usize {
            break;
        }
    }
    Ok(out)
}

fn damaged_entry(key: &[u8], detail: String) -> Failure {
    Failure::Damaged {
        table: "units",
        key: key.to_vec(),
        detail,
    }
}

pub(crate) fn active_unit(backend: &str, unit: JobRef, entry: UnitEntry) -> ActiveUnit {
    ActiveUnit {
        unit,
        backend: backend.to_owned(),
        status: entry.status,
        run: entry.run,
        id: entry.id,
        native_state: entry.native_state,
        since: entry.since,
    }
}

/// A spec that stands in for a job's real one while unit updates are applied to its
/// state: the rules (`Job::apply_unit_update`) read the run state and the subjob
/// counters only, and the real spec (maybe a master's thousands of argument lists) is
/// never read for them.
fn stand_in_spec() -> Arc<JobSpec> {
    Arc::new(JobSpec {
        name: String::new(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
        }),
        backend: BackendConfig::named(""),
        input_files: Vec::new(),
        output_files: Vec::new(),
        splitter: None,
        auto_resubmit: None,
    })
}

fn corrupt(unit: JobRef, detail: String) -> Failure {
    StoreError::Corrupt {
        job: unit,
        detail: format!("{detail}; the update cannot be applied"),
    }
    .into()
}

/// A subjob read for updating: its run state, its overrides as stored, and whether an
/// update changed it.
struct Held<'g> {
    subjob: Subjob,
    overrides: ganga_records::RawOverrides<'g>,
    changed: bool,
}

/// Applies `updates` in `txn` (`Store::update_units`).
pub(crate) fn update_units(
    tables: &Tables,
    txn: &mut RwTxn,
    updates: &[UnitUpdate],
) -> Result<UnitsUpdated, Failure> {
    let mut by_job: BTreeMap<JobId, Vec<&UnitUpdate>> = BTreeMap::new();
    for u in updates {
        by_job.entry(u.unit.job).or_default().push(u);
    }
    let spec = stand_in_spec();
    let mut outcome = UnitsUpdated::default();
    for (id, updates) in by_job {
        let key = keys::job(id);
        let Some(state) = tables.jobs.get(txn, &key)? else {
            outcome
                .refused
                .extend(updates.iter().map(|u| (u.unit, UnitRefusal::NoSuchUnit)));
            continue;
        };
        let state = decode_state(state)
            .map_err(|d| corrupt(JobRef::job(id), format!("table jobs: {d}")))?;
        let summary = stored_summary(tables, txn, id)?;
        let mut job = Job {
            id,
            revision: state.revision,
            spec: spec.clone(),
            run: state.run,
            subjobs: state.subjobs,
            metadata: state.metadata,
        };

        // The groups holding the subjobs updated, read once each (copied: they are
        // written back in this transaction).
        let groups_needed: BTreeSet<u32> = updates
            .iter()
            .filter_map(|u| u.unit.subjob.map(group_of))
            .collect();
        let mut groups: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for &g in &groups_needed {
            if let Some(value) = tables.subjobs.get(txn, &keys::group(id, g))? {
                groups.insert(g, value.to_vec());
            }
        }
        let mut dict: Option<(Dictionary, usize)> = None;
        let mut indices = None;
        if !groups.is_empty() {
            let bytes = tables.dicts.get(txn, &key)?.ok_or_else(|| {
                corrupt(
                    JobRef::job(id),
                    format!("table dicts: job {id} has subjob records but no dictionary"),
                )
            })?;
            let (d, ix) = decode_dict_record(bytes)
                .map_err(|e| corrupt(JobRef::job(id), format!("table dicts: {e}")))?;
            let len = d.len();
            dict = Some((d, len));
            indices = ix;
        }
        let mut slots: BTreeMap<u32, group::Slots<'_>> = BTreeMap::new();
        for (&g, value) in &groups {
            let parsed = group::parse(value).map_err(|e| {
                corrupt(
                    JobRef::subjob(id, first_index(g)),
                    format!("table subjobs: the group does not decode: {e}"),
                )
            })?;
            slots.insert(g, parsed);
        }

        let mut held: BTreeMap<SubjobIndex, Held<'_>> = BTreeMap::new();
        let mut applied = false;
        let mut job_unit_changed = false;
        for u in &updates {
            let result = match u.unit.subjob {
                None => job
                    .apply_unit_update(None, u)
                    .inspect(|()| job_unit_changed = true),
                Some(index) => {
                    if let std::collections::btree_map::Entry::Vacant(vacant) = held.entry(index) {
                        let g = group_of(index);
                        let record = slots
                            .get(&g)
                            .and_then(|s| s.get((index - first_index(g)) as usize).copied())
                            .flatten();
                        if let (Some(record), Some((d, _))) = (record, &dict) {
                            let (run, overrides) = decode_subjob_run(record, d).map_err(|e| {
                                corrupt(
                                    JobRef::subjob(id, index),
                                    format!(
                                        "table subjobs: {}",
                                        crate::codec::unreadable(record, &e)
                                    ),
                                )
                            })?;
                            vacant.insert(Held {
                                subjob: Subjob {
                                    index,
                                    // Never read by the rules; the record keeps its own.
                                    overrides: Vec::new(),
                                    run,
                                },
                                overrides,
                                changed: false,
                            });
                        }
                    }
                    match held.get_mut(&index) {
                        None => Err(UnitRefusal::NoSuchUnit),
                        Some(h) => job.apply_unit_update(Some(&mut h.subjob), u).inspect(|()| {
                            h.changed = true;
                        }),
                    }
                }
            };
            match result {
                Ok(()) => applied = true,
                Err(why) => outcome.refused.push((u.unit, why)),
            }
        }
        if !applied {
            continue;
        }

        // Everything read; now the writes. New records, group by group.
        let mut group_writes: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut unit_writes: Vec<(JobRef, RunState)> = Vec::new();
        if let Some((d, _)) = &mut dict {
            let mut by_group: BTreeMap<u32, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
            for (&index, h) in held.iter().filter(|(_, h)| h.changed) {
                let mut record = Vec::with_capacity(64);
                encode_subjob_run(&h.subjob.run, h.overrides, d, &mut record);
                let g = group_of(index);
                by_group
                    .entry(g)
                    .or_default()
                    .push(((index - first_index(g)) as usize, record));
                unit_writes.push((JobRef::subjob(id, index), h.subjob.run.clone()));
            }
            for (g, new) in by_group {
                let old = slots.get(&g).map_or(&[][..], |s| &s[..]);
                group_writes.push((g, group::splice(old, &new)));
            }
        }
        // Only grown: updates never add records, so the indices stay as they are.
        let dict_write = dict.and_then(|(d, stored)| {
            (d.len() != stored).then(|| match &indices {
                Some(ix) => encode_dict_record(&d, ix),
                None => d.encode(),
            })
        });
        drop(held);
        drop(slots);

        let revision = job.revision.saturating_add(1);
        let state = encode_state_parts(revision, &job.run, &job.subjobs, &job.metadata);
        tables.jobs.put(txn, &key, &state)?;
        PartWrites::count(&tables.writes.states);
        let summary = summary_with_run(summary, &job.run, &job.subjobs);
        tables.summaries.put(txn, &key, &encode_summary(&summary))?;
        let active_key = keys::active(&summary.backend, id);
        if job.run.status.is_active() {
            tables
                .active
                .put(txn, &active_key, &encode_active(job.run.status, revision))?;
        } else {
            tables.active.delete(txn, &active_key)?;
        }
        if job_unit_changed {
            put_unit(tables, txn, &summary.backend, JobRef::job(id), &job.run)?;
        }
        for (unit, run) in &unit_writes {
            put_unit(tables, txn, &summary.backend, *unit, run)?;
        }
        for (g, value) in &group_writes {
            tables.subjobs.put(txn, &keys::group(id, *g), value)?;
        }
        if let Some(dict) = dict_write {
            tables.dicts.put(txn, &key, &dict)?;
        }
        outcome.committed.push(Committed { job: id, revision });
    }
    Ok(outcome)
}

/// The stored summary of job `id`: a unit update brings it up to date. One that is
/// missing or does not decode is made again from the spec, as a run update does.
fn stored_summary(tables: &Tables, txn: &RoTxn, id: JobId) -> Result<JobSummary, Failure> {
    let key = keys::job(id);
    if let Some(Ok(summary)) = tables
        .summaries
        .get(txn, &key)?
        .map(|bytes| decode_summary(id, bytes))
    {
        return Ok(summary);
    }
    let spec = tables
        .specs
        .get(txn, &key)?
        .ok_or_else(|| format!("job {id} has no spec"))
        .and_then(crate::codec::decode_spec)
        .map_err(|detail| {
            corrupt(
                JobRef::job(id),
                format!(
                    "table specs: {detail}, and its summary is missing or damaged: the \
                     summary of job {id} cannot be written"
                ),
            )
        })?;
    let mut job = Job::new(id, spec, ganga_core::Timestamp(0));
    job.run.times = Default::default();
    Ok(JobSummary::of(&job))
}
