//! The LMDB environment of one store directory: opened once per process, its tables, and
//! the transactions everything else runs in (with map growth and adoption of a map grown
//! by another process).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use ganga_core::{JobId, StoreError};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::codec::FORMAT_VERSION;
use crate::error::{Doing, Failure};
use crate::{datafile, keys, trim, upgrade, v1};

/// Every table maps bytes to bytes: keys are laid out by [`keys`], values are decoded by
/// the store, so that an undecodable record is reported for its job alone; every value
/// ends with its checksum ([`crate::table`]).
pub(crate) use crate::table::Table;

/// The named databases of a store.
pub(crate) struct Tables {
    /// Format version and next job id.
    pub(crate) meta: Table,
    /// Job id -> the job's state (`ganga_records::encode_state`): revision, run state, subjob
    /// counters, metadata. Rewritten by every change of status.
    pub(crate) jobs: Table,
    /// Job id -> the job's spec without its splitter (`ganga_records::encode_spec`), for every
    /// job. Rewritten only when the spec changes.
    pub(crate) specs: Table,
    /// Job id -> the job's splitter (`ganga_records::encode_splitter`), only for jobs that have
    /// one. Rewritten only when it changes.
    pub(crate) splitters: Table,
    /// Job id -> the job's `Dictionary`, for each job that has subjobs.
    pub(crate) dicts: Table,
    /// Job id ++ group number -> a group of compact `Subjob` records (`crate::group`),
    /// against the job's dictionary and its master's split items.
    pub(crate) subjobs: Table,
    /// Job id -> compact `JobSummary` record, always `JobSummary::of` the job record.
    pub(crate) summaries: Table,
    /// Backend ++ 0 ++ job id -> status byte ++ revision (`codec::encode_active`), for
    /// exactly the jobs whose status is active.
    pub(crate) active: Table,
    /// Backend ++ 0 ++ job id [++ subjob index] -> `ganga_records::UnitEntry`, for exactly the
    /// units (jobs without subjobs, subjobs) whose status is active.
    pub(crate) units: Table,
    /// How many job parts commits wrote.
    pub(crate) writes: PartWrites,
}

/// How many times commits of this process wrote each part of a job (counted as they are
/// put, in transactions that may yet be aborted). For tests.
#[derive(Default)]
pub(crate) struct PartWrites {
    pub(crate) states: AtomicU64,
    pub(crate) specs: AtomicU64,
    pub(crate) splitters: AtomicU64,
}

impl PartWrites {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn get(&self) -> crate::store::RecordWrites {
        crate::store::RecordWrites {
            states: self.states.load(Ordering::Relaxed),
            specs: self.specs.load(Ordering::Relaxed),
            splitters: self.splitters.load(Ordering::Relaxed),
        }
    }
}

pub(crate) const TABLE_NAMES: [&str; 9] = [
    "meta",
    "jobs",
    "specs",
    "splitters",
    "dicts",
    "subjobs",
    "summaries",
    "active",
    "units",
];

/// The tables each format version has.
fn tables_of(version: u32) -> &'static [&'static str] {
    match version {
        1 => &["meta", "jobs", "subjobs", "summaries", "active"],
        2 => &TABLE_NAMES[..8],
        _ => &TABLE_NAMES,
    }
}

impl Tables {
    pub(crate) fn by_name(&self, name: &str) -> Option<Table> {
        Some(match name {
            "meta" => self.meta,
            "jobs" => self.jobs,
            "specs" => self.specs,
            "splitters" => self.splitters,
            "dicts" => self.dicts,
            "subjobs" => self.subjobs,
            "summaries" => self.summaries,
            "active" => self.active,
            "units" => self.units,
            _ => return None,
        })
    }

    /// The format version recorded in `meta`, if any: four bytes in formats 1 and 2,
    /// sealed with a checksum from format 3 on.
    pub(crate) fn format_version(&self, txn: &RoTxn) -> Result<Option<u32>, Failure> {
        format_version(self.meta, txn)
    }

