//! The cache over the real LMDB store: within its budget, at fine grain, and never losing
//! a change it has not yet written.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::sync::Arc;

use ganga_core::{
    Application, BackendConfig, Change, Executable, Job, JobSpec, Splitter, Status, Store, Subjob,
    Timestamp,
};
use ganga_records::RecordStore;
use ganga_store_lmdb::LmdbStore;

use super::Cache;

fn store() -> (tempfile::TempDir, Arc<dyn RecordStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LmdbStore::open(&dir.path().join("store")).unwrap());
    (dir, store)
}

fn spec(n: usize) -> JobSpec {
    JobSpec {
        auto_resubmit: None,
        name: format!("job of {n}"),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/true".into(),
            args: vec![],
            env: Default::default(),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec![],
        splitter: (n > 0).then(|| Splitter::Args {
            args: (0..n).map(|i| vec![format!("{i}")]).collect(),
            append: false,
        }),
    }
}

/// Stores `jobs` jobs of `subjobs` subjobs each, all submitted.
fn fill(store: &dyn Store, jobs: u64, subjobs: usize) {
    let first = store.reserve_ids(jobs).unwrap();
    for id in first..first + jobs {
        let mut job = Job::new(id, spec(subjobs), Timestamp(1_000));
        let mut sjs = job.split(Timestamp(1_000)).unwrap();
        job.begin_submit(&mut sjs, Timestamp(1_001)).unwrap();
        let mut changes = vec![Change::PutJob(job)];
        if !sjs.is_empty() {
            changes.push(Change::PutSubjobs {
                job: id,
                subjobs: sjs,
            });
        }
        store.commit(&changes).unwrap();
    }
}

#[test]
fn memory_stays_within_the_budget_while_reading_everything() {
    let (_dir, store) = store();
    fill(&*store, 20, 2_500);
    let budget = 512 * 1024;
    let cache = Cache::new(store.clone(), budget);
    let mut seen = 0;
    for id in 0..20 {
        let job = cache.job(id).unwrap().unwrap();
        let subjobs = cache.subjobs(id, 0..job.subjob_count()).unwrap();
        seen += subjobs
            .iter()
            .filter(|s| s.status() == Status::Submitting)
            .count();
        let stats = cache.stats();
        assert!(stats.used_bytes <= stats.budget_bytes, "{stats:?}");
    }
    assert_eq!(seen, 50_000);
}

#[test]
fn listing_loads_no_subjob_and_one_subjob_loads_one_page() {
    let (_dir, store) = store();
    fill(&*store, 3, 5_000);
    let cache = Cache::new(store, 64 << 20);
    let listed = cache.summaries(0, 100).unwrap();
    assert_eq!(listed.len(), 3);
    let after_listing = cache.stats();
    assert_eq!(
        after_listing.entries, 3,
        "three summaries and nothing else: {after_listing:?}"
    );

    let one = cache.subjobs(1, 4_321..4_322).unwrap();
    assert_eq!(one[0].index, 4_321);
    let after_one = cache.stats();
    assert_eq!(after_one.entries, 4, "one page more: {after_one:?}");
    // A page holds a fraction of the job.
    let whole = cache.subjobs(1, 0..5_000).unwrap();
    assert_eq!(whole.len(), 5_000);
    assert!(cache.stats().used_bytes > after_one.used_bytes * 3);
}

#[test]
fn staged_changes_survive_eviction_under_a_tiny_budget_and_all_reach_the_store() {
    let (_dir, store) = store();
    fill(&*store, 30, 100);
    // Far too small for what will be staged.
    let cache = Cache::new(store.clone(), 4 * 1024);
    for id in 0..30u64 {
        let mut job = Job::clone(&cache.job(id).unwrap().unwrap());
        let mut sjs = cache.subjobs(id, 0..100).unwrap();
        for sj in sjs.iter_mut().take(10) {
            job.set_subjob_status(sj, Status::Submitted, Timestamp(2_000))
                .unwrap();
        }
        let changed: Vec<Subjob> = sjs.into_iter().take(10).collect();
        cache
            .stage(vec![
                Change::PutJob(job),
                Change::PutSubjobs {
                    job: id,
                    subjobs: changed,
                },
            ])
            .unwrap();
        // Read other things to push the cache past its budget.
        for other in 0..30 {
            cache.subjobs(other, 0..100).unwrap();
        }
        let stats = cache.stats();
        assert!(stats.unsaved_bytes > 0);
    }
    // Nothing reached the store yet...
    assert_eq!(
        store
            .job(7)
            .unwrap()
            .unwrap()
            .subjobs
            .get(Status::Submitted),
        0
    );
    // ... but memory shows every staged change, even after all that reading.
    for id in 0..30 {
        assert_eq!(
            cache
                .job(id)
                .unwrap()
                .unwrap()
                .subjobs
                .get(Status::Submitted),
            10,
            "job {id}"
        );
        let sjs = cache.subjobs(id, 0..100).unwrap();
        assert_eq!(
            sjs.iter()
                .filter(|s| s.status() == Status::Submitted)
                .count(),
            10,
            "job {id}"
        );
    }
    let flushed = cache.flush().unwrap();
    assert_eq!(flushed.conflicts, Vec::<u64>::new());
    assert_eq!(flushed.committed.len(), 30);
    for id in 0..30 {
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.subjobs.get(Status::Submitted), 10);
        assert_eq!(job.revision, 2);
        let sjs = store.subjobs(id, 0..100).unwrap();
        assert_eq!(
            sjs.iter()
                .filter(|s| s.status() == Status::Submitted)
                .count(),
            10
        );
    }
    assert_eq!(store.check().unwrap().problems, Vec::<String>::new());
    assert_eq!(
        cache.stats().unsaved_bytes,
        0,
        "written entries can be evicted again"
    );
    assert!(cache.stats().used_bytes <= 4 * 1024);
}

