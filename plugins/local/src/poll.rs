//! Where a run is, from its records, the queue and its processes; and `find`.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use ganga_core::{Answers, BackendRef, PollReport, RemoteStatus, Submitted, UnitRun};

use crate::backend::Context;
use crate::layout::{QueueDir, UnitDirs, event_name};
use crate::procs;
use crate::procs::{GroupScan, Identity, Liveness};
use crate::queue::Place;
use crate::records::{self, Exit, Killed, Started};

/// Polls a batch. Blocking: a few small reads per unit, and at most one scan of `/proc`
/// for the whole batch. Starts runners if it finds units waiting with a slot free (after
/// a reboot, or when every runner was killed).
pub(crate) fn poll_batch(ctx: &Context, jobs: &[BackendRef]) -> Answers<PollReport> {
    let mut look = Look {
        scan: GroupScan::default(),
        waiting: 0,
        heads: HashMap::new(),
    };
    let answers = jobs
        .iter()
        .map(|r| {
            let report = poll_one(r, &mut look)
                .unwrap_or_else(|e| report(RemoteStatus::Unknown, "unknown", Some(e.to_string())));
            if is_final(report.status) || report.status == RemoteStatus::Absent {
                // Seen ended (or gone): an event no watcher consumed is no longer needed.
                let _ = std::fs::remove_file(ctx.home.events().join(event_name(r.job, r.run)));
            }
            (
                r.job,
                Ok(PollReport {
                    actual_ce: Some(ctx.host.clone()),
                    ..report
                }),
            )
        })
        .collect();
    if look.waiting > 0
        && let Err(e) = ctx.runners.ensure(look.waiting)
    {
        tracing::warn!("local backend: units are waiting in the queue: {e}");
    }
    answers
}

/// What a batch's polls share.
struct Look {
    scan: GroupScan,
    /// Units found waiting in the queue, taken by no runner.
    waiting: usize,
    /// The `head` of each queue seen.
    heads: HashMap<PathBuf, u64>,
}

fn is_final(status: RemoteStatus) -> bool {
    matches!(
        status,
        RemoteStatus::Succeeded | RemoteStatus::Failed | RemoteStatus::Killed
    )
}

fn poll_one(r: &BackendRef, look: &mut Look) -> io::Result<PollReport> {
    let dirs = UnitDirs::new(&r.workspace);
    let run = r.run;
    // A run that is not started may start while we look at the queue, and one that runs
    // may end while we look at its processes: the records are read again then.
    for _ in 0..2 {
        if let Some(ended) = ended(&dirs, run)? {
            return Ok(with_start(ended, &dirs, run));
        }
        if let Some(started) = read_started(&dirs, run)? {
            let identity = Identity {
                start_ticks: started.start_ticks,
                control: &dirs.control,
            };
            return match procs::liveness(started.pgid, identity, &mut look.scan)? {
                Liveness::Alive => Ok(PollReport {
                    started: started.time,
                    ..report(RemoteStatus::Running, "running", None)
                }),
                Liveness::Gone => Ok(match ended(&dirs, run)? {
                    Some(ended) => with_start(ended, &dirs, run),
                    None => PollReport {
                        started: started.time,
                        ..report(
                            RemoteStatus::Absent,
                            "gone",
                            Some(format!(
                                "the process ended without recording an exit code (see {})",
                                dirs.control.join(format!("wrapper-{run}.log")).display()
                            )),
                        )
                    },
                }),
            };
        }
        let Some(queued) = records::read_queued(&dirs, run)? else {
            return Ok(report(
                RemoteStatus::Absent,
                "unknown",
                Some(format!(
                    "nothing of run {run} is recorded in {}",
                    dirs.control.display()
                )),
            ));
        };
        if queued.seq.to_string() != r.id {
            return Ok(report(
                RemoteStatus::Absent,
                "unknown",
                Some(format!(
                    "its id {} is not that of run {run} (queue entry {})",
                    r.id, queued.seq
                )),
            ));
        }
        let queue = QueueDir { dir: queued.queue };
        match queue.place(queued.seq)? {
            Place::Waiting => {
                look.waiting += 1;
                if !look.heads.contains_key(&queue.dir) {
                    look.heads.insert(queue.dir.clone(), queue.head_number()?);
                }
                if look
                    .heads
                    .get(&queue.dir)
                    .is_some_and(|&head| queued.seq >= head)
                {
                    // Its batch was cut short before runners could see it.
                    queue.publish_cut_off()?;
                    look.heads.insert(queue.dir.clone(), queue.head_number()?);
                }
                return Ok(report(RemoteStatus::Queued, "queued", None));
            }
            Place::Starting => return Ok(report(RemoteStatus::Queued, "starting", None)),
            Place::Orphaned | Place::Gone => {}
        }
    }
    // Out of the queue (or claimed by a runner that is gone) and never started.
    Ok(report(
        RemoteStatus::Absent,
        "gone",
        Some(format!(
            "it left the queue without starting: its runner ended first, or its wrapper \
             could not start (see {})",
            dirs.control.join(format!("wrapper-{run}.log")).display()
        )),
    ))
}

