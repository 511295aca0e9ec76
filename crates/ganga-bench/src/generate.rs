//! Realistic jobs, made with the core's own verbs (split, submit, status changes) so that
//! every record is one the toolkit could have written. Pure: no store, no clock.
//!
//! The jobs are modelled on the script that made Ganga's baseline repositories
//! (`make_repo_bulk.py`: Local backend, `/bin/echo` split by an ArgSplitter whose argument
//! lists are `[label, "sub", k, "r<random>"]`, plain `/bin/sh` jobs that exit 0 or 1), so
//! that bytes per subjob compare with Ganga's figures.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ganga_core::{
    Application, BackendConfig, Executable, Job, JobId, JobSpec, LifecycleError, Splitter, Status,
    Subjob, Timestamp,
};

/// 2026-01-05T09:00:00Z: when the first generated job was created.
pub(crate) const T0: i64 = 1_767_603_600_000;

const SECOND: i64 = 1000;

/// The label in names and split arguments, as Ganga's fixture script has one.
const LABEL: &str = "bench";

/// A small deterministic generator (splitmix64): the same workload makes the same store.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number of milliseconds in `lo_secs..hi_secs` seconds.
    fn millis(&mut self, lo_secs: i64, hi_secs: i64) -> i64 {
        let span = u64::try_from((hi_secs - lo_secs).max(1) * SECOND).unwrap_or(1);
        lo_secs * SECOND + i64::try_from(self.below(span)).unwrap_or(0)
    }

    pub(crate) fn percent(&mut self, p: u32) -> bool {
        self.below(100) < u64::from(p)
    }
}

/// When the job with this position in the workload was created: one every 37 s.
pub(crate) fn created_at(position: u64) -> Timestamp {
    Timestamp::from_millis(T0 + i64::try_from(position).unwrap_or(0) * 37 * SECOND)
}

/// The worker a job ran on, from a small pool as a batch farm has.
fn host(rng: &mut Rng) -> String {
    format!("wn{:02}.farm.example.org", rng.below(16))
}

/// A process-group id as the Local backend records it.
pub(crate) fn pgid(rng: &mut Rng) -> String {
    (10_000 + rng.below(4_000_000)).to_string()
}

/// A master split into `n` subjobs, submitted, and run to the end: each subjob
/// `completed`, or `failed` (exit code 1) with probability `failed_percent`.
pub(crate) fn split_job(
    id: JobId,
    n: u32,
    failed_percent: u32,
    created: Timestamp,
) -> Result<(Job, Vec<Subjob>), LifecycleError> {
    let mut rng = Rng::new(id);
    let args = (0..n)
        .map(|k| {
            vec![
                LABEL.to_owned(),
                "sub".to_owned(),
                k.to_string(),
                format!("r{}", rng.below(1_000_001)),
            ]
        })
        .collect();
    let spec = JobSpec {
        auto_resubmit: None,
        name: format!("{LABEL}-split-run-{id}"),
        comment: format!("ArgSplitter job with {n} subjobs (run)"),
        application: Application::Executable(Executable {
            exe: "/bin/echo".to_owned(),
            args: Vec::new(),
            env: BTreeMap::from([("JOBNO".to_owned(), id.to_string())]),
        }),
        backend: BackendConfig::named("local"),
        input_files: Vec::new(),
        output_files: vec!["stdout".to_owned()],
        splitter: Some(Splitter::Args {
            args,
            append: false,
        }),
    };
    let mut job = Job::new(id, spec, created);
    let mut subjobs = job.split(created)?;
    let t = created.as_millis();
    job.begin_submit(&mut subjobs, Timestamp(t + 2 * SECOND))?;

    // Every subjob's times first, then the transitions phase by phase, so the master's
    // derived status moves through its statuses at plausible times.
    struct Plan {
        submitted: i64,
        running: i64,
        completing: i64,
        ended: i64,
        exit: i32,
    }
    let plans: Vec<Plan> = (0..i64::from(n))
        .map(|k| {
            let submitted = t + 2 * SECOND + k * 40;
            let running = submitted + rng.millis(0, 600);
            let completing = running + rng.millis(300, 3600);
            Plan {
                submitted,
                running,
                completing,
                ended: completing + rng.millis(1, 5),
                exit: i32::from(rng.percent(failed_percent)),
            }
        })
        .collect();
    for (sj, plan) in subjobs.iter_mut().zip(&plans) {
        job.set_subjob_status(sj, Status::Submitted, Timestamp(plan.submitted))?;
        sj.run.backend.id = Some(pgid(&mut rng));
        sj.run.backend.actual_ce = Some(host(&mut rng));
    }
    for (sj, plan) in subjobs.iter_mut().zip(&plans) {
        job.set_subjob_status(sj, Status::Running, Timestamp(plan.running))?;
        sj.run.backend.native_state = Some("running".to_owned());
    }
    for (sj, plan) in subjobs.iter_mut().zip(&plans) {
        job.set_subjob_status(sj, Status::Completing, Timestamp(plan.completing))?;
        sj.run.backend.native_state = Some(format!("exited {}", plan.exit));
        sj.run.backend.exit_code = Some(plan.exit);
    }
    for (sj, plan) in subjobs.iter_mut().zip(&plans) {
        let end = if plan.exit == 0 {
            Status::Completed
        } else {
            Status::Failed
        };
        job.set_subjob_status(sj, end, Timestamp(plan.ended))?;
        sj.run.outputs = vec!["stdout".to_owned()];
    }
    Ok((job, subjobs))
}

