//! `churn`: status changes written in batches the way the monitor writes what backends
//! said: each batch moves subjobs one legal step along their cycle (completed/failed ->
//! submitting as a new run, -> submitted with a backend id and host, -> running, ->
//! completing with an exit code, -> completed or failed) as [`UnitUpdate`]s naming the
//! status and run the writer saw, and writes them all with one `Cache::update_units`
//! (one store transaction, the rules applied by the store: the masters' counters and
//! statuses follow). Which status and run each subjob has is read once before the timed
//! work (the monitor has them from the index of active units it polls from).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ganga_core::{
    JobId, JobRef, Status, SubjobIndex, SummaryEntry, Timestamp, UnitChange, UnitUpdate,
};
use ganga_monitor::Cache;
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
    /// Master visits: (batch, master) pairs, each one new revision of the master.
    pub(crate) job_puts: u64,
    /// The statuses the changed subjobs moved to.
    pub(crate) to_statuses: BTreeMap<String, u64>,
    /// The whole loop: making the updates and writing them.
    pub(crate) work_secs: f64,
    /// Making the updates (from what was read before the loop).
    pub(crate) read_secs: f64,
    /// Inside `Cache::update_units` (the store's transaction, and the cache forgetting
    /// the jobs touched).
    pub(crate) commit_secs: f64,
    pub(crate) cache: CacheFigures,
}

/// What the churn knows of a subjob: its status, its run, and whether its last exit was
/// a success.
#[derive(Debug, Clone, Copy)]
struct Seen {
    status: Status,
    run: u32,
    exit_ok: bool,
}

/// A split job and how its changes are spread over its subjobs.
struct Master {
    id: JobId,
    subjobs: SubjobIndex,
    seen: Vec<Seen>,
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
            seen: Vec::new(),
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

/// The update that moves a subjob one step along its cycle, and what it then is.
fn step(
    unit: JobRef,
    seen: Seen,
    now: Timestamp,
    failed_percent: u32,
    rng: &mut Rng,
) -> (UnitUpdate, Seen) {
    let mut next = seen;
    let change = match seen.status {
        Status::Completed | Status::Failed | Status::Killed => {
            next.run += 1;
            UnitChange {
                new_run: true,
                ..UnitChange::to(Status::Submitting, now)
            }
        }
        Status::Submitting => UnitChange {
            id: Some(generate::pgid(rng)),
            actual_ce: Some(format!("wn{:02}.farm.example.org", rng.below(16))),
            ..UnitChange::to(Status::Submitted, now)
        },
        Status::Submitted => UnitChange {
            native_state: Some("running".to_owned()),
            ..UnitChange::to(Status::Running, now)
        },
        Status::Running => {
            let exit = i32::from(rng.percent(failed_percent));
            next.exit_ok = exit == 0;
            UnitChange {
                native_state: Some(format!("exited {exit}")),
                exit_code: Some(exit),
                ..UnitChange::to(Status::Completing, now)
            }
        }
        // Completing, and anything the workload does not make (new...): ended.
        _ => UnitChange {
            outputs: Some(vec!["stdout".to_owned()]),
            ..UnitChange::to(
                if seen.exit_ok {
                    Status::Completed
                } else {
                    Status::Failed
                },
                now,
            )
        },
    };
    next.status = change.status.map_or(seen.status, |(s, _)| s);
    let update = UnitUpdate {
        unit,
        seen: seen.status,
        run: seen.run,
        change,
    };
    (update, next)
}

pub(crate) fn churn(cache: &Cache, plan: Plan) -> anyhow::Result<Churned> {
    if plan.batch == 0 || plan.jobs_per_batch == 0 {
        bail!("churn: --batch and --jobs-per-batch must be at least 1");
    }
    // Setup, not timed: which jobs have subjobs, from the store's summaries (not through
    // the cache, which starts empty), and each subjob's status and run.
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
    for m in &mut masters {
        m.seen = cache
            .store()
            .subjobs(m.id, 0..m.subjobs)?
            .iter()
            .map(|sj| Seen {
                status: sj.status(),
                run: sj.run.submit_count,
                exit_ok: sj.run.backend.exit_code == Some(0),
            })
            .collect();
        if m.seen.len() != m.subjobs as usize {
            bail!(
                "job {} has {} subjobs, not {}",
                m.id,
                m.seen.len(),
                m.subjobs
            );
        }
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
        let t = Instant::now();
        let mut updates = Vec::with_capacity(size as usize);
        for slot in 0..jobs_here {
            let k = size / jobs_here + u64::from(slot < size % jobs_here);
            let at = cursor % masters.len();
            let master = &mut masters[at];
            cursor += 1;
            let mut indices = master.next_indices(k);
            // In index order, as the monitor reads them from its index.
            indices.sort_unstable();
            for index in indices {
                let seen = master.seen[index as usize];
                let (update, next) = step(
                    JobRef::subjob(master.id, index),
                    seen,
                    now,
                    plan.failed_percent,
                    &mut rng,
                );
                master.seen[index as usize] = next;
                to_counts[next.status.index()] += 1;
                updates.push(update);
            }
        }
        read_time += t.elapsed();
        let t = Instant::now();
        let outcome = cache.update_units(&updates).context("writing a batch")?;
        commit_time += t.elapsed();
        if let Some((unit, why)) = outcome.refused.first() {
            bail!(
                "{} of {} updates were refused, the first ({unit}) because {why}",
                outcome.refused.len(),
                updates.len()
            );
        }
        if outcome.committed.len() as u64 != jobs_here {
            bail!(
                "a batch over {jobs_here} masters reported {} new revisions",
                outcome.committed.len()
            );
        }
        out.commits += 1;
        out.job_puts += jobs_here;
        if updates.is_empty() {
            bail!("churn: a batch changed nothing");
        }
        out.changes += updates.len() as u64;
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

    #[test]
    fn steps_go_round_the_cycle_and_follow_the_rules() {
        let (mut job, mut subjobs) =
            generate::split_job(1, 4, 0, generate::created_at(1)).expect("a legal run");
        let mut rng = Rng::new(9);
        let sj = &mut subjobs[2];
        let mut seen = Seen {
            status: sj.status(),
            run: sj.run.submit_count,
            exit_ok: true,
        };
        let mut statuses = Vec::new();
        for k in 0..10 {
            let now = Timestamp(generate::T0 + 10_000_000 + k);
            let (update, next) = step(JobRef::subjob(1, 2), seen, now, 0, &mut rng);
            job.apply_unit_update(Some(sj), &update)
                .expect("a legal step");
            assert_eq!((sj.status(), sj.run.submit_count), (next.status, next.run));
            seen = next;
            statuses.push(sj.status());
        }
        use Status::*;
        assert_eq!(
            statuses,
            [
                Submitting, Submitted, Running, Completing, Completed, Submitting, Submitted,
                Running, Completing, Completed
            ]
        );
        assert_eq!(job.subjobs.get(Completed), 4);
        assert_eq!(sj.run.submit_count, 3);
    }
}
