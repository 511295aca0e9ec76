//! The Cache trait and its implementation over quick_cache: jobs and pages of subjobs held
//! in memory within a byte budget, loaded from a [`Store`] on demand and dropped when the
//! budget is reached.

use std::ops::Range;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::{Change, Committed, Job, JobId, Store, StoreError, Subjob, SubjobIndex};

/// How many subjobs one cached page holds.
pub const SUBJOB_PAGE: SubjobIndex = 1024;

/// Memory use of a cache, from its own estimates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub budget_bytes: u64,
    pub used_bytes: u64,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

/// What the program keeps of the store in memory. Reads come from memory when they can;
/// writes go through the cache so that it never serves stale data.
pub trait Cache: Send + Sync {
    fn job(&self, id: JobId) -> Result<Option<Arc<Job>>, StoreError>;

    /// The subjobs of `id` with an index in `range`, loading only the pages that hold them.
    fn subjobs(&self, id: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError>;

    /// Writes changes to the store in one commit and brings memory up to date.
    fn commit(&self, changes: Vec<Change>) -> Result<Vec<Committed>, StoreError>;

    /// Forgets what is held of a job (another process changed it).
    fn forget(&self, id: JobId);

    fn stats(&self) -> CacheStats;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Job(JobId),
    Page(JobId, SubjobIndex),
}

#[derive(Clone)]
enum Entry {
    Job(Arc<Job>),
    Page(Arc<Vec<Subjob>>),
}

#[derive(Clone)]
struct ByEstimatedBytes;

impl Weighter<Key, Entry> for ByEstimatedBytes {
    fn weight(&self, _key: &Key, val: &Entry) -> u64 {
        match val {
            Entry::Job(j) => estimated_job_bytes(j),
            Entry::Page(p) => p.iter().map(estimated_subjob_bytes).sum::<u64>().max(1),
        }
    }
}

/// A rough count of the heap bytes a job holds: enough to keep a budget honest, cheap
/// enough to compute on every insert.
fn estimated_job_bytes(job: &Job) -> u64 {
    let spec = &job.spec;
    let exe = spec.application.executable();
    let strings = spec.name.len()
        + spec.comment.len()
        + exe.exe.len()
        + exe.args.iter().map(|a| a.len() + 24).sum::<usize>()
        + exe
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum::<usize>()
        + spec
            .input_files
            .iter()
            .map(|p| p.as_os_str().len() + 24)
            .sum::<usize>()
        + spec
            .output_files
            .iter()
            .map(|p| p.len() + 24)
            .sum::<usize>()
        + job.run.outputs.iter().map(|p| p.len() + 24).sum::<usize>();
    (512 + strings) as u64
}

fn estimated_subjob_bytes(sj: &Subjob) -> u64 {
    let overrides: usize = sj
        .overrides
        .iter()
        .map(|o| 48 + format!("{o:?}").len())
        .sum();
    let backend = sj.run.backend.id.as_ref().map_or(0, String::len)
        + sj.run.backend.native_state.as_ref().map_or(0, String::len)
        + sj.run.backend.reason.as_ref().map_or(0, String::len);
    let outputs: usize = sj.run.outputs.iter().map(|p| p.len() + 24).sum();
    (160 + overrides + backend + outputs) as u64
}

/// A write-through cache of jobs and subjob pages over a [`Store`], bounded by a byte
/// budget.
pub struct JobCache {
    store: Arc<dyn Store>,
    entries: QuickCache<Key, Entry, ByEstimatedBytes>,
    budget: u64,
}

impl JobCache {
    pub fn new(store: Arc<dyn Store>, budget_bytes: u64) -> JobCache {
        let budget = budget_bytes.max(1);
        JobCache {
            store,
            entries: QuickCache::with_weighter(1024, budget, ByEstimatedBytes),
            budget,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn page(&self, id: JobId, page: SubjobIndex) -> Result<Arc<Vec<Subjob>>, StoreError> {
        let key = Key::Page(id, page);
        if let Some(Entry::Page(p)) = self.entries.get(&key) {
            return Ok(p);
        }
        let start = page.saturating_mul(SUBJOB_PAGE);
        let loaded = Arc::new(
            self.store
                .subjobs(id, start..start.saturating_add(SUBJOB_PAGE))?,
        );
        self.entries.insert(key, Entry::Page(loaded.clone()));
        Ok(loaded)
    }
}

impl Cache for JobCache {
    fn job(&self, id: JobId) -> Result<Option<Arc<Job>>, StoreError> {
        if let Some(Entry::Job(j)) = self.entries.get(&Key::Job(id)) {
            return Ok(Some(j));
        }
        match self.store.job(id)? {
            Some(job) => {
                let job = Arc::new(job);
                self.entries.insert(Key::Job(id), Entry::Job(job.clone()));
                Ok(Some(job))
            }
            None => Ok(None),
        }
    }

    fn subjobs(&self, id: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        let mut out = Vec::new();
        if range.is_empty() {
            return Ok(out);
        }
        let first = range.start / SUBJOB_PAGE;
        let last = (range.end - 1) / SUBJOB_PAGE;
        for page in first..=last {
            let p = self.page(id, page)?;
            out.extend(p.iter().filter(|sj| range.contains(&sj.index)).cloned());
        }
        Ok(out)
    }

    fn commit(&self, changes: Vec<Change>) -> Result<Vec<Committed>, StoreError> {
        let result = self.store.commit(&changes);
        // Whatever the outcome, the jobs touched are re-read next time: after a success
        // their revisions changed, after a conflict memory is stale.
        for change in &changes {
            match change {
                Change::PutJob(job) => self.forget_job(job.id),
                Change::PutSubjobs { job, subjobs } => {
                    for page in subjobs.iter().map(|sj| sj.index / SUBJOB_PAGE) {
                        self.entries.remove(&Key::Page(*job, page));
                    }
                }
                Change::RemoveJob { job, .. } => self.forget(*job),
            }
        }
        if let Err(StoreError::Conflict { jobs }) = &result {
            for id in jobs {
                self.forget(*id);
            }
        }
        result
    }

    fn forget(&self, id: JobId) {
        self.forget_job(id);
        self.entries
            .retain(|k, _| !matches!(k, Key::Page(j, _) if *j == id));
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            budget_bytes: self.budget,
            used_bytes: self.entries.weight(),
            entries: self.entries.len(),
            hits: self.entries.hits(),
            misses: self.entries.misses(),
        }
    }
}

impl JobCache {
    fn forget_job(&self, id: JobId) {
        self.entries.remove(&Key::Job(id));
    }
}