    pub(crate) fn next_job_id(&self, txn: &RoTxn) -> Result<JobId, Failure> {
        let bytes = self.meta.get(txn, keys::META_NEXT_JOB_ID)?.ok_or_else(|| {
            StoreError::Io("table meta has no next_job_id: the store is damaged".to_owned())
        })?;
        keys::parse_job(bytes).map(Ok).unwrap_or_else(|| {
            Err(StoreError::Io(format!(
                "table meta: next_job_id is {} bytes long, expected 8: the store is damaged",
                bytes.len()
            ))
            .into())
        })
    }

    pub(crate) fn set_next_job_id(&self, txn: &mut RwTxn, next: JobId) -> Result<(), Failure> {
        self.meta.put(txn, keys::META_NEXT_JOB_ID, &keys::job(next))
    }
}

fn format_version(meta: Table, txn: &RoTxn) -> Result<Option<u32>, Failure> {
    let Some(value) = meta.get_raw(txn, keys::META_FORMAT_VERSION)? else {
        return Ok(None);
    };
    let bytes = if value.len() == 4 {
        value
    } else {
        crate::table::open(meta.name, keys::META_FORMAT_VERSION, value).map_err(|detail| {
            Failure::Damaged {
                table: "meta",
                key: keys::META_FORMAT_VERSION.to_vec(),
                detail,
            }
        })?
    };
    let bytes: [u8; 4] = bytes.try_into().map_err(|_| {
        StoreError::Io(format!(
            "table meta: format_version is {} bytes long, expected 4: the store is damaged",
            bytes.len()
        ))
    })?;
    Ok(Some(u32::from_be_bytes(bytes)))
}

/// The first map size of a new environment, unless the caller chooses one.
pub(crate) const DEFAULT_MAP_SIZE: usize = 64 << 20;

/// Map sizes are kept multiples of this, which is a multiple of every common page size
/// (4 KiB, 16 KiB, 64 KiB): LMDB wants a multiple of the OS page size.
const MAP_SIZE_GRANULE: usize = 64 << 10;

/// Growth stops here rather than doubling forever on a runaway writer.
const MAX_MAP_SIZE: usize = 1 << 40;

/// How often one operation may grow or adopt the map before giving up.
const MAX_ATTEMPTS: u32 = 48;

/// Six for the tables, the rest for later formats' tables (LMDB fixes this at open).
const MAX_DBS: u32 = 16;

pub(crate) fn round_map_size(size: usize) -> usize {
    size.max(MAP_SIZE_GRANULE).div_ceil(MAP_SIZE_GRANULE) * MAP_SIZE_GRANULE
}

/// An open store directory. Shared by every [`crate::LmdbStore`] of this process on that
/// directory: LMDB forbids opening one environment twice in a process, and the
/// [`Self::gate`] must cover every transaction of the process for a resize to be safe.
pub(crate) struct SharedEnv {
    env: Env<WithoutTls>,
    pub(crate) tables: Tables,
    /// The canonical path of the directory.
    pub(crate) dir: PathBuf,
    /// Held shared by every transaction for its whole life, and exclusively to resize the
    /// map: `mdb_env_set_mapsize` requires that no transaction of this process is open.
    /// It is never held across calls, so other processes are never kept waiting by it.
    gate: RwLock<()>,
    /// How much of the map this process read since it last let the pages go.
    reads: Reads,
    /// Where the map of `data.mdb` is, to keep reads of damaged entries inside the file.
    bounds: Arc<crate::bounds::MapBounds>,
}

/// Reads of the map, and trims of it ([`crate::trim`]).
struct Reads {
    /// Trim once this many bytes were read since the last trim.
    threshold: u64,
    since_trim: AtomicU64,
    /// Bytes counted since the store was opened.
    total: AtomicU64,
    trims: AtomicU64,
    /// A trim failed (the map could not be found): no more are tried.
    disabled: AtomicBool,
}

/// What the store read and trimmed (for tests and measurements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStats {
    /// Bytes of the map read since the store was opened in this process, counted as what
    /// the reads may have mapped in: a 64 KiB window (the kernel's fault-around) for each
    /// window a read reaches other than the one the read before it was in, so a scan of
    /// consecutive entries counts about its bytes and scattered reads count more; a
    /// lookup that found nothing counts a page.
    pub bytes_read: u64,
    /// Of those, read since the last trim.
    pub since_trim: u64,
    /// How many times the pages of the map were let go.
    pub trims: u64,
}

