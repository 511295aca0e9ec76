//! Where a job is, from its records and its processes.

use std::io;

use ganga_core::{Answers, BackendRef, PollReport, RemoteStatus};

use crate::layout::{JobDirs, WRAPPER};
use crate::procs::{self, GroupScan, Identity, Liveness};
use crate::records::{self, Exit, Killed, Launch, Started};

/// Polls a batch. Blocking: a few stats and small reads per job, and at most one scan of
/// `/proc` for the whole batch.
pub(crate) fn poll_batch(jobs: &[BackendRef], host: &str) -> Answers<PollReport> {
    let mut scan = GroupScan::default();
    jobs.iter()
        .map(|r| {
            let report = poll_one(r, &mut scan).unwrap_or_else(|e| PollReport {
                actual_ce: Some(host.to_owned()),
                ..report(RemoteStatus::Unknown, "unknown", Some(e.to_string()))
            });
            (r.job, Ok(report))
        })
        .collect()
}

fn poll_one(r: &BackendRef, scan: &mut GroupScan) -> io::Result<PollReport> {
    let dirs = JobDirs::new(&r.workspace);
    let launch = match records::read_launch(&dirs) {
        Ok(launch) => launch,
        // Without it the wrapper is recognised by its command line instead.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!("local backend: job {}: {e}", r.job);
            None
        }
        Err(e) => return Err(e),
    };
    let started = records::read_started(&dirs)?;
    let host = launch.as_ref().and_then(|l| l.host.clone());
    let with_facts = |mut rep: PollReport| {
        rep.actual_ce = host.clone();
        rep.started = started.as_ref().and_then(|s| s.time);
        rep
    };

    if let Some(ended) = ended(&dirs)? {
        return Ok(with_facts(ended));
    }

    let pgid = match job_pgid(r, launch.as_ref()) {
        Ok(pgid) => pgid,
        Err(reason) => {
            return Ok(with_facts(report(
                RemoteStatus::Failed,
                "lost",
                Some(format!("lost: {reason}")),
            )));
        }
    };
    let wrapper = dirs.control_file(WRAPPER);
    let identity = Identity {
        start_ticks: launch.as_ref().and_then(|l| l.start_ticks),
        wrapper: &wrapper,
    };
    match procs::liveness(pgid, identity, scan)? {
        Liveness::Alive => Ok(with_facts(running(started.as_ref()))),
        Liveness::Gone => {
            // It may have ended, or been killed, between the first look and now.
            if let Some(ended) = ended(&dirs)? {
                return Ok(with_facts(ended));
            }
            Ok(with_facts(report(
                RemoteStatus::Absent,
                "gone",
                Some("the process ended without recording an exit code".to_owned()),
            )))
        }
    }
}

/// The job's end, if its records tell one: an exit, or a kill. When both are there the
/// earlier wins: an exit recorded before the kill means the kill came too late.
fn ended(dirs: &JobDirs) -> io::Result<Option<PollReport>> {
    let exit = match records::read_exit(dirs) {
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
    let killed = records::read_killed(dirs)?;
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
    let (status, native, reason) = match (exit.code, exit.signal, &exit.error) {
        (_, _, Some(error)) => (
            RemoteStatus::Failed,
            format!("exited {}", exit.code),
            Some(format!("{error} (exit code {})", exit.code)),
        ),
        (0, _, None) => (RemoteStatus::Succeeded, "exited 0".to_owned(), None),
        (code, Some(sig), None) => (
            RemoteStatus::Failed,
            format!("killed by signal {sig}"),
            Some(format!("killed by signal {sig} (exit code {code})")),
        ),
        (code, None, None) => (
            RemoteStatus::Failed,
            format!("exited {code}"),
            Some(format!("exit code {code}")),
        ),
    };
    PollReport {
        exit_code: Some(exit.code),
        ended: exit.time,
        ..report(status, &native, reason)
    }
}

fn killed_report(killed: &Killed) -> PollReport {
    PollReport {
        ended: killed.time,
        ..report(
            RemoteStatus::Killed,
            "killed",
            Some("killed on request".to_owned()),
        )
    }
}

fn running(started: Option<&Started>) -> PollReport {
    match started {
        Some(_) => report(RemoteStatus::Running, "running", None),
        None => report(RemoteStatus::Queued, "waiting for a slot", None),
    }
}

/// The job's process group: the id the monitor kept, which must agree with the launch
/// record when there is one.
pub(crate) fn job_pgid(r: &BackendRef, launch: Option<&Launch>) -> Result<i32, String> {
    let pgid: i32 =
        r.id.parse()
            .ok()
            .filter(|&p| p > 1)
            .ok_or_else(|| format!("`{}` is not a process group id", r.id))?;
    match launch {
        Some(l) if l.pgid != pgid => Err(format!(
            "its id {pgid} does not match the launch record (process group {})",
            l.pgid
        )),
        _ => Ok(pgid),
    }
}

fn report(status: RemoteStatus, native_state: &str, reason: Option<String>) -> PollReport {
    PollReport {
        reason,
        ..PollReport::new(status, native_state)
    }
}
