//! Stopping runs: record the kill (naming the run), take a queued run out of the queue so
//! that it never starts, SIGTERM a running one's process group and SIGKILL what is left of
//! it after the grace period.

use std::io;
use std::time::{Duration, Instant};

use ganga_core::{Answers, BackendRef, JobRef, PerJob};
use ganga_plugin_sdk::blocking;

use crate::backend::Context;
use crate::layout::{KILLED, QueueDir, UnitDirs, event_name};
use crate::procs::{self, GroupScan, Identity, Liveness};
use crate::records::{self, Killed, Started};

/// How often the grace period looks whether the signalled groups are gone.
const GRACE_TICK: Duration = Duration::from_millis(100);

/// A run that was signalled and may still need SIGKILL.
#[derive(Debug, Clone)]
struct Signalled {
    index: usize,
    job: JobRef,
    dirs: UnitDirs,
    started: Started,
}

impl Signalled {
    fn liveness(&self, scan: &mut GroupScan) -> io::Result<Liveness> {
        group_liveness(&self.dirs, &self.started, scan)
    }
}

fn group_liveness(
    dirs: &UnitDirs,
    started: &Started,
    scan: &mut GroupScan,
) -> io::Result<Liveness> {
    let identity = Identity {
        start_ticks: started.start_ticks,
        control: &dirs.control,
    };
    procs::liveness(started.pgid, identity, scan)
}

pub(crate) async fn kill_batch(ctx: &std::sync::Arc<Context>, jobs: &[BackendRef]) -> Answers<()> {
    let results = kill_in_order(ctx, jobs).await;
    jobs.iter().map(|r| r.job).zip(results).collect()
}

