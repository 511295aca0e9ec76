//! [`LmdbStore`]: the [`Store`] trait over the tables of [`crate::env`].

use std::fmt;
use std::ops::{Bound, Range};
use std::path::Path;
use std::sync::Arc;

use ganga_core::{
    ActiveJob, ActiveUnit, Change, CheckReport, Committed, Job, JobId, JobRef, Store,
    StoreDescription, StoreError, Subjob, SubjobIndex, SummaryEntry, UnitCursor, UnitUpdate,
    UnitsUpdated,
};
use ganga_records::{JobRecord, RecordChanges, RecordStore, SubjobBatch};

use crate::codec::{FORMAT_VERSION, decode_active, decode_dict_record, decode_summary, unreadable};
use crate::env::{DEFAULT_MAP_SIZE, ReadStats, SharedEnv};
use crate::error::Doing;
use crate::error::Failure;
use crate::group::{self, first_index, group_of, last_index};
use crate::{check, commit, dump, keys, parts, trim, units};

/// How to open a store. The defaults suit real use; tests shrink the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmdbOptions {
    initial_map_size: usize,
    trim_threshold: u64,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            initial_map_size: DEFAULT_MAP_SIZE,
            trim_threshold: trim::DEFAULT_THRESHOLD,
        }
    }
}

impl LmdbOptions {
    pub fn new() -> LmdbOptions {
        LmdbOptions::default()
    }

    /// The map size a new environment starts with (64 MiB by default), rounded up to a
    /// multiple of 64 KiB. The map doubles whenever it fills, so this only sets how soon.
    /// An environment already open in this process keeps its size.
    pub fn initial_map_size(mut self, bytes: usize) -> LmdbOptions {
        self.initial_map_size = bytes;
        self
    }

    /// How many bytes of the store this process reads before it lets the pages of the
    /// memory map go (8 MiB by default, counted as [`crate::ReadStats`] says; `u64::MAX` never does): LMDB reads through a map
    /// of the data file, whose pages otherwise stay resident in the process. An
    /// environment already open in this process keeps its threshold.
    pub fn trim_threshold(mut self, bytes: u64) -> LmdbOptions {
        self.trim_threshold = bytes;
        self
    }
}

/// What a store takes on disk: its data file, and the pages of each table. For
/// measuring the format (`docs/storage-format.md`, the benchmarks); reading it costs a
/// read transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpace {
    /// LMDB's page size (the operating system's, 4096 bytes on most machines).
    pub page_size: u32,
    /// The apparent size of `data.mdb`.
    pub file_bytes: u64,
    /// Pages up to the last one in use: every table's, LMDB's own (two meta pages, the
    /// table of tables) and the free pages that later commits will reuse.
    pub used_pages: u64,
    pub tables: Vec<TableSpace>,
}

impl StoreSpace {
    pub fn table(&self, name: &str) -> Option<&TableSpace> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Bytes of the pages that hold records of the tables (their B-trees).
    pub fn table_bytes(&self) -> u64 {
        self.tables.iter().map(TableSpace::pages).sum::<u64>() * u64::from(self.page_size)
    }
}

/// The B-tree of one table (`mdb_stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpace {
    pub name: &'static str,
    pub entries: u64,
    pub depth: u32,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
}

impl TableSpace {
    pub fn pages(&self) -> u64 {
        self.branch_pages + self.leaf_pages + self.overflow_pages
    }
}

/// How many records of each part of a job commits wrote (`LmdbStore::record_writes`).
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordWrites {
    pub states: u64,
    pub specs: u64,
    pub splitters: u64,
}

/// Jobs kept in an LMDB environment in one directory.
///
/// Cheap to clone; every handle of this process on one directory shares one LMDB
/// environment (LMDB forbids opening it twice in a process). Other processes may open the
/// same directory at the same time: LMDB lets them read while one writes.
#[derive(Clone)]
pub struct LmdbStore {
    shared: Arc<SharedEnv>,
}

impl fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl LmdbStore {
    /// Opens the store in `dir`, creating the directory and the store if needed.
    pub fn open(dir: &Path) -> Result<LmdbStore, StoreError> {
        LmdbStore::open_with(dir, &LmdbOptions::default())
    }

    pub fn open_with(dir: &Path, options: &LmdbOptions) -> Result<LmdbStore, StoreError> {
        Ok(LmdbStore {
            shared: SharedEnv::open(dir, options.initial_map_size, options.trim_threshold)?,
        })
    }

    /// The store's directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The current size of the memory map, in bytes.
    pub fn map_size(&self) -> usize {
        self.shared.map_size()
    }