/// How a plain job ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlainKind {
    New,
    Completed,
    Failed,
}

impl PlainKind {
    pub(crate) fn choose(rng: &mut Rng, new_percent: u32, failed_percent: u32) -> PlainKind {
        let roll = rng.below(100);
        if roll < u64::from(new_percent) {
            PlainKind::New
        } else if roll < u64::from(new_percent + failed_percent) {
            PlainKind::Failed
        } else {
            PlainKind::Completed
        }
    }

    fn word(self) -> &'static str {
        match self {
            PlainKind::New => "new",
            PlainKind::Completed => "ok",
            PlainKind::Failed => "fail",
        }
    }
}

/// A job without subjobs: left `new`, or run to `completed` (exit 0) or `failed` (exit 1).
pub(crate) fn plain_job(
    id: JobId,
    kind: PlainKind,
    created: Timestamp,
) -> Result<Job, LifecycleError> {
    let mut rng = Rng::new(id.wrapping_mul(31).wrapping_add(7));
    let code = i32::from(kind == PlainKind::Failed);
    let spec = JobSpec {
        auto_resubmit: None,
        name: format!("{LABEL}-{}-{id}", kind.word()),
        comment: format!("plain {} job {id}", kind.word()),
        application: Application::Executable(Executable {
            exe: "/bin/sh".to_owned(),
            args: vec![
                "-c".to_owned(),
                format!("echo {LABEL} {id} > out.txt; exit {code}"),
            ],
            env: BTreeMap::from([("JOBNO".to_owned(), id.to_string())]),
        }),
        backend: BackendConfig::named("local"),
        input_files: if rng.percent(30) {
            vec![PathBuf::from(format!("/home/user/inputs/{LABEL}/data.txt"))]
        } else {
            Vec::new()
        },
        output_files: vec!["out.txt".to_owned()],
        splitter: None,
    };
    let mut job = Job::new(id, spec, created);
    if kind == PlainKind::New {
        return Ok(job);
    }
    let t = created.as_millis();
    job.begin_submit(&mut [], Timestamp(t + 2 * SECOND))?;
    let submitted = t + 2 * SECOND + rng.millis(0, 1);
    job.set_status(Status::Submitted, Timestamp(submitted))?;
    job.run.backend.id = Some(pgid(&mut rng));
    job.run.backend.actual_ce = Some(host(&mut rng));
    let running = submitted + rng.millis(0, 60);
    job.set_status(Status::Running, Timestamp(running))?;
    job.run.backend.native_state = Some("running".to_owned());
    let completing = running + rng.millis(1, 30);
    job.set_status(Status::Completing, Timestamp(completing))?;
    job.run.backend.native_state = Some(format!("exited {code}"));
    job.run.backend.exit_code = Some(code);
    let end = if code == 0 {
        Status::Completed
    } else {
        Status::Failed
    };
    job.set_status(end, Timestamp(completing + rng.millis(1, 3)))?;
    job.run.outputs = vec!["out.txt".to_owned()];
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_job_ends_with_counters_that_match_its_subjobs() {
        let (job, subjobs) = split_job(3, 200, 5, created_at(3)).expect("a legal run");
        assert_eq!(job.subjob_count(), 200);
        let failed = subjobs
            .iter()
            .filter(|s| s.status() == Status::Failed)
            .count();
        assert_eq!(job.subjobs.get(Status::Failed) as usize, failed);
        assert_eq!(
            job.subjobs.get(Status::Completed) as usize,
            subjobs.len() - failed
        );
        assert!(failed > 0 && failed < 40, "about 5% fail, got {failed}");
        let expected = if failed > 0 {
            Status::Failed
        } else {
            Status::Completed
        };
        assert_eq!(job.status(), expected);
    }

    #[test]
    fn plain_jobs_end_in_their_kind() {
        let kinds = [PlainKind::New, PlainKind::Completed, PlainKind::Failed];
        let ends = [Status::New, Status::Completed, Status::Failed];
        for (kind, end) in kinds.into_iter().zip(ends) {
            let job = plain_job(5, kind, created_at(5)).expect("a legal run");
            assert_eq!(job.status(), end);
        }
    }
}
