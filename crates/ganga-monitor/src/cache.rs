//! [`Cache`], over quick_cache: summaries, jobs and pages of subjobs held in memory within
//! a byte budget, loaded from a [`RecordStore`] on demand and dropped when the budget is
//! reached — except entries with unsaved changes, which stay until they are written.
//!
//! Ganga loads an object the first time it is touched and never lets go; this cache is
//! what keeps memory flat however many jobs a repository holds.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use quick_cache::sync::Cache as QuickCache;
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use ganga_core::{
    Change, Committed, Job, JobId, JobSummary, RunState, RunUpdate, Status, StoreError, Subjob,
    SubjobIndex, SummaryEntry, UnitUpdate, UnitsUpdated,
};
use ganga_records::{CodecError, RecordStore, SubjobBatch};

/// How many subjobs one cached page holds: showing one subjob loads its page.
pub const SUBJOB_PAGE: SubjobIndex = 1024;

/// Memory use of a cache, from its own estimates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub budget_bytes: u64,
    pub used_bytes: u64,
    /// Bytes held by entries with unsaved changes (which are never evicted).
    pub unsaved_bytes: u64,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

/// What a [`Cache::flush`] wrote.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    pub committed: Vec<Committed>,
    /// Jobs another process changed since they were read: their staged changes were
    /// dropped, and memory forgot them so the next read sees the other process's state.
    pub conflicts: Vec<JobId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Summary(JobId),
    Job(JobId),
    Page(JobId, SubjobIndex),
}

#[derive(Clone)]
enum Entry {
    Summary(Arc<JobSummary>),
    Job {
        job: Arc<Job>,
        unsaved: bool,
    },
    /// Pages are held packed (a few dozen bytes a subjob); subjobs are decoded when read.
    Page {
        batch: Arc<SubjobBatch>,
        unsaved: bool,
    },
}

impl Entry {
    fn unsaved(&self) -> bool {
        matches!(
            self,
            Entry::Job { unsaved: true, .. } | Entry::Page { unsaved: true, .. }
        )
    }
}

#[derive(Clone)]
struct ByEstimatedBytes;

impl Weighter<Key, Entry> for ByEstimatedBytes {
    fn weight(&self, _key: &Key, val: &Entry) -> u64 {
        let bytes = match val {
            Entry::Summary(s) => summary_bytes(s),
            Entry::Job { job, .. } => job_bytes(job),
            Entry::Page { batch, .. } => 64 + batch.heap_bytes(),
        };
        bytes as u64
    }
}

/// Entries with unsaved changes are never evicted.
#[derive(Clone)]
struct KeepUnsaved;

impl Lifecycle<Key, Entry> for KeepUnsaved {
    type RequestState = ();

    fn is_pinned(&self, _key: &Key, val: &Entry) -> bool {
        val.unsaved()
    }

    fn on_evict(&self, _state: &mut Self::RequestState, _key: Key, _val: Entry) {}
}

// Estimates of heap bytes, close enough to what the allocator really hands out (sizes
// rounded up, 16 bytes of bookkeeping per block) that the budget bounds real memory.
fn heap(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.div_ceil(16) * 16 + 16
    }
}

fn string(s: &str) -> usize {
    heap(s.len())
}

fn opt(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, string)
}

fn strings(v: &[String]) -> usize {
    heap(v.len() * 24) + v.iter().map(|s| string(s)).sum::<usize>()
}

fn run_bytes(run: &RunState) -> usize {
    let b = &run.backend;
    opt(&b.id) + opt(&b.native_state) + opt(&b.reason) + opt(&b.actual_ce) + strings(&run.outputs)
}

fn value_bytes(v: &ganga_core::Value) -> usize {
    48 + match v {
        ganga_core::Value::String(s) => string(s),
        ganga_core::Value::List(items) => {
            heap(items.len() * 48) + items.iter().map(value_bytes).sum::<usize>()
        }
        ganga_core::Value::Table(t) => t
            .iter()
            .map(|(k, v)| 48 + string(k) + value_bytes(v))
            .sum::<usize>(),
        _ => 0,
    }
}