#[test]
fn a_flush_drops_only_the_jobs_another_process_changed() {
    let (_dir, store) = store();
    fill(&*store, 2, 3);
    let cache = Cache::new(store.clone(), 1 << 20);
    for id in 0..2 {
        let mut job = Job::clone(&cache.job(id).unwrap().unwrap());
        Arc::make_mut(&mut job.spec).comment = format!("staged {id}");
        cache.stage(vec![Change::PutJob(job)]).unwrap();
    }
    // Another writer changes job 1 behind the cache's back.
    let mut other = store.job(1).unwrap().unwrap();
    Arc::make_mut(&mut other.spec).comment = "theirs".into();
    store.commit(&[Change::PutJob(other)]).unwrap();

    let flushed = cache.flush().unwrap();
    assert_eq!(flushed.conflicts, vec![1]);
    assert_eq!(flushed.committed.len(), 1);
    assert_eq!(store.job(0).unwrap().unwrap().spec.comment, "staged 0");
    assert_eq!(store.job(1).unwrap().unwrap().spec.comment, "theirs");
    assert_eq!(
        cache.job(1).unwrap().unwrap().spec.comment,
        "theirs",
        "memory forgot the loser"
    );
}

#[test]
fn write_through_commits_update_memory_without_a_reread() {
    let (_dir, store) = store();
    fill(&*store, 1, 2_000);
    let cache = Cache::new(store.clone(), 64 << 20);
    let mut job = Job::clone(&cache.job(0).unwrap().unwrap());
    let mut sjs = cache.subjobs(0, 1_500..1_501).unwrap();
    job.set_subjob_status(&mut sjs[0], Status::Submitted, Timestamp(5))
        .unwrap();
    let committed = cache
        .commit(vec![
            Change::PutJob(job),
            Change::PutSubjobs {
                job: 0,
                subjobs: sjs,
            },
        ])
        .unwrap();
    assert_eq!(committed[0].revision, 2);
    let misses = cache.stats().misses;
    assert_eq!(cache.job(0).unwrap().unwrap().revision, 2);
    assert_eq!(
        cache.subjobs(0, 1_500..1_501).unwrap()[0].status(),
        Status::Submitted
    );
    assert_eq!(cache.stats().misses, misses, "served from memory");
}

#[test]
fn statuses_come_from_packed_pages_and_follow_staged_changes() {
    let (_dir, store) = store();
    fill(&*store, 1, 3_000);
    let cache = Cache::new(store, 64 << 20);
    let statuses = cache.statuses(0, 0..3_000).unwrap();
    assert_eq!(statuses.len(), 3_000);
    assert!(statuses.iter().all(|&(_, s)| s == Status::Submitting));
    let mut job = Job::clone(&cache.job(0).unwrap().unwrap());
    let mut sj = cache.subjobs(0, 2_500..2_501).unwrap().remove(0);
    job.set_subjob_status(&mut sj, Status::Submitted, Timestamp(9))
        .unwrap();
    cache
        .stage(vec![
            Change::PutJob(job),
            Change::PutSubjobs {
                job: 0,
                subjobs: vec![sj],
            },
        ])
        .unwrap();
    let statuses = cache.statuses(0, 2_499..2_502).unwrap();
    assert_eq!(
        statuses,
        vec![
            (2_499, Status::Submitting),
            (2_500, Status::Submitted),
            (2_501, Status::Submitting)
        ]
    );
}

/// The real store, and a record of the kinds of change each commit carried.
struct Recording {
    inner: Arc<dyn RecordStore>,
    commits: std::sync::Mutex<Vec<Vec<&'static str>>>,
}

