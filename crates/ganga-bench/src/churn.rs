//! `churn`: status changes committed in batches, as the monitor records what backends
//! said: each batch reads the subjobs it changes through the cache, moves each one legal
//! step along its cycle (see [`generate::advance`]), and commits the changed subjobs with
//! their masters, at the revisions read, in one commit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ganga_core::{Cache, Change, JobCache, JobId, Status, SubjobIndex, SummaryEntry, Timestamp};
use serde::Serialize;

use crate::generate::{self, Rng};
use crate::touch::{CacheFigures, named};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) changes: u64,
    /// Changes per commit.
    pub(crate) batch: u32,
    /// Masters whose subjobs one batch changes.
    pub(crate) jobs_per_batch: u32,
    pub(crate) failed_percent: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct Churned {
    pub(crate) changes: u64,
    pub(crate) commits: u64,
    /// Master visits: (batch, master) pairs, each one `PutJob` and one `PutSubjobs`.
    pub(crate) job_puts: u64,
    /// The statuses the changed subjobs moved to.
    pub(crate) to_statuses: BTreeMap<String, u64>,
    /// The whole loop: reading, changing and committing.
    pub(crate) work_secs: f64,
    /// Reading masters and subjobs through the cache.
    pub(crate) read_secs: f64,
    /// Inside `Cache::commit` (the store's commit, and the cache's bookkeeping).
    pub(crate) commit_secs: f64,
    pub(crate) cache: CacheFigures,
}

/// A split job and how its changes are spread over its subjobs.
struct Master {
    id: JobId,
    subjobs: SubjobIndex,
    /// Coprime with `subjobs`: consecutive change numbers land far apart.
    stride: u64,
    /// How many of its subjobs were changed so far.
    offset: u64,
}

impl Master {
    fn new(id: JobId, subjobs: SubjobIndex) -> Master {
        let n = u64::from(subjobs.max(1));
        let mut stride = (n * 618 / 1000).max(1);
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        Master {
            id,
            subjobs,
            stride,
            offset: 0,
        }
    }

    /// The next `k` subjobs to change, all different.
    fn next_indices(&mut self, k: u64) -> Vec<SubjobIndex> {
        let n = u64::from(self.subjobs);
        let k = k.min(n);
        let out = (0..k)
            .map(|w| {
                let i = ((self.offset + w) % n) * self.stride % n;
                SubjobIndex::try_from(i).unwrap_or(0)
            })
            .collect();
        self.offset += k;
        out
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The real time, later than `last`: changes are recorded when they happen.
fn now_after(last: i64) -> Timestamp {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(clock.max(last + 1))
}

pub(crate) fn churn(cache: &JobCache, plan: Plan) -> anyhow::Result<Churned> {
    if plan.batch == 0 || plan.jobs_per_batch == 0 {
        bail!("churn: --batch and --jobs-per-batch must be at least 1");
    }
    // Setup, not timed: which jobs have subjobs, from the store's summaries (not through
    // the cache, which starts empty).
    let mut masters = Vec::new();
    let mut from = 0;
    loop {
        let page = cache.store().summaries(from, 10_000)?;
        let Some(last) = page.last() else { break };
        from = last.id() + 1;
        for entry in page {
            if let SummaryEntry::Readable(s) = entry
                && !s.subjobs.is_empty()
            {
                let n = SubjobIndex::try_from(s.subjobs.total()).unwrap_or(SubjobIndex::MAX);
                masters.push(Master::new(s.id, n));
            }
        }
    }
    if masters.is_empty() {
        bail!("churn: the store has no job with subjobs");
    }

    let mut rng = Rng::new(0x0063_6875_726e);
    let mut to_counts = [0u64; Status::ALL.len()];
    let mut out = Churned {
        changes: 0,
        commits: 0,
        job_puts: 0,
        to_statuses: BTreeMap::new(),
        work_secs: 0.0,
        read_secs: 0.0,
        commit_secs: 0.0,
        cache: cache.stats().into(),
    };
    let mut read_time = Duration::ZERO;
    let mut commit_time = Duration::ZERO;
    let mut cursor = 0usize;
    let mut last_now = 0;
    let work = Instant::now();
    while out.changes < plan.changes {
        let size = (plan.changes - out.changes).min(u64::from(plan.batch));
        let jobs_here = u64::from(plan.jobs_per_batch)
            .min(masters.len() as u64)
            .min(size);
        let now = now_after(last_now);
        last_now = now.as_millis();
        let mut changes = Vec::with_capacity(2 * jobs_here as usize);
        let mut batch_changes = 0;
        for slot in 0..jobs_here {
            let k = size / jobs_here + u64::from(slot < size % jobs_here);
            let at = cursor % masters.len();
            let master = &mut masters[at];
            cursor += 1;
            let id = master.id;
            let t = Instant::now();
            let mut job = cache
                .job(id)?
                .with_context(|| format!("job {id} vanished"))?
                .as_ref()
                .clone();
            let mut subjobs = Vec::new();
            let mut indices = master.next_indices(k);
            // In index order, as the monitor reads them: neighbours share a cache page.
            indices.sort_unstable();
            for index in indices {
                let sj = cache
                    .subjobs(id, index..index + 1)?
                    .pop()
                    .with_context(|| format!("subjob {id}.{index} is missing"))?;
                subjobs.push(sj);
            }
            read_time += t.elapsed();
            for sj in &mut subjobs {
                generate::advance(&mut job, sj, now, plan.failed_percent, &mut rng)?;
                to_counts[sj.status().index()] += 1;
            }
            batch_changes += subjobs.len() as u64;
            changes.push(Change::PutJob(job));
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        let t = Instant::now();
        let committed = cache.commit(changes).context("committing a batch")?;
        commit_time += t.elapsed();
        if committed.len() as u64 != jobs_here {
            bail!(
                "a commit of {jobs_here} masters reported {} new revisions",
                committed.len()
            );
        }
        out.commits += 1;
        out.job_puts += jobs_here;
        if batch_changes == 0 {
            bail!("churn: a batch changed nothing");
        }
        out.changes += batch_changes;
    }
    out.work_secs = work.elapsed().as_secs_f64();
    out.read_secs = read_time.as_secs_f64();
    out.commit_secs = commit_time.as_secs_f64();
    out.to_statuses = named(&to_counts);
    out.cache = cache.stats().into();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_hands_out_each_subjob_once_before_repeating() {
        let mut m = Master::new(7, 1000);
        let mut seen: Vec<_> = (0..10).flat_map(|_| m.next_indices(100)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1000);
        let mut small = Master::new(8, 3);
        assert_eq!(small.next_indices(5).len(), 3);
    }
}
