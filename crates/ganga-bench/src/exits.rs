//! `exits`: how long after a subjob's program ended the store recorded its end, for every
//! subjob of a job that real `ganga` processes ran and monitored.
//!
//! The end of a run is the modification time of its exit record, which the backend's
//! wrapper renames into place as soon as the program has exited (the layouts the plugins
//! document: Local `<workspace>/<job>/<subjob>/local/exit-<run>`, Batch `.../batch/exit`).
//! The store's side is the time the monitor gave the change to `completed` (the exit
//! noticed, the outputs collected, the change committed), in milliseconds, from its own
//! clock. The time of `completing` cannot serve: it is the time of the exit itself, as
//! the backend reported it from the record.

use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::Context as _;
use ganga_core::{JobId, Status, Workspaces};
use ganga_monitor::Cache;
use serde::Serialize;

/// What was found.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) subjobs: u64,
    pub(crate) completed: u64,
    /// Subjobs whose exit record or recorded times are missing (none when all is well).
    pub(crate) unmeasured: u64,
    /// Milliseconds from the exit record to `completed`, by percentile.
    pub(crate) completed_ms: Percentiles,
    /// Unix milliseconds: the first submission, the last exit record, the last
    /// `completed`.
    pub(crate) first_submitted_ms: i64,
    pub(crate) last_exit_ms: i64,
    pub(crate) last_completed_ms: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Percentiles {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if v.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The backends whose exit records this reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Records {
    Local,
    Batch,
}

impl Records {
    fn path(self, workspace: &Path, run: u32) -> std::path::PathBuf {
        match self {
            Records::Local => workspace.join("local").join(format!("exit-{run}")),
            Records::Batch => workspace.join("batch").join("exit"),
        }
    }
}

pub(crate) fn exits(
    cache: &Cache,
    home: &Path,
    id: JobId,
    records: Records,
) -> anyhow::Result<Figures> {
    let job = cache.job(id)?.with_context(|| format!("no job {id}"))?;
    let n = job.subjob_count();
    anyhow::ensure!(n > 0, "job {id} has no subjobs");
    let workspaces = Workspaces::new(home.join("workspace"));
    let mut completed_after = Vec::new();
    let (mut completed, mut unmeasured) = (0u64, 0u64);
    let (mut first_submitted, mut last_exit, mut last_completed) = (i64::MAX, 0i64, 0i64);
    const PAGE: u32 = 1024;
    let mut from = 0;
    while from < n {
        let to = (from + PAGE).min(n);
        for sj in cache.subjobs(id, from..to)? {
            let run = &sj.run;
            if run.status == Status::Completed {
                completed += 1;
            }
            if let Some(t) = run.times.get(Status::Submitted) {
                first_submitted = first_submitted.min(t.as_millis());
            }
            let record = records.path(
                &workspaces.dir(ganga_core::JobRef::subjob(id, sj.index)),
                run.submit_count,
            );
            let exit_ms = std::fs::metadata(&record)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64() * 1000.0);
            let (Some(exit_ms), Some(done)) = (exit_ms, run.times.get(Status::Completed)) else {
                unmeasured += 1;
                continue;
            };
            last_exit = last_exit.max(exit_ms as i64);
            last_completed = last_completed.max(done.as_millis());
            completed_after.push(done.as_millis() as f64 - exit_ms);
        }
        from = to;
    }
    Ok(Figures {
        subjobs: u64::from(n),
        completed,
        unmeasured,
        completed_ms: Percentiles::of(completed_after),
        first_submitted_ms: first_submitted,
        last_exit_ms: last_exit,
        last_completed_ms: last_completed,
    })
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(Percentiles::of(Vec::new()).p50.is_nan());
    }
}
