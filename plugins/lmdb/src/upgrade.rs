//! Upgrading a store in place when it is opened: format version 1 (CBOR of the serde
//! types, one record per job, one entry per subjob) to 2 (compact records, a job kept as
//! its state, spec and splitter in three tables, per-job dictionaries, subjob records
//! leaving out their master's split item, sixteen subjobs to an entry, the revision in
//! the active index).
//!
//! The upgrade is one write transaction: it empties the tables whose records change and
//! fills them again from a read snapshot of the same state (see
//! [`crate::env::SharedEnv::write_with_snapshot`]), in key order, so that every leaf page
//! is full, holding one record (or one group of subjob records) at a time in memory. It sets the format version last;
//! until it commits, every reader (and a crash) sees format 1 untouched. A record that
//! does not decode in format 1 is carried over byte for byte: it stays reported as
//! unreadable in format 2 (it is not a format-2 record either), never lost.
//!
//! A later format (3) would do the same: a `v2` module keeping the reader of format 2
//! (`crate::codec` as it is now), a `from_v2` here rewriting every table whose records
//! change from the snapshot, and `settle_format_version` running the steps in turn
//! (1 -> 2 -> 3, or 1 -> 3 directly), each in its own transaction or all in one.

use ganga_core::{Job, JobId, JobSummary, Splitter, Status, StoreError, Subjob, Timestamp};
use ganga_records::{Dictionary, encode_subjob};
use heed::{RoTxn, RwTxn};

use crate::codec::{
    FORMAT_VERSION, encode_active, encode_spec, encode_splitter, encode_state, encode_summary,
    split_item,
};
use crate::env::{Table, Tables};
use crate::error::{Doing, Failure};
use crate::group::{self, first_index, group_of};
use crate::ordered::OrderedPuts;
use crate::{keys, v1};

/// The format version the upgrade from format 1 writes, and the one [`from_v2`] reads.
pub(crate) const V2: u32 = 2;

/// What an upgrade rewrote.
#[derive(Debug, Default)]
pub(crate) struct Upgraded {
    pub(crate) jobs: u64,
    pub(crate) subjobs: u64,
    /// Records that did not decode in the old format, carried over as they were.
    pub(crate) carried: u64,
    /// Entries of the index of active units made (from format 2).
    pub(crate) units: u64,
}

/// Rewrites a format-1 store in format 2. `old` is a snapshot of the state `txn` started
/// from. `None` if the store is no longer at format 1 (another process upgraded it).
pub(crate) fn from_v1(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
) -> Result<Option<Upgraded>, Failure> {
    match tables.format_version(txn)? {
        Some(v1::FORMAT_VERSION) => {}
        Some(V2 | FORMAT_VERSION) => return Ok(None),
        other => {
            return Err(StoreError::Io(format!(
                "cannot upgrade from format version {other:?}: only version {} can be",
                v1::FORMAT_VERSION
            ))
            .into());
        }
    }
    let mut upgraded = Upgraded::default();
    for (name, table) in [
        ("jobs", tables.jobs),
        ("specs", tables.specs),
        ("splitters", tables.splitters),
        ("summaries", tables.summaries),
        ("dicts", tables.dicts),
        ("subjobs", tables.subjobs),
        ("active", tables.active),
    ] {
        table
            .clear(txn)
            .doing(&format!("emptying table {name} to rewrite it"))?;
    }

    upgrade_jobs(tables, old, txn, &mut upgraded)?;
    upgraded.jobs = tables.jobs.len(txn).doing("counting table jobs")?;
    rewrite(
        tables.summaries,
        "summaries",
        old,
        txn,
        &mut upgraded,
        |key, bytes| {
            let id = keys::parse_job(key)?;
            let summary: JobSummary = v1::decode(bytes).ok().filter(|s: &JobSummary| s.id == id)?;
            Some(encode_summary(&summary))
        },
    )?;
    upgrade_active(tables, old, txn)?;
    upgrade_subjobs(tables, old, txn, &mut upgraded)?;

    tables
        .meta
        .put_raw(txn, keys::META_FORMAT_VERSION, &V2.to_be_bytes())
        .doing("writing the format version")?;
    Ok(Some(upgraded))
}

