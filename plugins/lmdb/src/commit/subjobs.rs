//! The subjobs of a commit: their records written group by group against their job's
//! dictionary and their master's split items, and the records re-spelt when a master's
//! splitter changes under them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ganga_core::{
    Change, JobId, JobRef, Override, Splitter, Status, StoreError, Subjob, SubjobIndex, Timestamp,
};
use ganga_records::{Dictionary, encode_subjob, split_items_of_encoded};
use heed::{RoTxn, RwTxn};

use crate::codec::{decode_dict_record, decode_subjob, split_item, split_len};
use crate::env::Tables;
use crate::error::{Doing, Failure};
use crate::group::{self, GROUP_SIZE, first_index, group_of, last_index};
use crate::indices::Indices;
use crate::parts::get;

use crate::{keys, trim};

use super::{OpenDictionary, Puts};

/// What the subjobs of a put are written against: their split items.
pub(super) enum Items<'a> {
    /// The master's splitter as this commit puts it.
    Splitter(Option<&'a Splitter>),
    /// The items of the subjobs put, read from the stored splitter (a run update).
    Picked(BTreeMap<SubjobIndex, Vec<Override>>),
}

impl Items<'_> {
    fn item(&self, index: SubjobIndex) -> Option<Vec<Override>> {
        match self {
            Items::Splitter(splitter) => split_item(*splitter, index),
            Items::Picked(items) => items.get(&index).cloned(),
        }
    }
}

/// The split items of `subjobs` in the splitter stored for `job`, read without decoding
/// the others (a master of thousands of argument lists has a few subjobs written at a
/// time). A splitter that does not decode refuses the commit: what its records leave out
/// is unknown.
pub(super) fn stored_items(
    tables: &Tables,
    txn: &RoTxn,
    job: JobId,
    subjobs: &[Subjob],
) -> Result<BTreeMap<SubjobIndex, Vec<Override>>, Failure> {
    match get(
        tables.splitters,
        txn,
        &keys::job(job),
        "reading table splitters",
    )? {
        None => Ok(BTreeMap::new()),
        Some(bytes) => {
            let indices: BTreeSet<SubjobIndex> = subjobs.iter().map(|s| s.index).collect();
            split_items_of_encoded(bytes, &indices).map_err(|detail| {
                StoreError::Corrupt {
                    job: JobRef::job(job),
                    detail: format!(
                        "table splitters: {detail}; the subjobs of job {job} cannot be written \
                     against it, remove the job instead"
                    ),
                }
                .into()
            })
        }
    }
}

/// Encodes subjobs against their job's dictionary (read or made once per commit, growing
/// as new strings come) and their master's split items, and splices them into their
/// groups: each group touched is read and written once, the records already in it
/// copied as they are. Of two puts of one index, the later wins.
#[allow(clippy::too_many_arguments)]
pub(super) fn put_subjobs(
    tables: &Tables,
    txn: &mut RwTxn,
    puts: &mut Puts,
    dicts: &mut BTreeMap<JobId, OpenDictionary>,
    changes: &[Change],
    job: JobId,
    subjobs: &[Subjob],
    items: &Items,
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
        if let Some(indices) = &mut open.indices
            && indices.insert(subjob.index)
        {
            open.indices_changed = true;
        }
        let item = items.item(subjob.index);
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
        match get(tables.subjobs, txn, &key, "reading table subjobs")? {
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
pub(super) fn respell_split_items(
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
        trim::scanned(key);
        if let Some((_, g)) = keys::parse_group(key) {
            groups.push(g);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let open = match dicts.entry(job) {
        Entry::Occupied(open) => open.into_mut(),
        Entry::Vacant(vacant) => {
            match get(tables.dicts, txn, &keys::job(job), "reading table dicts")?
                .map(decode_dict_record)
            {
                Some(Ok((dict, indices))) => vacant.insert(OpenDictionary::stored(dict, indices)),
                None | Some(Err(_)) => return Ok(()),
            }
        }
    };
    for g in groups {
        let key = keys::group(job, g);
        let Some(stored) = get(tables.subjobs, txn, &key, "reading table subjobs")? else {
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
        match get(tables.dicts, txn, &keys::job(job), "reading table dicts")? {
            Some(bytes) => {
                let (dict, indices) =
                    decode_dict_record(bytes).map_err(|detail| StoreError::Corrupt {
                        job: JobRef::job(job),
                        detail: format!(
                            "table dicts: {detail}; the subjobs of job {job} cannot be written \
                             against it, remove the job instead"
                        ),
                    })?;
                OpenDictionary::stored(dict, indices)
            }
            None => OpenDictionary {
                dict: Dictionary::new(dictionary_base(changes, job, subjobs)),
                stored_len: None,
                indices: Some(Indices::default()),
                indices_changed: true,
            },
        },
    )
}

/// The base time of a new dictionary: the master's `new` time (the commit puts the master
/// too, or updates its run, see `check_shape`), or else the earliest time of the subjobs.
/// Every time of the job's subjobs is stored as a delta from it, and it never changes
/// afterwards.
fn dictionary_base(changes: &[Change], job: JobId, subjobs: &[Subjob]) -> Timestamp {
    let master_created = changes.iter().find_map(|c| match c {
        Change::PutJob(j) if j.id == job => j.run.times.get(Status::New),
        Change::PutRun(u) if u.job == job => u.run.times.get(Status::New),
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
