//! `populate`: creates the workload's jobs through [`Store::commit`], the way `ganga submit`
//! and the monitor would have left them.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ganga_core::{Change, JobId, Store};
use serde::{Deserialize, Serialize};

use crate::generate::{self, PlainKind, Rng};

/// The `[store]` table of a workload file: what `populate` creates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Shape {
    /// Split jobs (masters).
    pub(crate) masters: u64,
    pub(crate) subjobs_per_master: u32,
    /// Jobs without subjobs, spread evenly between the masters.
    pub(crate) plain_jobs: u64,
    /// One more master with this many subjobs, created last (0: none).
    #[serde(default)]
    pub(crate) big_job_subjobs: u32,
    /// Masters (each with all its subjobs) per commit.
    #[serde(default = "one")]
    pub(crate) masters_per_commit: u32,
    /// Plain jobs per commit.
    #[serde(default = "hundred")]
    pub(crate) plain_jobs_per_commit: u32,
    /// How many subjobs end `failed` rather than `completed`, in percent.
    #[serde(default = "five")]
    pub(crate) subjob_failed_percent: u32,
    /// How many plain jobs stay `new`, in percent.
    #[serde(default = "forty")]
    pub(crate) plain_new_percent: u32,
    /// How many plain jobs end `failed`, in percent; the rest end `completed`.
    #[serde(default = "fifteen")]
    pub(crate) plain_failed_percent: u32,
}

fn one() -> u32 {
    1
}
fn hundred() -> u32 {
    100
}
fn five() -> u32 {
    5
}
fn forty() -> u32 {
    40
}
fn fifteen() -> u32 {
    15
}

/// What `populate` did, and how long the store took.
#[derive(Debug, Serialize)]
pub(crate) struct Populated {
    pub(crate) jobs: u64,
    pub(crate) split_jobs: u64,
    pub(crate) plain_jobs: u64,
    pub(crate) subjobs: u64,
    /// The job with `big_job_subjobs` subjobs, if any.
    pub(crate) big_job: Option<JobId>,
    pub(crate) commits: u64,
    /// The whole loop: making the jobs in memory and committing them.
    pub(crate) work_secs: f64,
    /// Inside `reserve_ids` and `commit` only.
    pub(crate) store_secs: f64,
    /// Making the jobs (split, submit, status changes) in memory.
    pub(crate) generate_secs: f64,
}

/// The commit being gathered, and the time spent so far.
struct Populator<'a> {
    store: &'a dyn Store,
    shape: &'a Shape,
    changes: Vec<Change>,
    masters: u32,
    plain: u32,
    kinds: Rng,
    store_time: Duration,
    generate_time: Duration,
    out: Populated,
}

/// Creates every job of `shape` in `store`, which must hold no job yet.
pub(crate) fn populate(store: &dyn Store, shape: &Shape) -> anyhow::Result<Populated> {
    if shape.masters > 0 && shape.subjobs_per_master == 0 {
        bail!("store.subjobs_per_master must be at least 1");
    }
    let big = u64::from(shape.big_job_subjobs > 0);
    let total = shape.masters + shape.plain_jobs + big;
    let work = Instant::now();

    let t = Instant::now();
    let first = store.reserve_ids(total).context("reserving job ids")?;
    let reserve_time = t.elapsed();
    if first != 0 {
        bail!(
            "the store already has jobs (the first free id is {first}): populate needs a fresh home"
        );
    }
    let mut p = Populator {
        store,
        shape,
        changes: Vec::new(),
        masters: 0,
        plain: 0,
        kinds: Rng::new(0x6b69_6e64),
        store_time: reserve_time,
        generate_time: Duration::ZERO,
        out: Populated {
            jobs: total,
            split_jobs: shape.masters + big,
            plain_jobs: shape.plain_jobs,
            subjobs: 0,
            big_job: None,
            commits: 0,
            work_secs: 0.0,
            store_secs: 0.0,
            generate_secs: 0.0,
        },
    };

    let mut next: JobId = first;
    for i in 0..shape.masters {
        p.master(next, shape.subjobs_per_master)?;
        next += 1;
        // Plain jobs between this master and the next, so that the two kinds mix.
        let plain_here =
            (i + 1) * shape.plain_jobs / shape.masters - i * shape.plain_jobs / shape.masters;
        for _ in 0..plain_here {
            p.plain(next)?;
            next += 1;
        }
    }
    if shape.masters == 0 {
        for _ in 0..shape.plain_jobs {
            p.plain(next)?;
            next += 1;
        }
    }
    p.flush()?;
    if big == 1 {
        p.master(next, shape.big_job_subjobs)?;
        p.flush()?;
        p.out.big_job = Some(next);
        next += 1;
    }
    debug_assert_eq!(next, first + total);
    let mut out = p.out;
    out.work_secs = work.elapsed().as_secs_f64();
    out.store_secs = p.store_time.as_secs_f64();
    out.generate_secs = p.generate_time.as_secs_f64();
    Ok(out)
}

impl Populator<'_> {
    fn master(&mut self, id: JobId, n: u32) -> anyhow::Result<()> {
        let t = Instant::now();
        let (job, subjobs) = generate::split_job(
            id,
            n,
            self.shape.subjob_failed_percent,
            generate::created_at(id),
        )?;
        self.generate_time += t.elapsed();
        self.changes.push(Change::PutJob(job));
        self.changes.push(Change::PutSubjobs { job: id, subjobs });
        self.masters += 1;
        self.out.subjobs += u64::from(n);
        if self.masters >= self.shape.masters_per_commit.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    fn plain(&mut self, id: JobId) -> anyhow::Result<()> {
        let t = Instant::now();
        let kind = PlainKind::choose(
            &mut self.kinds,
            self.shape.plain_new_percent,
            self.shape.plain_failed_percent,
        );
        let job = generate::plain_job(id, kind, generate::created_at(id))?;
        self.generate_time += t.elapsed();
        self.changes.push(Change::PutJob(job));
        self.plain += 1;
        if self.plain >= self.shape.plain_jobs_per_commit.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits what is gathered, in one transaction.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.changes.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        self.store
            .commit(&self.changes)
            .context("committing generated jobs")?;
        self.store_time += t.elapsed();
        self.out.commits += 1;
        self.changes.clear();
        self.masters = 0;
        self.plain = 0;
        Ok(())
    }
}