/// One result per unit, in the order given.
async fn kill_in_order(ctx: &std::sync::Arc<Context>, jobs: &[BackendRef]) -> Vec<PerJob<()>> {
    let owned = jobs.to_vec();
    let context = ctx.clone();
    let (mut results, mut pending) =
        match blocking("killing", move || term_all(&context, &owned)).await {
            Ok(x) => x,
            Err(e) => {
                return jobs
                    .iter()
                    .map(|r| Err(format!("job {}: {e}", r.job)))
                    .collect();
            }
        };
    // A step that could not be taken leaves the runs still waiting for it unkilled: say so.
    let unkilled =
        |results: &mut Vec<PerJob<()>>, waiting: &[(usize, JobRef)], e: &dyn std::fmt::Display| {
            for &(index, job) in waiting {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Err(format!("job {job}: {e}"));
                }
            }
        };

    let deadline = Instant::now() + ctx.config.kill_grace;
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(GRACE_TICK).await;
        let waiting: Vec<(usize, JobRef)> = pending.iter().map(|s| (s.index, s.job)).collect();
        let batch = std::mem::take(&mut pending);
        match blocking("waiting for killed jobs to end", move || still_alive(batch)).await {
            Ok(alive) => pending = alive,
            Err(e) => {
                unkilled(&mut results, &waiting, &e);
                return results;
            }
        }
    }

    if !pending.is_empty() {
        let waiting: Vec<(usize, JobRef)> = pending.iter().map(|s| (s.index, s.job)).collect();
        let sent = blocking("sending SIGKILL", move || {
            pending
                .into_iter()
                .map(|s| {
                    let r = procs::signal_group(s.started.pgid, libc::SIGKILL).map(drop);
                    (s.index, s.job, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        match sent {
            Ok(left) => {
                for (index, job, r) in left {
                    if let (Err(e), Some(slot)) = (r, results.get_mut(index)) {
                        *slot = Err(format!("job {job}: cannot send SIGKILL: {e}"));
                    }
                }
            }
            Err(e) => unkilled(&mut results, &waiting, &e),
        }
    }
    results
}

/// Records the kill of every run that has not ended, takes queued ones out of the queue
/// and sends SIGTERM to the running ones.
fn term_all(ctx: &Context, jobs: &[BackendRef]) -> (Vec<PerJob<()>>, Vec<Signalled>) {
    let mut scan = GroupScan::default();
    let mut pending = Vec::new();
    let results = jobs
        .iter()
        .enumerate()
        .map(|(index, r)| {
            term_one(ctx, r, &mut scan)
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

fn term_one(
    ctx: &Context,
    r: &BackendRef,
    scan: &mut GroupScan,
) -> Result<Option<Signalled>, String> {
    let dirs = UnitDirs::new(&r.workspace);
    let run = r.run;
    let text = |e: io::Error| e.to_string();
    if records::read_exit(&dirs, run).map_err(text)?.is_some() {
        // Ended already: nothing to do.
        return Ok(None);
    }
    let queued = records::read_queued(&dirs, run).map_err(text)?;
    match &queued {
        None => {
            return Err(format!(
                "nothing of run {run} is recorded in {}",
                dirs.control.display()
            ));
        }
        Some(q) if q.seq.to_string() != r.id => {
            return Err(format!(
                "its id {} is not that of run {run} (queue entry {})",
                r.id, q.seq
            ));
        }
        Some(_) => {}
    }

    // The record comes first: a poll that finds the processes gone reads a kill and not a
    // loss, and a wrapper that starts from now on does not run its program (it looks for
    // this record after recording `started`; we look for `started` after this). A second
    // kill keeps the first time.
    let marker = dirs.record(KILLED, run);
    let had_marker = marker.exists();
    if !had_marker {
        records::write_atomic(&marker, &Killed::to_text(run)).map_err(text)?;
        drop_event(ctx, r.job, run);
    }
    if let Some(q) = queued {
        let queue = QueueDir { dir: q.queue };
        if queue.take_out(q.seq).map_err(text)? {
            // It never starts.
            return Ok(None);
        }
    }
    let Some(started) = records::read_started(&dirs, run).map_err(text)? else {
        // A runner took it but its wrapper has not recorded `started` yet: the wrapper
        // will see the kill record and not run the program.
        return Ok(None);
    };
    let signalled = match group_liveness(&dirs, &started, scan) {
        Ok(Liveness::Gone) => Ok(false),
        Ok(Liveness::Alive) => procs::signal_group(started.pgid, libc::SIGTERM),
        Err(e) => Err(e),
    };
    match signalled {
        Ok(true) => Ok(Some(Signalled {
            index: 0,
            job: r.job,
            dirs,
            started,
        })),
        Ok(false) => Ok(None),
        Err(e) => {
            // It was not stopped: a kill record would make polls call it killed.
            if !had_marker {
                let _ = std::fs::remove_file(&marker);
            }
            Err(format!("cannot signal process group {}: {e}", started.pgid))
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

/// Stops a started run and waits until its process group is gone (for a resubmission):
/// SIGTERM, SIGKILL after the grace period, and an error if it lives on past `deadline`.
pub(crate) fn stop_group(
    ctx: &Context,
    dirs: &UnitDirs,
    started: &Started,
    deadline: Instant,
) -> Result<(), String> {
    let gone = || {
        matches!(
            group_liveness(dirs, started, &mut GroupScan::default()),
            Ok(Liveness::Gone)
        )
    };
    if gone() {
        return Ok(());
    }
    let signal = |sig| {
        procs::signal_group(started.pgid, sig)
            .map(drop)
            .map_err(|e| format!("cannot signal process group {}: {e}", started.pgid))
    };
    signal(libc::SIGTERM)?;
    let grace_end = Instant::now() + ctx.config.kill_grace;
    let mut killed = false;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if gone() {
            return Ok(());
        }
        if !killed && Instant::now() >= grace_end {
            signal(libc::SIGKILL)?;
            killed = true;
        }
        if killed && Instant::now() >= deadline.max(grace_end + Duration::from_secs(5)) {
            return Err(format!(
                "its process group {} is still alive after SIGKILL",
                started.pgid
            ));
        }
    }
}

/// Tells whoever watches that this unit's state changed.
pub(crate) fn drop_event(ctx: &Context, job: JobRef, run: u32) {
    let path = ctx.home.events().join(event_name(job, run));
    if let Err(e) = records::write_private(&path, b"") {
        tracing::debug!("local backend: cannot write {}: {e}", path.display());
    }
}
