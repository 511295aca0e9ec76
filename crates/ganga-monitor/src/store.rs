//! [`StoreHandle`]: the one door to the jobs for async code. Every call runs on tokio's
//! blocking pool, so no async thread ever waits on the disk; reads go through the cache.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use ganga_core::{
    ActiveJob, ActiveUnit, Change, Committed, Job, JobId, JobRef, Status, Store, StoreError,
    Subjob, SubjobIndex, SummaryEntry, UnitCursor, UnitUpdate, UnitsUpdated,
};
use ganga_records::RecordStore;

use crate::{Cache, OpError};

/// How many times a write refused because another process changed its job meanwhile is
/// read and tried again before giving up.
const CONFLICT_ATTEMPTS: usize = 8;

/// The store and its cache, for async callers.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn RecordStore>,
    cache: Arc<Cache>,
}

impl StoreHandle {
    /// A handle over `store`, caching at most `cache_budget_bytes` of it.
    pub fn new(store: Arc<dyn RecordStore>, cache_budget_bytes: u64) -> StoreHandle {
        let cache = Arc::new(Cache::new(store.clone(), cache_budget_bytes));
        StoreHandle { store, cache }
    }

    /// The store itself, for what only it answers (checks, dumps, migrations).
    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    /// The cache, for callers that read in bulk from a blocking thread of their own.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cache, &dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, OpError> {
        let (cache, store) = (self.cache.clone(), self.store.clone());
        Ok(blocking(move || f(&cache, &*store)).await??)
    }

    pub async fn job(&self, id: JobId) -> Result<Option<Arc<Job>>, OpError> {
        self.run(move |c, _| c.job(id)).await
    }

    /// The job as stored now: what is held of it is forgotten first.
    pub async fn fresh_job(&self, id: JobId) -> Result<Option<Arc<Job>>, OpError> {
        self.run(move |c, _| {
            c.forget(id);
            c.job(id)
        })
        .await
    }

    pub async fn subjobs(
        &self,
        id: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<Vec<Subjob>, OpError> {
        self.run(move |c, _| c.subjobs(id, range)).await
    }

    pub async fn statuses(
        &self,
        id: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<Vec<(SubjobIndex, Status)>, OpError> {
        self.run(move |c, _| c.statuses(id, range)).await
    }

    pub async fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, OpError> {
        self.run(move |c, _| c.summaries(from, limit)).await
    }

    pub async fn reserve_ids(&self, n: u64) -> Result<JobId, OpError> {
        self.run(move |_, s| s.reserve_ids(n)).await
    }

    pub async fn active(&self) -> Result<Vec<ActiveJob>, OpError> {
        self.run(|_, s| s.active()).await
    }

    /// Every active unit, read from the store's index page by page.
    pub async fn active_units(&self) -> Result<Vec<ActiveUnit>, OpError> {
        const PAGE: u32 = 16 * 1024;
        self.run(|_, s| {
            let mut all: Vec<ActiveUnit> = Vec::new();
            let mut after: Option<UnitCursor> = None;
            loop {
                let page = s.active_units(after.as_ref(), PAGE)?;
                let full = page.len() >= PAGE as usize;
                after = page.last().map(UnitCursor::after);
                all.extend(page);
                if !full || after.is_none() {
                    return Ok(all);
                }
            }
        })
        .await
    }

    /// The active ones of these units of a backend, as stored now (not as cached).
    pub async fn units_of(
        &self,
        backend: &str,
        units: Vec<JobRef>,
    ) -> Result<Vec<ActiveUnit>, OpError> {
        let backend = backend.to_owned();
        self.run(move |c, s| {
            let mut by_job: BTreeMap<JobId, Vec<Option<SubjobIndex>>> = BTreeMap::new();
            for u in units {
                by_job.entry(u.job).or_default().push(u.subjob);
            }
            let mut out = Vec::new();
            for (id, mut indices) in by_job {
                indices.sort_unstable();
                indices.dedup();
                if indices.contains(&None) {
                    if let Some(job) = s.job(id)?
                        && !job.is_split()
                        && job.status().is_active()
                        && job.spec.backend.kind == backend
                    {
                        out.push(ActiveUnit::of(job.job_ref(), &backend, &job.run));
                    }
                    continue;
                }
                // The master's backend never changes: the cached copy tells it.
                match c.job(id)? {
                    Some(job) if job.spec.backend.kind == backend => {}
                    _ => continue,
                }
                let indices: Vec<SubjobIndex> = indices.into_iter().flatten().collect();
                for range in runs(&indices) {
                    for sj in s.subjobs(id, range)? {
                        if sj.status().is_active() && indices.binary_search(&sj.index).is_ok() {
                            let unit = JobRef::subjob(id, sj.index);
                            out.push(ActiveUnit::of(unit, &backend, &sj.run));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Writes changes in one commit (all or nothing, refused on a stale revision).
    pub async fn commit(&self, changes: Vec<Change>) -> Result<Vec<Committed>, OpError> {
        self.run(move |c, _| c.commit(changes)).await
    }

    /// Applies unit updates in one transaction; what is held of the jobs they touched is
    /// forgotten, so the next read sees them as stored. A store that reads whole jobs to
    /// apply them may find one changed by another process meanwhile: then they are
    /// applied again on what it holds now ([`StoreHandle::retry_on_conflict`]; each
    /// update carries the status and run its writer saw, so none is applied twice).
    pub async fn update_units(&self, updates: Vec<UnitUpdate>) -> Result<UnitsUpdated, OpError> {
        if updates.is_empty() {
            return Ok(UnitsUpdated::default());
        }
        let updates = Arc::new(updates);
        self.retry_on_conflict(|| {
            let updates = updates.clone();
            self.run(move |c, _| c.update_units(&updates))
        })
        .await
    }

    /// Runs `attempt` (a read, a change computed from what it read, a commit) until it
    /// is not refused for a conflict: each time another process changed one of its jobs
    /// between the read and the commit, what is held of those jobs is forgotten and
    /// `attempt` runs again on fresh reads. `attempt` must therefore only compute from
    /// what it reads (and what it captured), never act on the outside world. After
    /// [`CONFLICT_ATTEMPTS`] refusals in a row the job is [`OpError::Contended`].
    ///
    /// The one place the host retries a write.
    pub async fn retry_on_conflict<R, Attempt>(
        &self,
        mut attempt: impl FnMut() -> Attempt,
    ) -> Result<R, OpError>
    where
        Attempt: Future<Output = Result<R, OpError>>,
    {
        let mut jobs = Vec::new();
        for _ in 0..CONFLICT_ATTEMPTS {
            match attempt().await {
                Err(OpError::Store(StoreError::Conflict { jobs: changed })) => {
                    tracing::debug!(
                        ?changed,
                        "changed by another process meanwhile; trying again"
                    );
                    for &id in &changed {
                        self.cache.forget(id);
                    }
                    jobs = changed;
                }
                done => return done,
            }
        }
        Err(match jobs.first() {
            Some(&id) => OpError::Contended(JobRef::job(id)),
            None => OpError::Store(StoreError::Conflict { jobs }),
        })
    }

    /// Forgets what is held of a job (another process changed it).
    pub fn forget(&self, id: JobId) {
        self.cache.forget(id);
    }
}

/// Sorted indices as ranges to read: neighbours share a read, far-apart ones do not
/// drag in everything between them.
fn runs(indices: &[SubjobIndex]) -> Vec<Range<SubjobIndex>> {
    let mut out: Vec<Range<SubjobIndex>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(r) if i <= r.end.saturating_add(16) => r.end = i.saturating_add(1),
            _ => out.push(i..i.saturating_add(1)),
        }
    }
    out
}

/// Runs blocking work (store reads, file locks, stdout writes) on tokio's blocking pool,
/// so that no async thread waits on the disk: the one way the monitor and the CLI do so.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::Internal(format!("a store task failed: {e}")))
}