impl Store for Recording {
    fn describe(&self) -> Result<ganga_core::StoreDescription, ganga_core::StoreError> {
        self.inner.describe()
    }
    fn reserve_ids(&self, n: u64) -> Result<ganga_core::JobId, ganga_core::StoreError> {
        self.inner.reserve_ids(n)
    }
    fn commit(
        &self,
        changes: &[Change],
    ) -> Result<Vec<ganga_core::Committed>, ganga_core::StoreError> {
        let kinds = changes
            .iter()
            .map(|c| match c {
                Change::PutJob(_) => "job",
                Change::PutRun(_) => "run",
                Change::PutSubjobs { .. } => "subjobs",
                Change::RemoveJob { .. } => "remove",
            })
            .collect();
        self.commits.lock().unwrap().push(kinds);
        self.inner.commit(changes)
    }
    fn job(&self, id: ganga_core::JobId) -> Result<Option<Job>, ganga_core::StoreError> {
        self.inner.job(id)
    }
    fn subjobs(
        &self,
        job: ganga_core::JobId,
        range: std::ops::Range<ganga_core::SubjobIndex>,
    ) -> Result<Vec<Subjob>, ganga_core::StoreError> {
        self.inner.subjobs(job, range)
    }
    fn summaries(
        &self,
        from: ganga_core::JobId,
        limit: u32,
    ) -> Result<Vec<ganga_core::SummaryEntry>, ganga_core::StoreError> {
        self.inner.summaries(from, limit)
    }
    fn active(&self) -> Result<Vec<ganga_core::ActiveJob>, ganga_core::StoreError> {
        self.inner.active()
    }
    fn check(&self) -> Result<ganga_core::CheckReport, ganga_core::StoreError> {
        self.inner.check()
    }
    fn dump(&self) -> Result<String, ganga_core::StoreError> {
        self.inner.dump()
    }
}

impl RecordStore for Recording {
    fn subjob_batch(
        &self,
        job: ganga_core::JobId,
        range: std::ops::Range<ganga_core::SubjobIndex>,
    ) -> Result<ganga_records::SubjobBatch, ganga_core::StoreError> {
        self.inner.subjob_batch(job, range)
    }
}

#[test]
fn a_job_put_that_changes_only_its_run_is_committed_as_a_run_update() {
    let (_dir, inner) = store();
    fill(&*inner, 1, 100);
    let store = Arc::new(Recording {
        inner,
        commits: Default::default(),
    });
    let cache = Cache::new(store.clone(), 64 << 20);

    // A copy of the job held, its run changed: a run update.
    let mut job = Job::clone(&cache.job(0).unwrap().unwrap());
    let mut sjs = cache.subjobs(0, 7..8).unwrap();
    job.set_subjob_status(&mut sjs[0], Status::Submitted, Timestamp(5))
        .unwrap();
    let subjobs = Change::PutSubjobs {
        job: 0,
        subjobs: sjs.clone(),
    };
    cache
        .commit(vec![Change::PutJob(job), subjobs.clone()])
        .unwrap();

    // Its spec changed (a new comment): the whole job.
    let mut renamed = Job::clone(&cache.job(0).unwrap().unwrap());
    Arc::make_mut(&mut renamed.spec).comment = "renamed".into();
    cache.commit(vec![Change::PutJob(renamed)]).unwrap();

    // Its metadata changed: the whole job.
    let mut labelled = Job::clone(&cache.job(0).unwrap().unwrap());
    labelled.metadata.insert("label".into(), "x".into());
    cache.commit(vec![Change::PutJob(labelled)]).unwrap();

    // A copy at an older revision is sent as it is, to be refused as stale.
    let stale = Job::clone(&cache.job(0).unwrap().unwrap());
    let mut newer = stale.clone();
    newer.run.backend.reason = Some("newer".into());
    cache.commit(vec![Change::PutJob(newer)]).unwrap();
    assert!(cache.commit(vec![Change::PutJob(stale)]).is_err());

    assert_eq!(
        *store.commits.lock().unwrap(),
        vec![
            vec!["run", "subjobs"],
            vec!["job"],
            vec!["job"],
            vec!["run"],
            vec!["job"],
        ]
    );
    // What is stored is the job as put, through every kind of write.
    let stored = store.job(0).unwrap().unwrap();
    assert_eq!(stored.spec.comment, "renamed");
    assert_eq!(stored.metadata["label"], "x");
    assert_eq!(stored.run.backend.reason.as_deref(), Some("newer"));
    assert_eq!(stored.subjobs.get(Status::Submitted), 1);
    assert_eq!(
        store.subjobs(0, 7..8).unwrap()[0].status(),
        Status::Submitted
    );
    assert!(store.check().unwrap().problems.is_empty());
}