fn splitter_bytes(s: &ganga_core::Splitter) -> usize {
    match s {
        ganga_core::Splitter::Args { args, .. } => 64 + args.heap_bytes(),
        ganga_core::Splitter::Generic { attributes } => attributes
            .iter()
            .map(|a| {
                64 + string(&a.path)
                    + heap(a.values.len() * 48)
                    + a.values.iter().map(value_bytes).sum::<usize>()
            })
            .sum(),
    }
}

fn spec_bytes(spec: &ganga_core::JobSpec) -> usize {
    let exe = spec.application.executable();
    std::mem::size_of::<ganga_core::JobSpec>()
        + string(&spec.name)
        + string(&spec.comment)
        + string(&exe.exe)
        + strings(&exe.args)
        + exe
            .env
            .iter()
            .map(|(k, v)| 48 + string(k) + string(v))
            .sum::<usize>()
        + spec
            .input_files
            .iter()
            .map(|p| 24 + heap(p.as_os_str().len()))
            .sum::<usize>()
        + strings(&spec.output_files)
        + spec
            .backend
            .options
            .iter()
            .map(|(k, v)| 48 + string(k) + value_bytes(v))
            .sum::<usize>()
        + spec.splitter.as_ref().map_or(0, splitter_bytes)
}

fn job_bytes(job: &Job) -> usize {
    // The spec is shared by the copies of a job; it is counted with each entry that holds
    // it, which errs on the safe side.
    std::mem::size_of::<Job>()
        + spec_bytes(&job.spec)
        + run_bytes(&job.run)
        + job
            .metadata
            .iter()
            .map(|(k, v)| 48 + string(k) + string(v))
            .sum::<usize>()
}

fn summary_bytes(s: &JobSummary) -> usize {
    std::mem::size_of::<JobSummary>()
        + string(&s.name)
        + string(&s.backend)
        + string(&s.application)
        + string(&s.comment)
}

/// What is staged for one job.
#[derive(Default)]
struct Staged {
    /// The job as staged (its revision is the one first read).
    job: Option<Arc<Job>>,
    /// The job as it was read before it was first staged: a flush sends only the run
    /// state when the spec and metadata are still these.
    #[cfg(test)]
    read: Option<Arc<Job>>,
    /// Subjobs staged, by index.
    subjobs: BTreeMap<SubjobIndex, Subjob>,
    /// A removal staged at this revision.
    removal: Option<u64>,
}

/// What the program keeps of the store in memory, at three grains: job summaries (what a
/// listing needs), whole jobs, and pages of [`SUBJOB_PAGE`] subjobs, bounded by a byte
/// budget. Pages are held packed, as the store hands them over; a subjob is decoded when
/// it is read, and a status without decoding the rest of its record.
///
/// Writes go through at once ([`Cache::commit`]: all or nothing, refused on a stale
/// revision; [`Cache::update_units`]). Tests also stage changes in memory and flush them
/// in one transaction; staged entries are never evicted.
pub struct Cache {
    store: Arc<dyn RecordStore>,
    entries: QuickCache<Key, Entry, ByEstimatedBytes, quick_cache::DefaultHashBuilder, KeepUnsaved>,
    budget: u64,
    staged: Mutex<BTreeMap<JobId, Staged>>,
}