    /// What the store takes on disk, table by table.
    pub fn space(&self) -> Result<StoreSpace, StoreError> {
        self.shared.space()
    }

    /// How much of the store this process read, and how often it let the pages of the
    /// map go (see [`LmdbOptions::trim_threshold`]).
    pub fn read_stats(&self) -> ReadStats {
        self.shared.read_stats()
    }
}

/// Hooks for tests that need to damage a store or hold a transaction open: only with the
/// `test-hooks` feature, which nothing users run turns on.
#[cfg(feature = "test-hooks")]
impl LmdbStore {
    /// Writes a record into a table (`meta`, `jobs`, `specs`, `splitters`, `dicts`,
    /// `subjobs`, `summaries`, `active`, `units`) with a valid checksum, bypassing every
    /// other check: for tests of what the store makes of records that do not decode. A
    /// `subjobs` key is a job id and a group number.
    pub fn raw_put(&self, table: &str, key: &[u8], body: &[u8]) -> Result<(), StoreError> {
        let db = self.raw_table(table)?;
        self.shared.write(|_, txn| db.put(txn, key, body))
    }

    /// Writes bytes into a table as they are, without a checksum: they read as damaged.
    pub fn raw_put_unsealed(
        &self,
        table: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let db = self.raw_table(table)?;
        self.shared.write(|_, txn| db.put_raw(txn, key, value))
    }

    /// Reads a record, its checksum checked and left off.
    pub fn raw_get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.raw_table(table)?;
        self.shared
            .read(|_, txn| Ok(db.get(txn, key)?.map(<[u8]>::to_vec)))
    }

    /// Reads the bytes of a record as stored, its checksum included, unchecked.
    pub fn raw_get_stored(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.raw_table(table)?;
        self.shared
            .read(|_, txn| Ok(db.get_raw(txn, key)?.map(<[u8]>::to_vec)))
    }

    /// Deletes a key from a table, bypassing every check. Returns whether it existed.
    pub fn raw_delete(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        let db = self.raw_table(table)?;
        self.shared.write(|_, txn| db.delete(txn, key))
    }

    /// Applies `changes` in a write transaction, runs `during` while it is still open,
    /// then aborts it: nothing is written.
    pub fn with_uncommitted<R>(
        &self,
        changes: &[Change],
        during: impl FnOnce() -> R,
    ) -> Result<R, StoreError> {
        self.shared.write_uncommitted(
            |tables, txn| commit::apply(tables, txn, commit::Commit::Changes(changes)),
            |_| during(),
        )
    }

    /// How many job states, specs and splitters this process's commits wrote to the
    /// store.
    pub fn record_writes(&self) -> RecordWrites {
        self.shared.tables.writes.get()
    }

    fn raw_table(&self, name: &str) -> Result<crate::env::Table, StoreError> {
        self.shared.tables.by_name(name).ok_or_else(|| {
            StoreError::Invalid(format!(
                "no table {name:?} (tables: {})",
                crate::env::TABLE_NAMES.join(", ")
            ))
        })
    }
}