fn read_started(dirs: &UnitDirs, run: u32) -> io::Result<Option<Started>> {
    match records::read_started(dirs, run) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!("local backend: {e}");
            Ok(None)
        }
        other => other,
    }
}

fn with_start(mut rep: PollReport, dirs: &UnitDirs, run: u32) -> PollReport {
    rep.started = read_started(dirs, run).ok().flatten().and_then(|s| s.time);
    rep
}

/// The run's end, if its records tell one: an exit, or a kill. When both are there the
/// earlier wins: an exit recorded before the kill means the kill came too late.
fn ended(dirs: &UnitDirs, run: u32) -> io::Result<Option<PollReport>> {
    let exit = match records::read_exit(dirs, run) {
        Ok(exit) => exit,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Ok(Some(report(
                RemoteStatus::Failed,
                "exit record unreadable",
                Some(e.to_string()),
            )));
        }
        Err(e) => return Err(e),
    };
    let killed = match records::read_killed(dirs, run) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!("local backend: {e}");
            None
        }
        other => other?,
    };
    Ok(match (exit, killed) {
        (Some(exit), Some(killed)) if !exit_before_kill(&exit, &killed) => {
            Some(killed_report(&killed))
        }
        (Some(exit), _) => Some(exited(&exit)),
        (None, Some(killed)) => Some(killed_report(&killed)),
        (None, None) => None,
    })
}

fn exit_before_kill(exit: &Exit, killed: &Killed) -> bool {
    match (exit.time, killed.time) {
        (Some(e), Some(k)) => e < k,
        _ => false,
    }
}

fn exited(exit: &Exit) -> PollReport {
    ganga_plugin_sdk::records::exit_report(exit.code, exit.signal, exit.error.as_deref(), exit.time)
}

fn killed_report(killed: &Killed) -> PollReport {
    ganga_plugin_sdk::records::killed_report(killed.time)
}

fn report(status: RemoteStatus, native_state: &str, reason: Option<String>) -> PollReport {
    PollReport {
        reason,
        ..PollReport::new(status, native_state)
    }
}

/// `find`: a run was handed over if its `queued` record exists (it is written before the
/// run's queue entry, and holds the id).
pub(crate) fn find_batch(ctx: &Context, units: &[UnitRun]) -> Answers<Option<Submitted>> {
    units
        .iter()
        .map(|u| {
            let dirs = UnitDirs::new(&u.workspace);
            let answer = records::read_queued(&dirs, u.run)
                .map(|q| {
                    q.map(|q| Submitted {
                        id: q.seq.to_string(),
                        actual_ce: Some(ctx.host.clone()),
                    })
                })
                .map_err(|e| format!("job {}: {e}", u.job));
            (u.job, answer)
        })
        .collect()
}