/// The environments this process has open, by canonical path.
static OPEN_ENVS: Mutex<BTreeMap<PathBuf, Weak<SharedEnv>>> = Mutex::new(BTreeMap::new());

/// Commits `txn` if `outcome` is a success, aborts it otherwise.
fn commit_or_abort<T>(txn: RwTxn, outcome: Result<T, Failure>) -> Result<T, Failure> {
    match outcome {
        Ok(value) => txn
            .commit()
            .doing("committing a write transaction")
            .map(|()| value),
        Err(e) => {
            txn.abort();
            Err(e)
        }
    }
}

impl SharedEnv {
    /// The environment of `dir`, opened (and created with its tables) unless this
    /// process already has it open.
    pub(crate) fn open(
        dir: &Path,
        initial_map_size: usize,
        trim_threshold: u64,
    ) -> Result<Arc<SharedEnv>, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the store directory {}: {e}",
                dir.display()
            ))
        })?;
        let dir = dir.canonicalize().map_err(|e| {
            StoreError::Io(format!(
                "cannot resolve the store directory {}: {e}",
                dir.display()
            ))
        })?;
        // The registry stays locked while opening, so two threads opening the same
        // directory cannot both open its environment.
        let mut open_envs = OPEN_ENVS.lock().unwrap_or_else(PoisonError::into_inner);
        open_envs.retain(|_, shared| shared.strong_count() > 0);
        if let Some(shared) = open_envs.get(&dir).and_then(Weak::upgrade) {
            return Ok(shared);
        }
        let found = datafile::check(&dir)?;
        let env = open_env(&dir, round_map_size(initial_map_size))?;
        // Reader slots of processes that died inside a read transaction would otherwise
        // keep old pages from being reused, and the file growing.
        if let Err(e) = env.clear_stale_readers() {
            tracing::warn!(store = %dir.display(), error = %e, "cannot clear stale LMDB readers");
        }
        let tables = open_tables(&env, &dir, found)?;
        let bounds = Arc::new(crate::bounds::MapBounds::new(&dir.join("data.mdb")));
        bounds.locate(&dir.join("data.mdb"));
        if let Ok(stat) = read_txn(&env).and_then(|txn| tables.meta.stat(&txn)) {
            bounds.set_page_size(stat.page_size as usize);
        }
        let shared = Arc::new(SharedEnv {
            bounds,
            env,
            tables,
            dir: dir.clone(),
            gate: RwLock::new(()),
            reads: Reads {
                threshold: trim_threshold,
                since_trim: AtomicU64::new(0),
                total: AtomicU64::new(0),
                trims: AtomicU64::new(0),
                disabled: AtomicBool::new(false),
            },
        });
        shared.settle_format_version()?;
        datafile::mark(&dir)?;
        open_envs.insert(dir, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Checks the store's format version, upgrading an older format in place: first a
    /// compacted copy of the store as it is is kept beside it (`data.mdb.v<N>-backup`),
    /// then each step is one write transaction (1 -> 2, then 2 -> 3).
    fn settle_format_version(&self) -> Result<(), StoreError> {
        let version = self.read(|tables, txn| tables.format_version(txn))?;
        match version {
            Some(FORMAT_VERSION) => Ok(()),
            Some(from @ (v1::FORMAT_VERSION | upgrade::V2)) => {
                let kept = self.keep_copy(from)?;
                tracing::info!(
                    store = %self.dir.display(),
                    copy = %kept.display(),
                    "kept a copy of the store before upgrading it from format version {from}"
                );
                if from == v1::FORMAT_VERSION {
                    let started = std::time::Instant::now();
                    let upgraded = self.write_with_snapshot(upgrade::from_v1)?;
                    if let Some(counts) = upgraded {
                        tracing::info!(
                            store = %self.dir.display(),
                            jobs = counts.jobs,
                            subjobs = counts.subjobs,
                            carried_unreadable = counts.carried,
                            elapsed_ms = started.elapsed().as_millis(),
                            "upgraded the store from format version 1 to 2"
                        );
                    }
                }
                let started = std::time::Instant::now();
                let upgraded = self.write_with_snapshot(upgrade::from_v2)?;
                if let Some(counts) = upgraded {
                    tracing::info!(
                        store = %self.dir.display(),
                        jobs = counts.jobs,
                        subjobs = counts.subjobs,
                        units = counts.units,
                        elapsed_ms = started.elapsed().as_millis(),
                        "upgraded the store from format version 2 to {FORMAT_VERSION}"
                    );
                }
                Ok(())
            }
            Some(v) if v > FORMAT_VERSION => Err(StoreError::Unsupported(format!(
                "format version {v} of the store in {}: this ganga-store-lmdb {} reads format \
                 versions up to {FORMAT_VERSION}; the store was written by a newer ganga, use \
                 that one",
                self.dir.display(),
                env!("CARGO_PKG_VERSION"),
            ))),
            Some(v) => Err(StoreError::Io(format!(
                "the store in {} records format version {v}, which no ganga writes: the store \
                 is damaged",
                self.dir.display()
            ))),
            None => Err(StoreError::Io(format!(
                "the store in {} records no format version: the store is damaged",
                self.dir.display()
            ))),
        }
    }

    /// Keeps a compacted copy of the store, as it is, beside it before an upgrade from
    /// format `from`: `data.mdb.v<from>-backup` (or `...-backup.<n>` if that is taken).
    fn keep_copy(&self, from: u32) -> Result<PathBuf, StoreError> {
        let base = format!("data.mdb.v{from}-backup");
        let mut path = self.dir.join(&base);
        let mut n = 1;
        while path.exists() {
            path = self.dir.join(format!("{base}.{n}"));
            n += 1;
        }
        self.copy_to(&path).map_err(|e| {
            StoreError::Io(format!(
                "the store in {} was not upgraded from format version {from}: keeping a copy \
                 of it first failed: {e}",
                self.dir.display()
            ))
        })?;
        Ok(path)
    }

    /// Writes a compacted copy of the environment (LMDB's copy, free pages left out,
    /// from one read snapshot, while others read and write) to the new file `path`:
    /// written under a temporary name, synced, then renamed.
    pub(crate) fn copy_to(&self, path: &Path) -> Result<(), StoreError> {
        let partial = path.with_extension("partial");
        let io = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Io(format!("{what} {}: {e}", partial.display()))
        };
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .map_err(|e| io("cannot create", &e))?;
            {
                // Held shared, so that the map is not resized under the copy.
                let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
                self.env
                    .copy_to_file(&mut file, heed::CompactionOption::Enabled)
                    .map_err(|e| io("cannot copy the store to", &e))?;
            }
            file.sync_all().map_err(|e| io("cannot sync", &e))?;
            std::fs::rename(&partial, path).map_err(|e| io("cannot rename", &e))?;
            if let Some(parent) = path.parent()
                && let Ok(dir) = std::fs::File::open(parent)
            {
                // Best effort: the copy is complete either way, the rename durable with it.
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// The current map size of this process's view of the environment.
    pub(crate) fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// Page statistics of every table, and of the data file as a whole.
    pub(crate) fn space(&self) -> Result<crate::StoreSpace, StoreError> {
        let file_bytes = self.env.real_disk_size().map_err(|e| {
            StoreError::Io(format!(
                "cannot read the size of the data file in {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut space = self.read(|tables, txn| {
            let mut space = crate::StoreSpace {
                page_size: 0,
                file_bytes,
                used_pages: 0,
                tables: Vec::new(),
            };
            for name in TABLE_NAMES {
                let Some(table) = tables.by_name(name) else {
                    continue;
                };
                let stat = table
                    .stat(txn)
                    .doing(&format!("reading the statistics of table {name}"))?;
                space.page_size = stat.page_size;
                space.tables.push(crate::TableSpace {
                    name,
                    entries: stat.entries as u64,
                    depth: stat.depth,
                    branch_pages: stat.branch_pages as u64,
                    leaf_pages: stat.leaf_pages as u64,
                    overflow_pages: stat.overflow_pages as u64,
                });
            }
            Ok(space)
        })?;
        // The pages below the high-water mark of the last commit: every table's, the
        // main database's, the two meta pages, and free pages awaiting reuse.
        space.used_pages = self.env.info().last_page_number as u64 + 1;
        Ok(space)
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Tables, &RoTxn) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
            match self.env.read_txn().doing("beginning a read transaction") {
                Ok(txn) => {
                    trim::take();
                    let _bounds = self.bounds.enter();
                    let result = f(&self.tables, &txn).map_err(StoreError::from);
                    // What it returns is copied out of the map by now.
                    self.after_reading(&txn);
                    return result;
                }
                Err(e) if e.is_map_resized() && attempts < MAX_ATTEMPTS => {
                    drop(gate);
                    self.adopt_resized_map()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs `f` in a write transaction and commits it. When the map fills up, the
    /// transaction is aborted, the map doubled and `f` run again from the start.
    pub(crate) fn write<T>(
        &self,
        mut f: impl FnMut(&Tables, &mut RwTxn) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        self.writing(|mut txn| {
            let outcome = f(&self.tables, &mut txn);
            commit_or_abort(txn, outcome)
        })
    }

    /// Like [`Self::write`], but `f` also gets a read transaction on the state the write
    /// transaction started from, which stays as it was whatever `f` writes: LMDB never
    /// reuses, within a write transaction, a page that a live reader can see. That lets a
    /// table be emptied and rewritten from its own old contents in one transaction, in key
    /// order (so with full pages), holding nothing but the current record in memory.
    pub(crate) fn write_with_snapshot<T>(
        &self,
        mut f: impl FnMut(&Tables, &RoTxn, &mut RwTxn) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        // The write transaction first: it holds the writer lock, so no other process can
        // commit between it and the snapshot, which therefore is its start state. (The
        // environment is opened with MDB_NOTLS, so one thread may hold both.)
        self.writing(|mut txn| {
            let outcome = self
                .env
                .read_txn()
                .doing("beginning a read transaction beside a write transaction")
                .and_then(|snapshot| f(&self.tables, &snapshot, &mut txn));
            commit_or_abort(txn, outcome)
        })
    }

    /// Begins a write transaction and hands it to `attempt`, which commits or aborts it,
    /// while holding the gate (so the map is not resized meanwhile). A map that filled up
    /// is doubled, and one another process resized is adopted, and `attempt` runs again.
    fn writing<T>(
        &self,
        mut attempt: impl FnMut(RwTxn) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
            let seen_map_size = self.map_size();
            trim::take();
            let bounds = self.bounds.enter();
            let result = self
                .env
                .write_txn()
                .doing("beginning a write transaction")
                .and_then(&mut attempt);
            drop(bounds);
            self.after_writing();
            drop(gate);
            match result {
                Ok(value) => return Ok(value),
                Err(e) if e.is_map_full() && attempts < MAX_ATTEMPTS => {
                    self.grow_map(seen_map_size)?;
                }
                Err(e) if e.is_map_resized() && attempts < MAX_ATTEMPTS => {
                    self.adopt_resized_map()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Adds what the call that just ran on this thread read to the bytes read since the
    /// last trim, and trims if they reach the threshold. `txn` is a read transaction of
    /// the caller, who holds the gate (so the map cannot move).
    fn after_reading(&self, txn: &RoTxn) {
        if self.count_reads() {
            self.trim(txn);
        }
    }

    /// As [`Self::after_reading`], after a write transaction ended (a write reads pages of
    /// the map too); the caller holds the gate.
    fn after_writing(&self) {
        if self.count_reads()
            && let Ok(txn) = self.env.read_txn()
        {
            self.trim(&txn);
        }
    }

    /// Counts the bytes read by this thread's call; whether a trim is due.
    fn count_reads(&self) -> bool {
        let bytes = trim::take();
        let reads = &self.reads;
        reads.total.fetch_add(bytes, Ordering::Relaxed);
        let since = reads.since_trim.fetch_add(bytes, Ordering::Relaxed) + bytes;
        since >= reads.threshold && !reads.disabled.load(Ordering::Relaxed)
    }

    /// Lets this process's pages of the map go ([`crate::trim`]).
    fn trim(&self, txn: &RoTxn) {
        let reads = &self.reads;
        // Another thread may have just trimmed.
        if reads.since_trim.swap(0, Ordering::Relaxed) < reads.threshold {
            return;
        }
        // A value in the map, to find the map by.
        let probe = match self.tables.meta.get(txn, keys::META_FORMAT_VERSION) {
            Ok(Some(value)) => value.as_ptr(),
            _ => return,
        };
        match trim::trim(&self.dir.join("data.mdb"), probe) {
            Ok(_) => {
                reads.trims.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                reads.disabled.store(true, Ordering::Relaxed);
                tracing::warn!(
                    store = %self.dir.display(),
                    error = %e,
                    "cannot let the pages of the LMDB map go; the pages read stay resident"
                );
            }
        }
    }

    pub(crate) fn read_stats(&self) -> ReadStats {
        let reads = &self.reads;
        ReadStats {
            bytes_read: reads.total.load(Ordering::Relaxed),
            since_trim: reads.since_trim.load(Ordering::Relaxed),
            trims: reads.trims.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` in a write transaction, then `during` while that transaction is still
    /// open, then aborts it. For tests of what other processes see meanwhile.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn write_uncommitted<T, R>(
        &self,
        f: impl FnOnce(&Tables, &mut RwTxn) -> Result<T, Failure>,
        during: impl FnOnce(T) -> R,
    ) -> Result<R, StoreError> {
        let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let _bounds = self.bounds.enter();
        let mut txn = self
            .env
            .write_txn()
            .doing("beginning a write transaction")?;
        let value = f(&self.tables, &mut txn)?;
        let result = during(value);
        txn.abort();
        Ok(result)
    }

    /// Doubles the map, unless another thread did since this one saw `seen_map_size`.
    fn grow_map(&self, seen_map_size: usize) -> Result<(), StoreError> {
        let _gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let current = self.map_size();
        if current > seen_map_size {
            return Ok(());
        }
        let grown = current
            .checked_mul(2)
            .map(round_map_size)
            .filter(|&size| size <= MAX_MAP_SIZE)
            .ok_or_else(|| {
                StoreError::Io(format!(
                    "the store in {} is full: its map of {current} bytes cannot grow further",
                    self.dir.display()
                ))
            })?;
        tracing::info!(
            store = %self.dir.display(),
            from = current,
            to = grown,
            "growing the LMDB map"
        );
        // SAFETY: the gate is held exclusively, and every transaction of this process
        // holds it shared for its whole life, so no transaction is open: the condition
        // LMDB sets for mdb_env_set_mapsize on an open environment.
        let resized = unsafe { self.env.resize(grown) }
            .doing("growing the map")
            .map_err(StoreError::from);
        // The map may have moved.
        self.bounds.locate(&self.dir.join("data.mdb"));
        resized
    }

    /// Takes on the map size another process set when it grew the map.
    fn adopt_resized_map(&self) -> Result<(), StoreError> {
        let _gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        tracing::debug!(store = %self.dir.display(), "adopting a map grown by another process");
        // SAFETY: as in `grow_map`, no transaction of this process is open. Size 0 is
        // LMDB's way of saying "use the size recorded in the file" (mdb_env_set_mapsize
        // docs, for MDB_MAP_RESIZED).
        let resized = unsafe { self.env.resize(0) }
            .doing("adopting the map size set by another process")
            .map_err(StoreError::from);
        self.bounds.locate(&self.dir.join("data.mdb"));
        resized
    }
}

fn open_env(dir: &Path, map_size: usize) -> Result<Env<WithoutTls>, StoreError> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(map_size).max_dbs(MAX_DBS);
    let mut waited = false;
    loop {
        // SAFETY: this module opens each directory once per process (the OPEN_ENVS
        // registry), uses no unsafe flags (LMDB's own locking stays on), and the files are
        // only ever changed through LMDB.
        match unsafe { options.open(dir) } {
            Ok(env) => return Ok(env),
            Err(heed::Error::EnvAlreadyOpened) if !waited => {
                // The last store handle of this directory was dropped on another thread
                // and LMDB is closing the environment right now: wait for it.
                waited = true;
                if let Some(closing) = heed::env_closing_event(dir) {
                    closing.wait_timeout(Duration::from_secs(10));
                }
            }
            Err(heed::Error::EnvAlreadyOpened) => {
                return Err(StoreError::Io(format!(
                    "the LMDB environment in {} is already open in this process outside \
                     ganga-store-lmdb (LMDB allows one per process)",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(StoreError::Io(format!(
                    "cannot open the LMDB environment in {}: {e}",
                    dir.display()
                )));
            }
        }
    }
}

/// Opens the tables of the store. A new store (no `data.mdb` before LMDB opened it) gets
/// every table and its meta records. An existing store must have every table of the
/// format it records; a store of an older format gets the tables later formats added,
/// empty, in a transaction of their own (the older format never looks at them, and the
/// upgrade that fills them follows in [`SharedEnv::settle_format_version`]). Anything
/// else is damage and is refused, never "repaired" by creating what is missing.
fn open_tables(
    env: &Env<WithoutTls>,
    dir: &Path,
    found: datafile::Found,
) -> Result<Tables, StoreError> {
    let context = |e: Failure| {
        StoreError::Io(format!(
            "cannot open the tables of the store in {}: {e}",
            dir.display()
        ))
    };
    let damaged = |what: String| {
        StoreError::Io(format!(
            "the store in {} is damaged: {what}; restore {} from a backup",
            dir.display(),
            dir.join("data.mdb").display()
        ))
    };
    // Opening through a read transaction first, so that opening an existing store never
    // waits for a write transaction another process holds.
    let existing = open_existing_tables(env).map_err(context)?;
    let present: Vec<&str> = TABLE_NAMES
        .iter()
        .zip(&existing)
        .filter_map(|(name, t)| t.map(|_| *name))
        .collect();
    if present.len() == TABLE_NAMES.len() {
        return Tables::from_options(existing)
            .ok_or_else(|| damaged("a table vanished".to_owned()));
    }
    let creating_new = present.is_empty()
        && match found {
            datafile::Found::New => true,
            // LMDB writes only its two meta pages when it makes a file: a file with more
            // pages and no tables lost them (a store that crashed before its tables were
            // made has none and no marker).
            datafile::Found::Existing(meta) => {
                meta.last_page <= 1 && !dir.join(datafile::MARKER).exists()
            }
        };
    if !creating_new {
        let Some(meta) = existing[0] else {
            return Err(damaged(format!(
                "it has no table meta (it has {})",
                if present.is_empty() {
                    "no tables".to_owned()
                } else {
                    present.join(", ")
                }
            )));
        };
        let version = read_txn(env)
            .and_then(|txn| {
                let meta = Table {
                    db: meta,
                    name: "meta",
                };
                format_version(meta, &txn)
            })
            .map_err(context)?;
        let Some(version) = version else {
            return Err(damaged("table meta records no format version".to_owned()));
        };
        let missing: Vec<&str> = tables_of(version)
            .iter()
            .copied()
            .filter(|name| !present.contains(name))
            .collect();
        if !missing.is_empty() {
            return Err(damaged(format!(
                "it records format version {version}, whose tables {} are missing",
                missing.join(", ")
            )));
        }
    }
    // An existing store's map is no larger than its data (LMDB's minimum on open), so
    // creating a table in it may find the map full: grown here like in `SharedEnv::write`.
    let mut attempts = 0;
    let created = loop {
        attempts += 1;
        let result = env
            .write_txn()
            .doing("beginning the transaction that creates the tables")
            .and_then(|txn| create_tables(env, txn, creating_new));
        match result {
            Err(e) if e.is_map_full() && attempts < MAX_ATTEMPTS => {
                let grown = round_map_size(env.info().map_size.saturating_mul(2));
                // SAFETY: the environment was just opened and is not shared yet, so no
                // transaction of this process is open on it.
                unsafe { env.resize(grown) }
                    .doing("growing the map")
                    .map_err(context)?;
            }
            Err(e) if e.is_map_resized() && attempts < MAX_ATTEMPTS => {
                // SAFETY: as above. Size 0 adopts the size recorded in the file.
                unsafe { env.resize(0) }
                    .doing("adopting the map size set by another process")
                    .map_err(context)?;
            }
            result => break result.map_err(context)?,
        }
    };
    match created {
        CommitOrAbort::Commit(tables) => Ok(Tables::from_array(tables)),
        CommitOrAbort::Abort(()) => Err(StoreError::Io(format!(
            "creating the tables of the store in {} was aborted",
            dir.display()
        ))),
    }
}

fn read_txn(env: &Env<WithoutTls>) -> Result<RoTxn<'_, WithoutTls>, Failure> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match env.read_txn().doing("beginning a read transaction") {
            Ok(txn) => return Ok(txn),
            Err(e) if e.is_map_resized() && attempts < MAX_ATTEMPTS => {
                // SAFETY: the environment was just opened and is not shared yet, so no
                // transaction of this process is open on it. Size 0 adopts the size
                // recorded in the file.
                unsafe { env.resize(0) }.doing("adopting the map size set by another process")?;
            }
            Err(e) => return Err(e),
        }
    }
}

type RawTable = Database<'static, Bytes, Bytes>;
type CreatedTables = [RawTable; TABLE_NAMES.len()];

impl Tables {
    /// The tables in the order of [`TABLE_NAMES`].
    fn from_array(tables: CreatedTables) -> Tables {
        let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = tables;
        let named = |db, name| Table { db, name };
        Tables {
            meta: named(t0, TABLE_NAMES[0]),
            jobs: named(t1, TABLE_NAMES[1]),
            specs: named(t2, TABLE_NAMES[2]),
            splitters: named(t3, TABLE_NAMES[3]),
            dicts: named(t4, TABLE_NAMES[4]),
            subjobs: named(t5, TABLE_NAMES[5]),
            summaries: named(t6, TABLE_NAMES[6]),
            active: named(t7, TABLE_NAMES[7]),
            units: named(t8, TABLE_NAMES[8]),
            writes: PartWrites::default(),
        }
    }

    /// The tables, if none is missing.
    fn from_options(tables: [Option<RawTable>; TABLE_NAMES.len()]) -> Option<Tables> {
        let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = tables;
        Some(Tables::from_array([
            t0?, t1?, t2?, t3?, t4?, t5?, t6?, t7?, t8?,
        ]))
    }
}

/// Creates the tables that are missing (and, for a new store, the meta records) in
/// `txn`, and commits it.
fn create_tables(
    env: &Env<WithoutTls>,
    txn: RwTxn<'_>,
    new_store: bool,
) -> Result<CommitOrAbort<CreatedTables, ()>, Failure> {
    env.create_databases_and_commit(txn, |opener, txn| -> Result<_, Failure> {
        let mut create = |name: &str| {
            opener
                .create_database::<Bytes, Bytes>(txn, Some(name))
                .doing(&format!("creating table {name}"))
        };
        let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = TABLE_NAMES;
        let tables = [
            create(t0)?,
            create(t1)?,
            create(t2)?,
            create(t3)?,
            create(t4)?,
            create(t5)?,
            create(t6)?,
            create(t7)?,
            create(t8)?,
        ];
        // Another process may have made the store since this one looked: only a store
        // whose meta records are not there yet gets them (never a second next_job_id).
        let unmade = tables[0]
            .get(txn, keys::META_FORMAT_VERSION)
            .doing("reading table meta")?
            .is_none();
        if new_store && unmade {
            for (key, body) in [
                (keys::META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes()[..]),
                (keys::META_NEXT_JOB_ID, &keys::job(0)[..]),
            ] {
                tables[0]
                    .put(txn, key, &crate::table::seal("meta", key, body))
                    .doing("writing the meta records of a new store")?;
            }
        }
        Ok(CommitOrAbort::<_, ()>::Commit(tables))
    })
}

/// Each table of the store that exists, in the order of [`TABLE_NAMES`].
fn open_existing_tables(
    env: &Env<WithoutTls>,
) -> Result<[Option<RawTable>; TABLE_NAMES.len()], Failure> {
    let txn = read_txn(env)?;
    let opened = env.open_databases_and_commit(txn, |opener, txn| -> Result<_, Failure> {
        let open = |name: &str| {
            opener
                .open_database::<Bytes, Bytes>(txn, Some(name))
                .doing(&format!("opening table {name}"))
        };
        let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = TABLE_NAMES;
        let tables = [
            open(t0)?,
            open(t1)?,
            open(t2)?,
            open(t3)?,
            open(t4)?,
            open(t5)?,
            open(t6)?,
            open(t7)?,
            open(t8)?,
        ];
        Ok(CommitOrAbort::<_, ()>::Commit(tables))
    })?;
    Ok(match opened {
        CommitOrAbort::Commit(tables) => tables,
        CommitOrAbort::Abort(()) => [None; TABLE_NAMES.len()],
    })
}