/// Refills `table` (emptied in `txn`) from its records in `old`, each re-encoded by
/// `convert`, or carried over as it was where `convert` cannot read it.
fn rewrite(
    table: Table,
    name: &str,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
    convert: impl Fn(&[u8], &[u8]) -> Option<Vec<u8>>,
) -> Result<(), Failure> {
    let doing = format!("reading table {name} of format 1");
    let mut puts = OrderedPuts::unsealed(table);
    for entry in table.iter_raw(old).doing(&doing)? {
        let (key, bytes) = entry.doing(&doing)?;
        let converted = convert(key, bytes);
        if converted.is_none() {
            upgraded.carried += 1;
        }
        puts.put(txn, key, converted.as_deref().unwrap_or(bytes), || {
            format!("writing table {name} in format {V2}")
        })?;
    }
    Ok(())
}

/// Refills tables `jobs`, `specs` and `splitters` from the format-1 job records: each
/// job's state, spec and splitter (if it has one) under its key. A record that does not
/// decode is carried over into table `jobs` as it was (so its job stays unreadable).
fn upgrade_jobs(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
) -> Result<(), Failure> {
    let doing = "reading table jobs of format 1";
    let mut jobs = OrderedPuts::unsealed(tables.jobs);
    let mut specs = OrderedPuts::unsealed(tables.specs);
    let mut splitters = OrderedPuts::unsealed(tables.splitters);
    let writing = |table: &str| format!("writing table {table} in format {V2}");
    for entry in tables.jobs.iter_raw(old).doing(doing)? {
        let (key, bytes) = entry.doing(doing)?;
        let job = keys::parse_job(key)
            .and_then(|id| v1::decode::<Job>(bytes).ok().filter(|j| j.id == id));
        let Some(job) = job else {
            upgraded.carried += 1;
            jobs.put(txn, key, bytes, || writing("jobs"))?;
            continue;
        };
        jobs.put(txn, key, &encode_state(&job), || writing("jobs"))?;
        specs.put(txn, key, &v2_spec(&job.spec), || writing("specs"))?;
        if let Some(splitter) = encode_splitter(job.spec.splitter.as_ref()) {
            splitters.put(txn, key, &splitter, || writing("splitters"))?;
        }
    }
    Ok(())
}

/// Refills table `active`: each entry gets its job's revision after its status byte. An
/// entry whose job does not decode (or whose value is not a status byte) is carried over
/// as it was; `check` reports it.
fn upgrade_active(tables: &Tables, old: &RoTxn, txn: &mut RwTxn) -> Result<(), Failure> {
    let doing = "reading table active of format 1";
    let mut active = OrderedPuts::unsealed(tables.active);
    for entry in tables.active.iter_raw(old).doing(doing)? {
        let (key, value) = entry.doing(doing)?;
        let revision = keys::parse_active(key).and_then(|(_, id)| {
            let bytes = tables.jobs.get_raw(old, &keys::job(id)).ok().flatten()?;
            v1::decode::<Job>(bytes).ok().map(|job| job.revision)
        });
        let status = match value {
            [byte] => Status::from_index(usize::from(*byte)),
            _ => None,
        };
        let upgraded = status.zip(revision).map(|(s, r)| encode_active(s, r));
        active.put(txn, key, upgraded.as_deref().unwrap_or(value), || {
            format!("writing table active in format {V2}")
        })?;
    }
    Ok(())
}