impl Store for LmdbStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            name: "lmdb".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            format_version: FORMAT_VERSION,
            location: self.shared.dir.display().to_string(),
        })
    }

    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
        self.shared.write(|tables, txn| {
            let first = tables.next_job_id(txn)?;
            let next = first.checked_add(n).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "cannot reserve {n} more job ids after {first}: ids would overflow"
                ))
            })?;
            tables.set_next_job_id(txn, next)?;
            Ok(first)
        })
    }

    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.shared
            .write(|tables, txn| commit::apply(tables, txn, commit::Commit::Changes(changes)))
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.shared.read(|tables, txn| {
            let Some(parts) = parts::stored(tables, txn, id)? else {
                return Ok(None);
            };
            let job = parts.join(id).map_err(|detail| StoreError::Corrupt {
                job: JobRef::job(id),
                detail,
            })?;
            Ok(Some(job))
        })
    }

    fn subjobs(&self, job: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        let batch = self.subjob_batch(job, range)?;
        batch.unpack().map_err(|(index, error)| {
            let record = batch
                .records()
                .find(|(i, _)| *i == index)
                .map_or(&[][..], |(_, r)| r);
            StoreError::Corrupt {
                job: JobRef::subjob(job, index),
                detail: format!("table subjobs: {}", unreadable(record, &error)),
            }
        })
    }

    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared.read(|tables, txn| {
            let start = keys::job(from);
            let bounds = (Bound::Included(&start[..]), Bound::Unbounded);
            let mut entries = Vec::new();
            for entry in tables.summaries.range(txn, &bounds)? {
                let (key, bytes) = match entry {
                    Ok(kv) => kv,
                    // Listed as unreadable, as a record that does not decode is.
                    Err(Failure::Damaged { key, detail, .. }) => {
                        match keys::parse_job(&key) {
                            Some(id) => entries.push(SummaryEntry::Unreadable {
                                id,
                                error: format!(
                                    "table summaries: {detail}; {}",
                                    crate::error::RESTORE
                                ),
                            }),
                            None => {
                                return Err(StoreError::Io(format!(
                                    "table summaries: {detail}; {}",
                                    crate::error::RESTORE
                                ))
                                .into());
                            }
                        }
                        if entries.len() >= limit as usize {
                            break;
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let Some(id) = keys::parse_job(key) else {
                    // Not a job's key at all: nothing to list it as; `check` reports it.
                    tracing::warn!(key = %dump::hex(key), "skipping a malformed summaries key");
                    continue;
                };
                entries.push(match decode_summary(id, bytes) {
                    Ok(summary) => SummaryEntry::Readable(summary),
                    Err(error) => SummaryEntry::Unreadable {
                        id,
                        error: format!("table summaries: {error}"),
                    },
                });
                if entries.len() >= limit as usize {
                    break;
                }
            }
            Ok(entries)
        })
    }

    fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
        self.shared.read(|tables, txn| {
            let mut active = Vec::new();
            for entry in tables.active.iter(txn).doing("reading table active")? {
                let (key, value) = entry.doing("reading table active")?;
                trim::scanned(value);
                match keys::parse_active(key).zip(decode_active(value)) {
                    Some(((backend, id), (status, revision))) => active.push(ActiveJob {
                        id,
                        backend: backend.to_owned(),
                        status,
                        revision,
                    }),
                    // Its checksum matched, so this store wrote it: a bug, not damage.
                    // Never skipped: a job left out would never be looked at again.
                    None => {
                        return Err(StoreError::Io(format!(
                            "table active: the entry {} = {} is not a backend, job id, \
                             status and revision",
                            dump::hex(key),
                            dump::hex(value)
                        ))
                        .into());
                    }
                }
            }
            // The index is grouped by backend; callers want jobs in id order.
            active.sort_by_key(|a| a.id);
            Ok(active)
        })
    }

    fn active_units(
        &self,
        after: Option<&UnitCursor>,
        limit: u32,
    ) -> Result<Vec<ActiveUnit>, StoreError> {
        self.shared
            .read(|tables, txn| units::active_units(tables, txn, after, limit))
    }

    fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        if updates.is_empty() {
            return Ok(UnitsUpdated::default());
        }
        self.shared
            .write(|tables, txn| units::update_units(tables, txn, updates))
    }

    /// LMDB's compacted copy (`mdb_env_copy2` with `MDB_CP_COMPACT`) from one read
    /// snapshot, so writers go on meanwhile, into `dest/data.mdb`, with the marker that
    /// says a store lives there.
    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!(
                "{} already exists: a backup goes into a new directory",
                dest.display()
            )));
        }
        std::fs::create_dir_all(dest)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dest.display())))?;
        let result = self
            .shared
            .copy_to(&dest.join("data.mdb"))
            .and_then(|()| crate::datafile::mark(dest));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dest);
        }
        result
    }

    fn check(&self) -> Result<CheckReport, StoreError> {
        self.shared.read(check::check)
    }

    fn dump(&self) -> Result<String, StoreError> {
        self.shared.read(dump::dump)
    }
}

/// What crosses the plugin boundary and what the cache holds: the records as stored.
impl RecordStore for LmdbStore {
    /// A commit whose job puts came with their records (from the host, which encoded
    /// them): those records are written as they came, the state with its revision bumped
    /// in place, so a job is never encoded again here.
    fn commit_records(&self, changes: &RecordChanges) -> Result<Vec<Committed>, StoreError> {
        if changes.changes().is_empty() {
            return Ok(Vec::new());
        }
        self.shared
            .write(|tables, txn| commit::apply(tables, txn, commit::Commit::Sent(changes)))
    }

    /// The job's three records as they are stored, undecoded: the caller decodes them
    /// (and finds any damage) once, across the plugin boundary too.
    fn job_record(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.shared.read(|tables, txn| {
            let Some(parts) = parts::stored(tables, txn, id)? else {
                return Ok(None);
            };
            let Some(spec) = parts.spec else {
                return Err(StoreError::Corrupt {
                    job: JobRef::job(id),
                    detail: format!("table specs: job {id} has no spec"),
                }
                .into());
            };
            Ok(Some(JobRecord {
                state: parts.state.to_vec().into(),
                spec: spec.to_vec().into(),
                splitter: parts.splitter.map(|b| b.to_vec().into()),
            }))
        })
    }