impl Cache {
    pub fn new(store: Arc<dyn RecordStore>, budget_bytes: u64) -> Cache {
        let budget = budget_bytes.max(1);
        // Few shards: each gets an equal part of the budget, and an entry larger than a
        // shard's part is not kept at all.
        let options = OptionsBuilder::new()
            .estimated_items_capacity(4096)
            .weight_capacity(budget)
            .shards(4)
            // Half for entries seen once: a job read, then its pages, then committed, must
            // outlive the other jobs of a monitor's cycle read meanwhile (with the default
            // 3%, a master of 1,000 argument lists was evicted by the next one).
            .hot_allocation(0.5)
            .build()
            // Invariant: every option above is set and valid.
            .expect("valid cache options");
        Cache {
            store,
            entries: QuickCache::with_options(
                options,
                ByEstimatedBytes,
                Default::default(),
                KeepUnsaved,
            ),
            budget,
            staged: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, Staged>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn page(&self, id: JobId, page: SubjobIndex) -> Result<Arc<SubjobBatch>, StoreError> {
        let key = Key::Page(id, page);
        if let Some(Entry::Page { batch, .. }) = self.entries.get(&key) {
            return Ok(batch);
        }
        let range = page_range(page);
        let mut loaded = self.store.subjob_batch(id, range.clone())?;
        // A page loaded for the first time may have staged subjobs (staged while it was
        // not held): they are part of it, and keep it from being evicted.
        let unsaved = {
            let staged = self.staged();
            match staged.get(&id) {
                Some(s) if s.subjobs.range(range.clone()).next().is_some() => {
                    for (_, sj) in s.subjobs.range(range) {
                        loaded.put(sj);
                    }
                    true
                }
                _ => false,
            }
        };
        let loaded = Arc::new(loaded);
        self.entries.insert(
            key,
            Entry::Page {
                batch: loaded.clone(),
                unsaved,
            },
        );
        Ok(loaded)
    }

    /// A job put that changes only the job's run, as a run update: the store then writes
    /// neither its spec nor its splitter (nor is the job sent whole to a plugin). Only
    /// against a saved copy held at the same revision that shares the spec (a clone of
    /// it), so the stored spec is known to be the one put.
    fn narrowed(&self, change: Change) -> Change {
        let Change::PutJob(job) = change else {
            return change;
        };
        match self.entries.get(&Key::Job(job.id)) {
            Some(Entry::Job {
                job: held,
                unsaved: false,
            }) if held.revision == job.revision
                && Arc::ptr_eq(&held.spec, &job.spec)
                && held.metadata == job.metadata =>
            {
                Change::PutRun(RunUpdate::of(&job))
            }
            _ => Change::PutJob(job),
        }
    }

    /// Holds `job` and its summary in memory.
    fn hold(&self, job: Arc<Job>, unsaved: bool) {
        self.entries.insert(
            Key::Summary(job.id),
            Entry::Summary(Arc::new(JobSummary::of(&job))),
        );
        self.entries
            .insert(Key::Job(job.id), Entry::Job { job, unsaved });
    }

    /// Stages `job` (a put, or a run update applied to `held`): the first change of a job
    /// since the last flush remembers the copy it was based on (`held`) and its revision,
    /// which later changes keep.
    #[cfg(test)]
    fn stage_job(
        &self,
        staged: &mut BTreeMap<JobId, Staged>,
        mut job: Job,
        held: Option<Arc<Job>>,
    ) {
        let entry = staged.entry(job.id).or_default();
        if entry.job.is_none() && entry.read.is_none() {
            entry.read = held;
        }
        if let Some(first) = &entry.job {
            job.revision = first.revision;
        }
        let job = Arc::new(job);
        self.hold(job.clone(), true);
        entry.job = Some(job);
    }

    /// Brings memory up to date after `changes` were written.
    fn apply_committed(&self, changes: &[Change], committed: &[Committed]) {
        let revisions: BTreeMap<JobId, u64> =
            committed.iter().map(|c| (c.job, c.revision)).collect();
        for change in changes {
            match change {
                Change::PutJob(job) => {
                    let mut job = job.clone();
                    if let Some(&r) = revisions.get(&job.id) {
                        job.revision = r;
                    }
                    self.hold(Arc::new(job), false);
                }
                Change::PutRun(update) => {
                    // The spec is as held (a run update does not change it): apply the
                    // update to the copy held, if any.
                    if let Some(Entry::Job { job, .. }) = self.entries.get(&Key::Job(update.job)) {
                        let mut job = with_run(&job, update);
                        if let Some(&r) = revisions.get(&job.id) {
                            job.revision = r;
                        }
                        self.hold(Arc::new(job), false);
                    } else {
                        self.entries.remove(&Key::Summary(update.job));
                    }
                }
                Change::PutSubjobs { job, subjobs } => self.patch_pages(*job, subjobs, false),
                Change::RemoveJob { job, .. } => self.drop_entries(*job),
            }
        }
    }

    /// Replaces subjobs in the pages held (pages not held are left to be loaded).
    fn patch_pages(&self, id: JobId, subjobs: &[Subjob], unsaved: bool) {
        let mut by_page: BTreeMap<SubjobIndex, Vec<&Subjob>> = BTreeMap::new();
        for sj in subjobs {
            by_page.entry(sj.index / SUBJOB_PAGE).or_default().push(sj);
        }
        for (page, changed) in by_page {
            let key = Key::Page(id, page);
            if let Some(Entry::Page {
                batch,
                unsaved: was,
            }) = self.entries.get(&key)
            {
                let mut copy = SubjobBatch::clone(&batch);
                for sj in changed {
                    copy.put(sj);
                }
                self.entries.insert(
                    key,
                    Entry::Page {
                        batch: Arc::new(copy),
                        unsaved: unsaved || was,
                    },
                );
            }
        }
    }

    fn drop_entries(&self, id: JobId) {
        self.entries.remove(&Key::Job(id));
        self.entries.remove(&Key::Summary(id));
        self.entries
            .retain(|k, _| !matches!(k, Key::Page(j, _) if *j == id));
    }

    /// Marks a job's entries saved (after a flush wrote them): the job, and the pages
    /// holding its staged subjobs.
    #[cfg(test)]
    fn mark_saved(&self, id: JobId, staged: &Staged, revision: Option<u64>) {
        if let Some(Entry::Job { job, .. }) = self.entries.get(&Key::Job(id)) {
            let mut job = Job::clone(&job);
            if let Some(r) = revision {
                job.revision = r;
            }
            self.entries.insert(
                Key::Job(id),
                Entry::Job {
                    job: Arc::new(job),
                    unsaved: false,
                },
            );
        }
        let pages: BTreeSet<SubjobIndex> = staged.subjobs.keys().map(|i| i / SUBJOB_PAGE).collect();
        for page in pages {
            let key = Key::Page(id, page);
            if let Some(Entry::Page { batch, .. }) = self.entries.get(&key) {
                self.entries.insert(
                    key,
                    Entry::Page {
                        batch,
                        unsaved: false,
                    },
                );
            }
        }
    }
}

/// A copy of `job` with the run state and counters of `update` (sharing its spec).
fn with_run(job: &Job, update: &RunUpdate) -> Job {
    Job {
        id: job.id,
        revision: update.revision,
        spec: job.spec.clone(),
        run: update.run.clone(),
        subjobs: update.subjobs.clone(),
        metadata: job.metadata.clone(),
    }
}

/// The subjob indices a page holds.
fn page_range(page: SubjobIndex) -> Range<SubjobIndex> {
    let start = page.saturating_mul(SUBJOB_PAGE);
    start..start.saturating_add(SUBJOB_PAGE)
}

/// The pages holding `range`.
fn pages(range: &Range<SubjobIndex>) -> std::ops::RangeInclusive<SubjobIndex> {
    range.start / SUBJOB_PAGE..=(range.end - 1) / SUBJOB_PAGE
}

fn corrupt(id: JobId, index: SubjobIndex, e: CodecError) -> StoreError {
    StoreError::Corrupt {
        job: ganga_core::JobRef::subjob(id, index),
        detail: e.to_string(),
    }
}

impl Cache {
    /// Up to `limit` summaries of jobs with id `>= from`, in id order.
    pub fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        let entries = self.store.summaries(from, limit)?;
        for e in &entries {
            if let SummaryEntry::Readable(s) = e {
                self.entries
                    .insert(Key::Summary(s.id), Entry::Summary(Arc::new(s.clone())));
            }
        }
        Ok(entries)
    }

    pub fn job(&self, id: JobId) -> Result<Option<Arc<Job>>, StoreError> {
        if let Some(Entry::Job { job, .. }) = self.entries.get(&Key::Job(id)) {
            return Ok(Some(job));
        }
        if let Some(staged) = self.staged().get(&id) {
            if staged.removal.is_some() {
                return Ok(None);
            }
            if let Some(job) = &staged.job {
                return Ok(Some(job.clone()));
            }
        }
        match self.store.job(id)? {
            Some(job) => {
                let job = Arc::new(job);
                self.entries.insert(
                    Key::Job(id),
                    Entry::Job {
                        job: job.clone(),
                        unsaved: false,
                    },
                );
                Ok(Some(job))
            }
            None => Ok(None),
        }
    }

    /// The subjobs of `id` with an index in `range`, loading only the pages that hold them.
    pub fn subjobs(&self, id: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        let mut out = Vec::new();
        if range.is_empty() {
            return Ok(out);
        }
        for page in pages(&range) {
            let batch = self.page(id, page)?;
            for &i in batch.indices().iter().filter(|i| range.contains(i)) {
                if let Some(sj) = batch.get(i) {
                    out.push(sj.map_err(|e| corrupt(id, i, e))?);
                }
            }
        }
        Ok(out)
    }

    /// The status of each subjob of `id` with an index in `range`: what listings and the
    /// monitor need, read from the packed pages without decoding the subjobs.
    pub fn statuses(
        &self,
        id: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<Vec<(SubjobIndex, Status)>, StoreError> {
        let mut out = Vec::new();
        if range.is_empty() {
            return Ok(out);
        }
        for page in pages(&range) {
            let batch = self.page(id, page)?;
            for (i, status) in batch.statuses().filter(|(i, _)| range.contains(i)) {
                out.push((i, status.map_err(|e| corrupt(id, i, e))?));
            }
        }
        Ok(out)
    }

    /// Writes changes to the store in one commit and brings memory up to date.
    pub fn commit(&self, changes: Vec<Change>) -> Result<Vec<Committed>, StoreError> {
        let changes: Vec<Change> = changes.into_iter().map(|c| self.narrowed(c)).collect();
        match self.store.commit(&changes) {
            Ok(committed) => {
                self.apply_committed(&changes, &committed);
                Ok(committed)
            }
            Err(e) => {
                // After a conflict (or any failure) memory may be stale: re-read next time.
                for change in &changes {
                    self.forget(change.job());
                }
                Err(e)
            }
        }
    }

    /// Applies changes to units through the store ([`ganga_core::Store::update_units`]:
    /// written through at once, in one transaction) and forgets what memory holds of every
    /// job they touched, so that the next read sees the store. A job with changes staged is
    /// left alone: its flush meets the new revision and reports the conflict.
    pub fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        let result = self.store.update_units(updates);
        // Forgotten whatever the outcome: after a failure memory may be stale too.
        let touched: BTreeSet<JobId> = updates.iter().map(|u| u.unit.job).collect();
        let staged = self.staged();
        for id in touched {
            if !staged.contains_key(&id) {
                self.drop_entries(id);
            }
        }
        result
    }

    /// Applies changes to memory now and to the store at the next flush. A job staged
    /// twice keeps the revision it was first read at.
    #[cfg(test)]
    pub fn stage(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        // Pages are loaded before the bookkeeping lock is taken, so that a change to a
        // subjob not in memory lands in its page.
        for change in &changes {
            if let Change::PutSubjobs { job, subjobs } = change {
                let pages: BTreeSet<SubjobIndex> =
                    subjobs.iter().map(|sj| sj.index / SUBJOB_PAGE).collect();
                for page in pages {
                    self.page(*job, page)?;
                }
            }
        }
        let mut staged = self.staged();
        for change in changes {
            match change {
                Change::PutJob(job) => {
                    let held = match self.entries.get(&Key::Job(job.id)) {
                        Some(Entry::Job { job, .. }) => Some(job),
                        _ => None,
                    };
                    self.stage_job(&mut staged, job, held);
                }
                Change::PutRun(update) => {
                    // A run update applies to the job as held (or as read now).
                    let held = match staged.get(&update.job).and_then(|s| s.job.clone()) {
                        Some(j) => j,
                        None => match self.entries.get(&Key::Job(update.job)) {
                            Some(Entry::Job { job, .. }) => job,
                            _ => match self.store.job(update.job)? {
                                Some(j) => Arc::new(j),
                                None => {
                                    return Err(StoreError::Invalid(format!(
                                        "job {} does not exist",
                                        update.job
                                    )));
                                }
                            },
                        },
                    };
                    let job = with_run(&held, &update);
                    self.stage_job(&mut staged, job, Some(held));
                }
                Change::PutSubjobs { job, subjobs } => {
                    self.patch_pages(job, &subjobs, true);
                    let entry = staged.entry(job).or_default();
                    for sj in subjobs {
                        entry.subjobs.insert(sj.index, sj);
                    }
                }
                Change::RemoveJob { job, revision } => {
                    self.drop_entries(job);
                    let entry = staged.entry(job).or_default();
                    *entry = Staged {
                        removal: Some(revision),
                        ..Staged::default()
                    };
                }
            }
        }
        Ok(())
    }

    /// Writes everything staged in one commit.
    #[cfg(test)]
    pub fn flush(&self) -> Result<Flushed, StoreError> {
        let mut staged = self.staged();
        let mut flushed = Flushed::default();
        loop {
            let mut changes = Vec::new();
            for (&id, s) in staged.iter() {
                if let Some(revision) = s.removal {
                    changes.push(Change::RemoveJob { job: id, revision });
                    continue;
                }
                // The store wants a job put with its subjobs: use the staged job, or the
                // job as read.
                let job = match &s.job {
                    Some(j) => Job::clone(j),
                    None => match self.entries.get(&Key::Job(id)) {
                        Some(Entry::Job { job, .. }) => Job::clone(&job),
                        _ => match self.store.job(id)? {
                            Some(j) => j,
                            None => {
                                flushed.conflicts.push(id);
                                continue;
                            }
                        },
                    },
                };
                let unchanged = s.job.is_none()
                    || s.read.as_ref().is_some_and(|read| {
                        (Arc::ptr_eq(&read.spec, &job.spec) || read.spec == job.spec)
                            && read.metadata == job.metadata
                    });
                if unchanged {
                    changes.push(Change::PutRun(RunUpdate::of(&job)));
                } else {
                    changes.push(Change::PutJob(job));
                }
                if !s.subjobs.is_empty() {
                    changes.push(Change::PutSubjobs {
                        job: id,
                        subjobs: s.subjobs.values().cloned().collect(),
                    });
                }
            }
            for id in &flushed.conflicts {
                staged.remove(id);
            }
            if changes.is_empty() {
                staged.clear();
                return Ok(flushed);
            }
            match self.store.commit(&changes) {
                Ok(committed) => {
                    for (&id, s) in staged.iter() {
                        if s.removal.is_none() {
                            let revision =
                                committed.iter().find(|c| c.job == id).map(|c| c.revision);
                            self.mark_saved(id, s, revision);
                        }
                    }
                    staged.clear();
                    flushed.committed.extend(committed);
                    return Ok(flushed);
                }
                Err(StoreError::Conflict { jobs }) => {
                    for id in jobs {
                        staged.remove(&id);
                        self.drop_entries(id);
                        flushed.conflicts.push(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets what is held of a job, staged changes included (another process changed
    /// it, or the caller gives up its changes).
    pub fn forget(&self, id: JobId) {
        self.staged().remove(&id);
        self.drop_entries(id);
    }

    /// Memory use, from the cache's own estimates.
    pub fn stats(&self) -> CacheStats {
        let unsaved_bytes = self
            .entries
            .iter()
            .filter(|(_, v)| v.unsaved())
            .map(|(k, v)| ByEstimatedBytes.weight(&k, &v))
            .sum();
        CacheStats {
            budget_bytes: self.budget,
            used_bytes: self.entries.weight(),
            unsaved_bytes,
            entries: self.entries.len(),
            hits: self.entries.hits(),
            misses: self.entries.misses(),
        }
    }
}

#[cfg(test)]
mod tests;