/// Refills table `subjobs` job by job: each job's records against a new dictionary
/// (written to table `dicts` after them) and its master's split items, gathered into
/// groups as they come (in key order, so a group is complete when the next begins).
fn upgrade_subjobs(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
) -> Result<(), Failure> {
    let doing = "reading table subjobs of format 1";
    let mut subjobs = OrderedPuts::unsealed(tables.subjobs);
    let mut dicts = OrderedPuts::unsealed(tables.dicts);
    // The job whose subjobs are being rewritten: its dictionary and its master's splitter.
    let mut current: Option<(JobId, Dictionary, Option<Splitter>)> = None;
    // The group being gathered.
    let mut pending: Option<Gathered> = None;
    let mut record = Vec::with_capacity(64);
    for entry in tables.subjobs.iter_raw(old).doing(doing)? {
        let (key, bytes) = entry.doing(doing)?;
        upgraded.subjobs += 1;
        let Some((job, index)) = v1::parse_subjob_key(key) else {
            // Not a subjob's key: carried over as it is, under the same key.
            upgraded.carried += 1;
            flush_group(&mut subjobs, txn, pending.take())?;
            subjobs.put(txn, key, bytes, || {
                format!("writing table subjobs in format {V2}")
            })?;
            continue;
        };
        let (dict, splitter) = match &mut current {
            Some((j, dict, splitter)) if *j == job => (dict, splitter),
            _ => {
                if let Some((j, dict, _)) = current.take() {
                    write_dictionary(&mut dicts, txn, j, &dict)?;
                }
                let master = tables
                    .jobs
                    .get_raw(old, &keys::job(job))
                    .doing("reading table jobs of format 1")?
                    .and_then(|bytes| v1::decode::<Job>(bytes).ok())
                    .filter(|m| m.id == job);
                let base = dictionary_base(tables, old, job, master.as_ref())?;
                let splitter = master.and_then(|m| m.spec.splitter.clone());
                let (_, dict, splitter) = current.insert((job, Dictionary::new(base), splitter));
                (dict, splitter)
            }
        };
        let converted = v1::decode::<Subjob>(bytes)
            .ok()
            .filter(|s| s.index == index)
            .map(|subjob| {
                let item = split_item(splitter.as_ref(), index);
                record.clear();
                encode_subjob(&subjob, dict, item.as_deref(), &mut record);
                record.clone()
            });
        let converted = converted.unwrap_or_else(|| {
            upgraded.carried += 1;
            bytes.to_vec()
        });
        let g = group_of(index);
        let at = (index - first_index(g)) as usize;
        match &mut pending {
            Some((j, pg, records)) if *j == job && *pg == g => records.push((at, converted)),
            _ => {
                flush_group(&mut subjobs, txn, pending.take())?;
                pending = Some((job, g, vec![(at, converted)]));
            }
        }
    }
    flush_group(&mut subjobs, txn, pending)?;
    if let Some((j, dict, _)) = current {
        write_dictionary(&mut dicts, txn, j, &dict)?;
    }
    Ok(())
}

/// A group of subjob records being gathered: its job, its number, its records by
/// position.
type Gathered = (JobId, u32, Vec<(usize, Vec<u8>)>);

/// Writes a gathered group of subjob records.
fn flush_group(
    subjobs: &mut OrderedPuts,
    txn: &mut RwTxn,
    group: Option<Gathered>,
) -> Result<(), Failure> {
    let Some((job, g, records)) = group else {
        return Ok(());
    };
    subjobs.put(
        txn,
        &keys::group(job, g),
        &group::splice(&[], &records),
        || format!("writing table subjobs in format {V2}"),
    )
}

/// Every job with subjob records gets a dictionary, even if none of them decoded (then
/// an empty one): a job with subjobs but no dictionary is damage that `check` reports.
fn write_dictionary(
    dicts: &mut OrderedPuts,
    txn: &mut RwTxn,
    job: JobId,
    dict: &Dictionary,
) -> Result<(), Failure> {
    dicts.put(txn, &keys::job(job), &dict.encode(), || {
        format!("writing the dictionary of job {job} to table dicts")
    })
}

/// As for new subjobs (see `commit`): the master's `new` time, else the earliest time of
/// the job's subjobs that decode, else zero.
fn dictionary_base(
    tables: &Tables,
    old: &RoTxn,
    job: JobId,
    master: Option<&Job>,
) -> Result<Timestamp, Failure> {
    if let Some(created) = master.and_then(|m| m.run.times.get(Status::New)) {
        return Ok(created);
    }
    let start = v1::subjob_key(job, 0);
    let end = v1::subjob_key(job, u32::MAX);
    let bounds = (
        std::ops::Bound::Included(&start[..]),
        std::ops::Bound::Included(&end[..]),
    );
    let doing = "reading table subjobs of format 1";
    let mut earliest: Option<Timestamp> = None;
    for entry in tables.subjobs.range_raw(old, &bounds).doing(doing)? {
        let (_, bytes) = entry.doing(doing)?;
        if let Ok(subjob) = v1::decode::<Subjob>(bytes)
            && let Some(first) = subjob.run.times.iter().map(|(_, t)| t).min()
        {
            earliest = Some(earliest.map_or(first, |e| e.min(first)));
        }
    }
    Ok(earliest.unwrap_or(Timestamp(0)))
}

