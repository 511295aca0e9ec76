//! The listings — `ganga jobs`, `ganga subjobs ID`, `ganga subjobs --all` — written as
//! they are read: jobs a page of summaries at a time, subjobs a store page at a time,
//! each row or JSON object written before the next page is asked for. Memory stays the
//! same whatever the number of jobs and subjobs (a page, one job, the first rows of a
//! table), and a reader that stops early stops the reading.

use std::collections::VecDeque;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use ganga_core::{
    Job, JobId, JobRef, Status, Store, StoreError, Subjob, SubjobIndex, SummaryEntry, Workspaces,
};
use ganga_monitor::{SUBJOB_PAGE, blocking};

use crate::out::{errln, outln};
use crate::render;
use ganga_session::Session;

/// Summaries asked of the store at a time.
const SUMMARY_PAGE: u32 = 1000;

pub(crate) async fn jobs(
    session: &Session,
    statuses: &[Status],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = session.context()?.store.store().clone();
    let statuses = statuses.to_vec();
    blocking(move || {
        let mut pages = JobPages::new(store);
        let mut unreadable = Vec::new();
        let mut next = || -> anyhow::Result<Option<SummaryEntry>> {
            while let Some(e) = pages.next()? {
                match &e {
                    SummaryEntry::Readable(s) if !wanted(&statuses, s.status) => continue,
                    SummaryEntry::Readable(_) => {}
                    SummaryEntry::Unreadable { id, error } => {
                        unreadable.push((*id, error.clone()));
                    }
                }
                return Ok(Some(e));
            }
            Ok(None)
        };
        let out = BufWriter::new(std::io::stdout().lock());
        if json {
            render::json_array(out, || Ok(next()?.map(|e| render::summary_json(&e))))?;
        } else {
            let mut table = render::jobs_listing(out);
            while let Some(e) = next()? {
                table.row(render::job_row(&e))?;
            }
            let (rows, _) = table.finish()?;
            if rows == 0 {
                if statuses.is_empty() {
                    outln!("no jobs")?;
                } else {
                    outln!("no jobs {}", render::status_list(&statuses))?;
                }
            }
        }
        for (id, error) in &unreadable {
            errln!("warning: job {id} is unreadable: {error}");
        }
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// `ganga subjobs ID` (`job` given) or `ganga subjobs --all`.
pub(crate) async fn subjobs(
    session: &Session,
    job: Option<JobId>,
    statuses: &[Status],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = session.context()?.store.store().clone();
    let workspaces = session.workspaces();
    let statuses = statuses.to_vec();
    blocking(move || {
        let jobs = match job {
            Some(id) => match store.job(id)? {
                Some(job) => Jobs::One(Some(Arc::new(job))),
                None => bail!("job {id} does not exist"),
            },
            None => Jobs::All(JobPages::new(store.clone())),
        };
        let mut walk = SubjobWalk::new(store, jobs, statuses.clone());
        let out = BufWriter::new(std::io::stdout().lock());
        let rows = write_subjobs(&mut walk, &workspaces, json, out)?;
        if rows == 0 && !json {
            let among = if statuses.is_empty() {
                String::new()
            } else {
                format!(" {}", render::status_list(&statuses))
            };
            match job {
                Some(id) => outln!("job {id}: no subjobs{among}")?,
                None => outln!("no subjobs{among}")?,
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// Writes every subjob the walk gives, as a table or a JSON array; returns how many.
fn write_subjobs<W: Write>(
    walk: &mut SubjobWalk,
    workspaces: &Workspaces,
    json: bool,
    out: W,
) -> anyhow::Result<u64> {
    if json {
        let mut n = 0;
        render::json_array(out, || {
            Ok(walk.next()?.map(|(job, sj)| {
                n += 1;
                render::subjob_json(&job, &sj, workspaces)
            }))
        })?;
        Ok(n)
    } else {
        let mut table = render::subjobs_listing(out);
        let mut last_job = None;
        while let Some((job, sj)) = walk.next()? {
            if last_job != Some(job.id) {
                // The id column is as wide as the job's last subjob's id.
                let last = JobRef::subjob(job.id, job.subjob_count().saturating_sub(1));
                table.at_least(0, last.to_string().len());
                last_job = Some(job.id);
            }
            table.row(render::subjob_row(job.id, &sj))?;
        }
        Ok(table.finish()?.0)
    }
}

fn wanted(statuses: &[Status], status: Status) -> bool {
    statuses.is_empty() || statuses.contains(&status)
}

/// Every job's summary, in id order, a page at a time.
struct JobPages {
    store: Arc<dyn Store>,
    from: Option<JobId>,
    page: VecDeque<SummaryEntry>,
}

impl JobPages {
    fn new(store: Arc<dyn Store>) -> JobPages {
        JobPages {
            store,
            from: Some(0),
            page: VecDeque::new(),
        }
    }

    fn next(&mut self) -> Result<Option<SummaryEntry>, StoreError> {
        loop {
            if let Some(e) = self.page.pop_front() {
                return Ok(Some(e));
            }
            let Some(from) = self.from else {
                return Ok(None);
            };
            let page = self.store.summaries(from, SUMMARY_PAGE)?;
            self.from = page.last().and_then(|last| last.id().checked_add(1));
            self.page.extend(page);
        }
    }
}

/// Which jobs' subjobs to walk.
enum Jobs {
    One(Option<Arc<Job>>),
    /// Every job's; a job that cannot be read is a warning, and the walk goes on.
    All(JobPages),
}

/// The job being walked and where in its subjobs.
struct Current {
    job: Arc<Job>,
    next: SubjobIndex,
    page: VecDeque<Subjob>,
}

/// The subjobs of one job or of every job, in the given statuses (all if none), read a
/// store page at a time.
struct SubjobWalk {
    store: Arc<dyn Store>,
    jobs: Jobs,
    statuses: Vec<Status>,
    current: Option<Current>,
}

impl SubjobWalk {
    fn new(store: Arc<dyn Store>, jobs: Jobs, statuses: Vec<Status>) -> SubjobWalk {
        SubjobWalk {
            store,
            jobs,
            statuses,
            current: None,
        }
    }

    fn next(&mut self) -> anyhow::Result<Option<(Arc<Job>, Subjob)>> {
        loop {
            if let Some(cur) = &mut self.current {
                if let Some(sj) = cur.page.pop_front() {
                    return Ok(Some((cur.job.clone(), sj)));
                }
                let end = cur.job.subjob_count();
                if cur.next < end {
                    let range = cur.next..end.min(cur.next.saturating_add(SUBJOB_PAGE));
                    cur.next = range.end;
                    match self.store.subjobs(cur.job.id, range) {
                        Ok(page) => {
                            let statuses = &self.statuses;
                            cur.page.extend(
                                page.into_iter()
                                    .filter(|sj| wanted(statuses, sj.run.status)),
                            );
                        }
                        Err(e) if matches!(self.jobs, Jobs::All(_)) => {
                            errln!(
                                "warning: job {}: the rest of its subjobs are left out: {e}",
                                cur.job.id
                            );
                            self.current = None;
                        }
                        Err(e) => return Err(e.into()),
                    }
                    continue;
                }
                self.current = None;
            }
            match self.next_job()? {
                Some(job) => {
                    self.current = Some(Current {
                        job,
                        next: 0,
                        page: VecDeque::new(),
                    });
                }
                None => return Ok(None),
            }
        }
    }

    /// The next job with subjobs that may be wanted.
    fn next_job(&mut self) -> anyhow::Result<Option<Arc<Job>>> {
        match &mut self.jobs {
            Jobs::One(job) => Ok(job.take()),
            Jobs::All(pages) => {
                while let Some(e) = pages.next()? {
                    let summary = match e {
                        SummaryEntry::Readable(s) => s,
                        SummaryEntry::Unreadable { id, error } => {
                            errln!("warning: job {id} is unreadable: {error}");
                            continue;
                        }
                    };
                    // The summary counts the job's subjobs by status: a job with none
                    // wanted is not read at all.
                    let any = if self.statuses.is_empty() {
                        !summary.subjobs.is_empty()
                    } else {
                        self.statuses.iter().any(|&s| summary.subjobs.get(s) > 0)
                    };
                    if !any {
                        continue;
                    }
                    match self.store.job(summary.id) {
                        Ok(Some(job)) => return Ok(Some(Arc::new(job))),
                        Ok(None) => {} // removed meanwhile
                        Err(e) => errln!("warning: job {} is left out: {e}", summary.id),
                    }
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! That listings are written as they are read, shown on a real store: the pages read
    //! when each byte was written are recorded.

    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ganga_core::{
        ActiveJob, Application, BackendConfig, Change, CheckReport, Committed, Executable, JobSpec,
        Splitter, StoreDescription, Timestamp,
    };

    use super::*;

    /// A store that counts the subjob pages read from it.
    struct Counting {
        inner: ganga_store_lmdb::LmdbStore,
        pages: Arc<AtomicUsize>,
    }

    impl Store for Counting {
        fn describe(&self) -> Result<StoreDescription, StoreError> {
            self.inner.describe()
        }
        fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
            self.inner.reserve_ids(n)
        }
        fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
            self.inner.commit(changes)
        }
        fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
            self.inner.job(id)
        }
        fn subjobs(
            &self,
            job: JobId,
            range: Range<SubjobIndex>,
        ) -> Result<Vec<Subjob>, StoreError> {
            self.pages.fetch_add(1, Ordering::SeqCst);
            self.inner.subjobs(job, range)
        }
        fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
            self.inner.summaries(from, limit)
        }
        fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
            self.inner.active()
        }
        fn check(&self) -> Result<CheckReport, StoreError> {
            self.inner.check()
        }
        fn dump(&self) -> Result<String, StoreError> {
            self.inner.dump()
        }
    }

    /// Output, with the number of pages read when each write began.
    struct Recorder {
        bytes: Vec<u8>,
        writes: Vec<(usize, usize)>,
        pages: Arc<AtomicUsize>,
    }

    impl Recorder {
        /// The pages read when the byte at `offset` was written.
        fn pages_when_written(&self, offset: usize) -> usize {
            self.writes
                .iter()
                .rev()
                .find(|(start, _)| *start <= offset)
                .map(|(_, pages)| *pages)
                .expect("written")
        }

        fn offset_of(&self, text: &str) -> usize {
            String::from_utf8_lossy(&self.bytes)
                .find(text)
                .unwrap_or_else(|| panic!("`{text}` not written"))
        }
    }

    impl Write for &mut Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes
                .push((self.bytes.len(), self.pages.load(Ordering::SeqCst)));
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A store with two jobs of `n` subjobs each (every third failed), and its page counter.
    fn store_with(dir: &std::path::Path, n: u32) -> (Arc<dyn Store>, Arc<AtomicUsize>) {
        let inner = ganga_store_lmdb::LmdbStore::open(dir).expect("a new store");
        let now = Timestamp::from_millis(1_767_603_600_000);
        let first = inner.reserve_ids(2).expect("ids");
        let mut changes = Vec::new();
        for id in first..first + 2 {
            let spec = JobSpec {
                name: format!("job-{id}"),
                comment: String::new(),
                application: Application::Executable(Executable {
                    exe: "/bin/echo".into(),
                    args: Vec::new(),
                    env: Default::default(),
                }),
                backend: BackendConfig::named("local"),
                input_files: Vec::new(),
                output_files: Vec::new(),
                splitter: Some(Splitter::Args {
                    args: (0..n).map(|i| vec![i.to_string()]).collect(),
                    append: false,
                }),
                auto_resubmit: None,
            };
            let mut job = Job::new(id, spec, now);
            let mut subjobs = job.split(now).expect("split");
            for sj in subjobs.iter_mut().filter(|sj| sj.index % 3 == 0) {
                sj.run.status = Status::Failed;
            }
            job.subjobs = subjobs.iter().map(|sj| sj.run.status).collect();
            changes.push(Change::PutJob(job));
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        inner.commit(&changes).expect("commit");
        let pages = Arc::new(AtomicUsize::new(0));
        let store = Counting {
            inner,
            pages: pages.clone(),
        };
        (Arc::new(store), pages)
    }

    const N: u32 = 3 * SUBJOB_PAGE + 5;

    #[test]
    fn one_jobs_subjobs_are_written_as_each_page_is_read() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (store, pages) = store_with(dir.path(), N);
        let ws = Workspaces::new("/home/ws");
        for json in [true, false] {
            pages.store(0, Ordering::SeqCst);
            let job = Arc::new(store.job(0).expect("read").expect("job 0"));
            let mut walk = SubjobWalk::new(store.clone(), Jobs::One(Some(job)), Vec::new());
            let mut rec = Recorder {
                bytes: Vec::new(),
                writes: Vec::new(),
                pages: pages.clone(),
            };
            let n = write_subjobs(&mut walk, &ws, json, &mut rec).expect("written");
            assert_eq!(n, u64::from(N));
            assert_eq!(pages.load(Ordering::SeqCst), 4, "json {json}");
            let (first, last) = if json {
                ("\"id\": \"0.0\"", format!("\"id\": \"0.{}\"", N - 1))
            } else {
                (" 0.0 ", format!(" 0.{} ", N - 1))
            };
            // The first subjob went out before the second page was read; the last after
            // the fourth.
            assert_eq!(
                rec.pages_when_written(rec.offset_of(first)),
                1,
                "json {json}"
            );
            assert_eq!(
                rec.pages_when_written(rec.offset_of(&last)),
                4,
                "json {json}"
            );
            if json {
                let parsed: serde_json::Value =
                    serde_json::from_slice(&rec.bytes).expect("a whole JSON document");
                assert_eq!(parsed.as_array().map(Vec::len), Some(N as usize));
            }
        }
    }

    #[test]
    fn every_jobs_subjobs_in_a_status_are_written_as_they_are_read() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (store, pages) = store_with(dir.path(), N);
        let ws = Workspaces::new("/home/ws");
        let jobs = Jobs::All(JobPages::new(store.clone()));
        let mut walk = SubjobWalk::new(store.clone(), jobs, vec![Status::Failed]);
        let mut rec = Recorder {
            bytes: Vec::new(),
            writes: Vec::new(),
            pages: pages.clone(),
        };
        let n = write_subjobs(&mut walk, &ws, true, &mut rec).expect("written");
        let failed_per_job = N.div_ceil(3);
        assert_eq!(n, 2 * u64::from(failed_per_job));
        assert_eq!(pages.load(Ordering::SeqCst), 8);
        assert_eq!(rec.pages_when_written(rec.offset_of("\"id\": \"0.0\"")), 1);
        assert_eq!(rec.pages_when_written(rec.offset_of("\"id\": \"1.0\"")), 5);
        let parsed: serde_json::Value = serde_json::from_slice(&rec.bytes).expect("JSON");
        let ids: Vec<&str> = parsed
            .as_array()
            .expect("an array")
            .iter()
            .map(|o| o["id"].as_str().expect("an id"))
            .collect();
        let expected: Vec<String> = (0..2)
            .flat_map(|j| {
                (0..N)
                    .filter(|i| i % 3 == 0)
                    .map(move |i| format!("{j}.{i}"))
            })
            .collect();
        assert_eq!(ids, expected);
    }
}