    /// The stored records as they are, with the job's dictionary and its master's
    /// splitter as stored (for the records that leave their overrides out): nothing is
    /// decoded but the dictionary, so a record that does not decode (or that needs a
    /// splitter that does not) is reported (as `Corrupt`, for its subjob) only when the
    /// batch is unpacked. A group whose framing does not decode
    /// makes the range `Corrupt` at once, naming its first subjob in the range.
    fn subjob_batch(
        &self,
        job: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<SubjobBatch, StoreError> {
        if range.is_empty() {
            return Ok(SubjobBatch::default());
        }
        self.shared.read(|tables, txn| {
            // The dictionary, read first: it also says which records the range holds.
            let stored = parts::get(tables.dicts, txn, &keys::job(job), "reading table dicts")?;
            let dict = match stored {
                None => None,
                Some(bytes) => {
                    Some(decode_dict_record(bytes).map_err(|d| StoreError::Corrupt {
                        job: JobRef::subjob(job, range.start),
                        detail: format!("table dicts: the dictionary of job {job}: {d}"),
                    })?)
                }
            };
            let first_group = group_of(range.start);
            let start = keys::group(job, first_group);
            let end = keys::group_of_subjob(job, range.end - 1);
            let bounds = (Bound::Included(&start[..]), Bound::Included(&end[..]));
            let mut records: Vec<(SubjobIndex, &[u8])> = Vec::new();
            for entry in tables.subjobs.range(txn, &bounds)? {
                let (key, value) = entry?;
                // Every key in the range is one of this job's groups.
                let g = keys::parse_group(key).map_or(first_group, |(_, g)| g);
                let slots = group::parse(value).map_err(|detail| StoreError::Corrupt {
                    job: JobRef::subjob(job, first_index(g).max(range.start)),
                    detail: format!(
                        "table subjobs: the group of subjobs {job}.{}–{job}.{} does not \
                         decode: {detail}",
                        first_index(g),
                        last_index(g)
                    ),
                })?;
                for (k, record) in slots.into_iter().enumerate() {
                    let index = first_index(g) + k as u32;
                    if let Some(record) = record.filter(|_| range.contains(&index)) {
                        records.push((index, record));
                    }
                }
            }
            let Some((dict, indices)) = dict else {
                return match records.first() {
                    None => Ok(SubjobBatch::default()),
                    Some(&(first, _)) => Err(StoreError::Corrupt {
                        job: JobRef::subjob(job, first),
                        detail: format!(
                            "table dicts: job {job} has subjob records but no dictionary, so \
                             none of them can be read"
                        ),
                    }
                    .into()),
                };
            };
            // The records found must be those the job has: a group hidden by damage is
            // reported, never read as subjobs that do not exist.
            if let Some(indices) = &indices {
                let mut found = records.iter().map(|(i, _)| *i);
                for expected in indices.within(range.clone()) {
                    match found.next() {
                        Some(i) if i == expected => {}
                        other => {
                            let unit = other.map_or(expected, |i| i.min(expected));
                            return Err(StoreError::Corrupt {
                                job: JobRef::subjob(job, unit),
                                detail: format!(
                                    "table subjobs: job {job} has a record of subjob \
                                     {job}.{expected} that was not found{}: {}",
                                    other.map_or(String::new(), |i| format!(
                                        " (found {job}.{i} instead)"
                                    )),
                                    crate::error::RESTORE
                                ),
                            }
                            .into());
                        }
                    }
                }
                if let Some(extra) = found.next() {
                    return Err(StoreError::Corrupt {
                        job: JobRef::subjob(job, extra),
                        detail: format!(
                            "table subjobs: a record of subjob {job}.{extra} was found, which \
                             job {job} does not have: {}",
                            crate::error::RESTORE
                        ),
                    }
                    .into());
                }
            }
            if records.is_empty() {
                return Ok(SubjobBatch::default());
            }
            let mut batch = SubjobBatch::with_dictionary(dict);
            for (index, record) in records {
                batch.push_record(index, record);
            }
            // Attached as stored, decoded only if a record needs it. A master without a
            // splitter gives none: the records that need one are reported when decoded.
            if let Some(splitter) = parts::get(
                tables.splitters,
                txn,
                &keys::job(job),
                "reading table splitters",
            )? {
                batch.set_splitter_bytes(splitter.to_vec());
            }
            Ok(batch)
        })
    }
}