/// A spec as format 2 kept it: its splitter's place `null` whether or not it has one.
fn v2_spec(spec: &ganga_core::JobSpec) -> Vec<u8> {
    encode_spec(&spec.without_splitter())
}

/// Rewrites a format-2 store in format 3: every value sealed with its checksum, each
/// spec saying whether its job has a splitter, and the index of active units made from
/// the jobs and subjobs. `old` is a snapshot of the state `txn` started from. `None` if
/// the store is no longer at format 2 (another process upgraded it).
///
/// A record that does not decode is carried over as it was (sealed: it stays reported
/// as unreadable, by what reads it); a unit whose record does not decode gets no entry in
/// the index (`check` reports the record).
pub(crate) fn from_v2(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
) -> Result<Option<Upgraded>, Failure> {
    match tables.format_version(txn)? {
        Some(V2) => {}
        Some(FORMAT_VERSION) => return Ok(None),
        other => {
            return Err(StoreError::Io(format!(
                "cannot upgrade from format version {other:?}: only version {V2} can be"
            ))
            .into());
        }
    }
    let mut upgraded = Upgraded::default();
    copy_sealed(tables, old, txn)?;
    rewrite_dictionaries(tables, old, txn, &mut upgraded)?;
    rewrite_specs(tables, old, txn, &mut upgraded)?;
    index_active_units(tables, old, txn, &mut upgraded)?;
    let next = tables
        .meta
        .get_raw(old, keys::META_NEXT_JOB_ID)?
        .ok_or_else(|| {
            StoreError::Io("table meta has no next_job_id: the store is damaged".to_owned())
        })?
        .to_vec();
    tables.meta.put(txn, keys::META_NEXT_JOB_ID, &next)?;
    tables.meta.put(
        txn,
        keys::META_FORMAT_VERSION,
        &FORMAT_VERSION.to_be_bytes(),
    )?;
    Ok(Some(upgraded))
}

/// Every table cleared, and those whose values keep their format copied back sealed.
fn copy_sealed(tables: &Tables, old: &RoTxn, txn: &mut RwTxn) -> Result<(), Failure> {
    for table in [
        tables.jobs,
        tables.specs,
        tables.splitters,
        tables.dicts,
        tables.subjobs,
        tables.summaries,
        tables.active,
        tables.units,
    ] {
        table.clear(txn)?;
    }
    for table in [
        tables.jobs,
        tables.splitters,
        tables.subjobs,
        tables.summaries,
        tables.active,
    ] {
        let mut puts = OrderedPuts::new(table);
        for entry in table.iter_raw(old)? {
            let (key, value) = entry.doing("reading a table of format 2")?;
            puts.put(txn, key, value, || {
                format!("writing table {} in format {FORMAT_VERSION}", table.name)
            })?;
        }
    }
    Ok(())
}

/// Dictionaries, with the indices of their job's subjob records.
fn rewrite_dictionaries(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
) -> Result<(), Failure> {
    let mut dicts = OrderedPuts::new(tables.dicts);
    for entry in tables.dicts.iter_raw(old)? {
        let (key, value) = entry.doing("reading table dicts of format 2")?;
        let rewritten = match (keys::parse_job(key), crate::codec::decode_dictionary(value)) {
            (Some(id), Ok(dict)) => {
                let mut indices = crate::indices::Indices::default();
                for (g, slots) in readable_groups(tables, old, id)? {
                    for (k, record) in slots.iter().enumerate() {
                        if record.is_some() {
                            indices.insert(first_index(g) + k as u32);
                        }
                    }
                }
                crate::codec::encode_dict_record(&dict, &indices)
            }
            _ => {
                upgraded.carried += 1;
                value.to_vec()
            }
        };
        dicts.put(txn, key, &rewritten, || {
            format!("writing table dicts in format {FORMAT_VERSION}")
        })?;
    }
    Ok(())
}

