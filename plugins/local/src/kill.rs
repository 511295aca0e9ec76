//! Stopping jobs: record the kill, SIGTERM the process group, SIGKILL what is left after
//! the grace period.

use std::io;
use std::time::{Duration, Instant};

use ganga_core::{Answers, BackendRef, JobRef, PerJob};

use crate::layout::{JobDirs, KILLED, WRAPPER};
use crate::poll::job_pgid;
use crate::procs::{self, GroupScan, Identity, Liveness};
use crate::records::{self, Killed};

/// How often the grace period looks whether the signalled groups are gone.
const GRACE_TICK: Duration = Duration::from_millis(100);

/// A job that was signalled and may still need SIGKILL.
#[derive(Debug, Clone)]
struct Signalled {
    index: usize,
    job: JobRef,
    pgid: i32,
    dirs: JobDirs,
    start_ticks: Option<u64>,
}

impl Signalled {
    fn liveness(&self, scan: &mut GroupScan) -> io::Result<Liveness> {
        let wrapper = self.dirs.control_file(WRAPPER);
        let identity = Identity {
            start_ticks: self.start_ticks,
            wrapper: &wrapper,
        };
        procs::liveness(self.pgid, identity, scan)
    }
}

pub(crate) async fn kill_batch(jobs: &[BackendRef], grace: Duration) -> Answers<()> {
    let results = kill_in_order(jobs, grace).await;
    jobs.iter().map(|r| r.job).zip(results).collect()
}

/// One result per job, in the order given.
async fn kill_in_order(jobs: &[BackendRef], grace: Duration) -> Vec<PerJob<()>> {
    let owned = jobs.to_vec();
    let first = tokio::task::spawn_blocking(move || term_all(&owned)).await;
    let (mut results, mut pending) = match first {
        Ok(x) => x,
        Err(e) => {
            let msg = format!("killing failed: {e}");
            return jobs
                .iter()
                .map(|r| Err(format!("job {}: {msg}", r.job)))
                .collect();
        }
    };

    let deadline = Instant::now() + grace;
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(GRACE_TICK).await;
        let batch = std::mem::take(&mut pending);
        pending = tokio::task::spawn_blocking(move || still_alive(batch))
            .await
            .unwrap_or_default();
    }

    if !pending.is_empty() {
        let left = tokio::task::spawn_blocking(move || {
            pending
                .into_iter()
                .map(|s| {
                    let r = procs::signal_group(s.pgid, libc::SIGKILL).map(drop);
                    (s.index, s.job, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (index, job, r) in left {
            if let (Err(e), Some(slot)) = (r, results.get_mut(index)) {
                *slot = Err(format!("job {job}: cannot send SIGKILL: {e}"));
            }
        }
    }
    results
}

/// Records the kill of every job that has not ended and sends SIGTERM to the live ones.
fn term_all(jobs: &[BackendRef]) -> (Vec<PerJob<()>>, Vec<Signalled>) {
    let mut scan = GroupScan::default();
    let mut pending = Vec::new();
    let results = jobs
        .iter()
        .enumerate()
        .map(|(index, r)| {
            term_one(r, &mut scan)
                .map(|s| {
                    if let Some(mut s) = s {
                        s.index = index;
                        pending.push(s);
                    }
                })
                .map_err(|e| format!("job {}: {e}", r.job))
        })
        .collect();
    (results, pending)
}

fn term_one(r: &BackendRef, scan: &mut GroupScan) -> Result<Option<Signalled>, String> {
    let dirs = JobDirs::new(&r.workspace);
    if records::read_exit(&dirs)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        // Ended already: nothing to do.
        return Ok(None);
    }
    let launch = records::read_launch(&dirs).map_err(|e| e.to_string())?;
    let pgid = job_pgid(r, launch.as_ref())?;
    let job = Signalled {
        index: 0,
        job: r.job,
        pgid,
        dirs,
        start_ticks: launch.and_then(|l| l.start_ticks),
    };

    // The record comes first, so that a poll that finds the processes gone reads a kill
    // and not a loss. A second kill keeps the first time.
    let marker = job.dirs.control_file(KILLED);
    let had_marker = marker.exists();
    if !had_marker {
        records::write_atomic(&marker, &Killed::now().to_text())
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    }
    let signalled = match job.liveness(scan) {
        Ok(Liveness::Gone) => Ok(false),
        Ok(Liveness::Alive) => procs::signal_group(pgid, libc::SIGTERM),
        Err(e) => Err(e),
    };
    match signalled {
        Ok(true) => Ok(Some(job)),
        Ok(false) => Ok(None),
        Err(e) => {
            // It was not stopped: a kill record would make polls call it killed.
            if !had_marker {
                let _ = std::fs::remove_file(&marker);
            }
            Err(format!("cannot signal process group {pgid}: {e}"))
        }
    }
}

fn still_alive(jobs: Vec<Signalled>) -> Vec<Signalled> {
    let mut scan = GroupScan::default();
    jobs.into_iter()
        // When unsure, keep it: at worst it gets a SIGKILL it no longer needs.
        .filter(|s| !matches!(s.liveness(&mut scan), Ok(Liveness::Gone)))
        .collect()
}