/// Specs: `true` in the splitter's place for a job that has one.
fn rewrite_specs(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
) -> Result<(), Failure> {
    let mut specs = OrderedPuts::new(tables.specs);
    let marker = Splitter::Generic {
        attributes: Vec::new(),
    };
    for entry in tables.specs.iter_raw(old)? {
        let (key, value) = entry.doing("reading table specs of format 2")?;
        let has_splitter = tables.splitters.get_raw(old, key)?.is_some();
        let rewritten = match ganga_records::decode_spec(value) {
            Ok(mut spec) => {
                if has_splitter {
                    spec.splitter = Some(marker.clone());
                }
                encode_spec(&spec)
            }
            Err(_) => {
                upgraded.carried += 1;
                value.to_vec()
            }
        };
        specs.put(txn, key, &rewritten, || {
            format!("writing table specs in format {FORMAT_VERSION}")
        })?;
    }
    Ok(())
}

/// The index of active units, job by job.
fn index_active_units(
    tables: &Tables,
    old: &RoTxn,
    txn: &mut RwTxn,
    upgraded: &mut Upgraded,
) -> Result<(), Failure> {
    for entry in tables.jobs.iter_raw(old)? {
        let (key, value) = entry.doing("reading table jobs of format 2")?;
        upgraded.jobs += 1;
        let (Some(id), Ok(state)) = (keys::parse_job(key), crate::codec::decode_state(value))
        else {
            continue;
        };
        let backend = tables
            .specs
            .get_raw(old, key)?
            .and_then(|bytes| ganga_records::decode_spec(bytes).ok())
            .map(|spec| spec.backend.kind);
        let Some(backend) = backend else { continue };
        if state.subjobs.is_empty() {
            if state.run.status.is_active() {
                let mut entry = Vec::with_capacity(48);
                ganga_records::encode_unit_entry(&state.run, &mut entry);
                tables.units.put(
                    txn,
                    &keys::unit(&backend, ganga_core::JobRef::job(id)),
                    &entry,
                )?;
                upgraded.units += 1;
            }
            continue;
        }
        let Some(Ok(dict)) = tables
            .dicts
            .get_raw(old, key)?
            .map(crate::codec::decode_dictionary)
        else {
            continue;
        };
        for (g, slots) in readable_groups(tables, old, id)? {
            for (k, record) in slots.iter().enumerate() {
                let Some(record) = record else { continue };
                upgraded.subjobs += 1;
                let Ok((run, _)) = ganga_records::decode_subjob_run(record, &dict) else {
                    continue;
                };
                if run.status.is_active() {
                    let unit = ganga_core::JobRef::subjob(id, first_index(g) + k as u32);
                    let mut entry = Vec::with_capacity(48);
                    ganga_records::encode_unit_entry(&run, &mut entry);
                    tables.units.put(txn, &keys::unit(&backend, unit), &entry)?;
                    upgraded.units += 1;
                }
            }
        }
    }
    Ok(())
}

/// The groups of subjob records of job `id` in the format-2 snapshot that decode, with
/// their numbers (one that does not is left for `check` to report).
fn readable_groups<'t>(
    tables: &Tables,
    old: &'t RoTxn,
    id: JobId,
) -> Result<Vec<(u32, group::Slots<'t>)>, Failure> {
    let first = keys::group(id, 0);
    let last = keys::group(id, u32::MAX);
    let bounds = (
        std::ops::Bound::Included(&first[..]),
        std::ops::Bound::Included(&last[..]),
    );
    let mut out = Vec::new();
    for group in tables.subjobs.range_raw(old, &bounds)? {
        let (key, value) = group.doing("reading table subjobs of format 2")?;
        if let (Some((_, g)), Ok(slots)) = (keys::parse_group(key), group::parse(value)) {
            out.push((g, slots));
        }
    }
    Ok(out)
}
