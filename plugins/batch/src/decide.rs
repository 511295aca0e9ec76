//! Where a unit is, from what is known of it: its records of this run, and what the
//! batch system's listing (or, once a job has left it, its history) says. A pure
//! function of those facts.
//!
//! The rules, in order:
//! 1. An exit record of this run decides: exit code 0 is `Succeeded`, anything else
//!    `Failed`; a kill record from before the exit makes it `Killed`.
//! 2. A kill record of this run (and no exit) is `Killed`: the kill command stopped it.
//! 3. Listed: the flavour's mapping of the native state. An end with failure or by a
//!    kill is believed (the batch system killed it, or it could not start); an end with
//!    success is not, without our exit record: it is `Absent` (the record may still be
//!    on its way over a network file system; the monitor waits a grace period before it
//!    calls the unit lost).
//! 4. Not listed: the history (Grid Engine's accounting, `condor_history`), read the same
//!    way; nothing there either: `Absent`.

use std::path::Path;

use ganga_core::{PollReport, RemoteStatus};

use crate::flavour::{EndKind, Native, Phase};
use crate::records::{Exit, Killed, RunRecords};

/// What is known of one unit.
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    pub(crate) records: &'a RunRecords,
    /// What the listing says, if it lists the unit.
    pub(crate) listed: Option<Native>,
    /// What the history says, for a unit no longer listed.
    pub(crate) history: Option<Native>,
    /// Where it runs, if the listing says.
    pub(crate) host: Option<String>,
    /// The exit record's path, for messages.
    pub(crate) exit_record: &'a Path,
}

pub(crate) fn decide(f: &Facts<'_>) -> PollReport {
    let r = f.records;
    let host = r
        .exit
        .as_ref()
        .and_then(|e| e.host.clone())
        .or_else(|| r.started.as_ref().and_then(|s| s.host.clone()))
        .or_else(|| f.host.clone());
    let started = r
        .exit
        .as_ref()
        .and_then(|e| e.started)
        .or_else(|| r.started.as_ref().and_then(|s| s.time));
    let mut report = match (&r.exit, &r.killed) {
        (Some(exit), Some(killed)) if !exited_before_kill(exit, killed) => killed_report(killed),
        (Some(exit), _) => exited(exit),
        (None, Some(killed)) => killed_report(killed),
        (None, None) => match (&f.listed, &f.history) {
            (Some(native), _) => from_native(native, true, f),
            (None, Some(native)) => from_native(native, false, f),
            (None, None) => absent(f),
        },
    };
    report.actual_ce = host;
    report.started = report.started.or(started);
    if let Some(note) = &r.unreadable
        && report.reason.is_none()
        && report.status != RemoteStatus::Succeeded
    {
        report.reason = Some(note.clone());
    }
    report
}

fn exited_before_kill(exit: &Exit, killed: &Killed) -> bool {
    match (exit.time, killed.time) {
        (Some(e), Some(k)) => e < k,
        // Without times, an exit record that exists is taken as the end: the kill came
        // for a job that had ended (or was ending) anyway.
        _ => true,
    }
}

fn exited(exit: &Exit) -> PollReport {
    ganga_plugin_sdk::records::exit_report(exit.code, exit.signal, exit.error.as_deref(), exit.time)
}

fn killed_report(killed: &Killed) -> PollReport {
    ganga_plugin_sdk::records::killed_report(killed.time)
}

fn from_native(native: &Native, listed: bool, f: &Facts<'_>) -> PollReport {
    let status = match native.phase {
        Phase::Queued => RemoteStatus::Queued,
        Phase::Running => RemoteStatus::Running,
        Phase::Ended(EndKind::Failure) => RemoteStatus::Failed,
        Phase::Ended(EndKind::Killed) => RemoteStatus::Killed,
        Phase::Ended(EndKind::Success | EndKind::Unspecified) => RemoteStatus::Absent,
        Phase::Unknown => RemoteStatus::Unknown,
    };
    let mut report = PollReport {
        exit_code: native.exit_code,
        reason: native.reason.clone(),
        ..PollReport::new(status, native.text.clone())
    };
    if status == RemoteStatus::Absent {
        let source = if listed {
            "the batch system"
        } else {
            "its history"
        };
        report.exit_code = None;
        report.reason = Some(format!(
            "{source} says it ended ({}), but it left no exit record in {}",
            native.text,
            f.exit_record.display()
        ));
    }
    if status == RemoteStatus::Killed && report.reason.is_none() {
        report.reason = Some(format!("the batch system says {}", native.text));
    }
    report
}

fn absent(f: &Facts<'_>) -> PollReport {
    PollReport {
        reason: Some(format!(
            "the batch system does not list it, and it left no exit record in {}",
            f.exit_record.display()
        )),
        ..PollReport::new(RemoteStatus::Absent, "not listed")
    }
}

#[cfg(test)]
mod tests {
    use ganga_core::Timestamp;

    use super::*;
    use crate::records::Started;

    const PATH: &str = "/w/batch/exit";

    fn exit(code: i32, signal: Option<i32>, at: i64) -> Exit {
        Exit {
            run: 1,
            code,
            signal,
            error: None,
            id: None,
            host: Some("node7".into()),
            started: Some(Timestamp::from_millis(at - 10)),
            time: Some(Timestamp::from_millis(at)),
        }
    }

    fn killed(at: i64) -> Killed {
        Killed {
            run: 1,
            time: Some(Timestamp::from_millis(at)),
        }
    }

    fn decide_with(
        records: &RunRecords,
        listed: Option<Native>,
        history: Option<Native>,
    ) -> PollReport {
        decide(&Facts {
            records,
            listed,
            history,
            host: Some("listed-host".into()),
            exit_record: Path::new(PATH),
        })
    }

    fn native(phase: Phase, text: &str) -> Native {
        Native::new(phase, text)
    }

    #[test]
    fn the_exit_record_decides_whatever_is_listed() {
        let records = RunRecords {
            exit: Some(exit(0, None, 100)),
            ..RunRecords::default()
        };
        for listed in [
            None,
            Some(native(Phase::Running, "COMPLETING")),
            Some(native(Phase::Ended(EndKind::Failure), "FAILED")),
        ] {
            let r = decide_with(&records, listed, None);
            assert_eq!(r.status, RemoteStatus::Succeeded);
            assert_eq!(r.exit_code, Some(0));
            assert_eq!(r.actual_ce.as_deref(), Some("node7"));
            assert_eq!(r.started, Some(Timestamp::from_millis(90)));
            assert_eq!(r.ended, Some(Timestamp::from_millis(100)));
        }
        let three = RunRecords {
            exit: Some(exit(3, None, 100)),
            ..RunRecords::default()
        };
        let r = decide_with(
            &three,
            Some(native(Phase::Ended(EndKind::Success), "COMPLETED")),
            None,
        );
        assert_eq!((r.status, r.exit_code), (RemoteStatus::Failed, Some(3)));
        let signalled = RunRecords {
            exit: Some(exit(137, Some(9), 100)),
            ..RunRecords::default()
        };
        let r = decide_with(&signalled, None, None);
        assert_eq!(
            (r.status, r.native_state.as_str()),
            (RemoteStatus::Failed, "killed by signal 9")
        );
    }

    #[test]
    fn a_kill_counts_unless_the_job_had_ended_before() {
        let before = RunRecords {
            exit: Some(exit(0, None, 100)),
            killed: Some(killed(200)),
            ..RunRecords::default()
        };
        assert_eq!(
            decide_with(&before, None, None).status,
            RemoteStatus::Succeeded
        );
        let after = RunRecords {
            exit: Some(exit(143, Some(15), 300)),
            killed: Some(killed(200)),
            ..RunRecords::default()
        };
        assert_eq!(decide_with(&after, None, None).status, RemoteStatus::Killed);
        let only = RunRecords {
            killed: Some(killed(200)),
            ..RunRecords::default()
        };
        let r = decide_with(&only, Some(native(Phase::Running, "RUNNING")), None);
        assert_eq!(
            (r.status, r.ended),
            (RemoteStatus::Killed, Some(Timestamp::from_millis(200)))
        );
    }

    #[test]
    fn without_records_the_listing_speaks() {
        let none = RunRecords::default();
        let pending = Native::new(Phase::Queued, "PENDING (Resources)");
        let r = decide_with(&none, Some(pending), None);
        assert_eq!(
            (r.status, r.native_state.as_str()),
            (RemoteStatus::Queued, "PENDING (Resources)")
        );
        assert_eq!(r.actual_ce.as_deref(), Some("listed-host"));

        let started = RunRecords {
            started: Some(Started {
                run: 1,
                id: None,
                host: Some("node3".into()),
                time: Some(Timestamp::from_millis(5)),
            }),
            ..RunRecords::default()
        };
        let r = decide_with(&started, Some(native(Phase::Running, "RUNNING")), None);
        assert_eq!(
            (r.status, r.started),
            (RemoteStatus::Running, Some(Timestamp::from_millis(5)))
        );
        assert_eq!(r.actual_ce.as_deref(), Some("node3"));

        let failed = Native::new(Phase::Ended(EndKind::Failure), "TIMEOUT")
            .with_reason(Some("Slurm says TIMEOUT".into()));
        let r = decide_with(&none, Some(failed), None);
        assert_eq!(r.status, RemoteStatus::Failed);
        assert_eq!(r.reason.as_deref(), Some("Slurm says TIMEOUT"));

        let cancelled = native(Phase::Ended(EndKind::Killed), "CANCELLED");
        assert_eq!(
            decide_with(&none, Some(cancelled), None).status,
            RemoteStatus::Killed
        );

        let weird = native(Phase::Unknown, "WEIRD");
        let r = decide_with(&none, Some(weird), None);
        assert_eq!(
            (r.status, r.native_state.as_str()),
            (RemoteStatus::Unknown, "WEIRD")
        );
    }

    #[test]
    fn success_is_never_taken_without_an_exit_record() {
        let none = RunRecords::default();
        for (listed, history) in [
            (
                Some(native(Phase::Ended(EndKind::Success), "COMPLETED")),
                None,
            ),
            (
                None,
                Some(native(Phase::Ended(EndKind::Success), "finished")),
            ),
            (
                None,
                Some(native(Phase::Ended(EndKind::Unspecified), "C (completed)")),
            ),
        ] {
            let r = decide_with(&none, listed, history);
            assert_eq!(r.status, RemoteStatus::Absent);
            assert!(
                r.reason.as_deref().is_some_and(|m| m.contains(PATH)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn nothing_known_is_absent() {
        let r = decide_with(&RunRecords::default(), None, None);
        assert_eq!(
            (r.status, r.native_state.as_str()),
            (RemoteStatus::Absent, "not listed")
        );
        let history = native(Phase::Ended(EndKind::Killed), "X (removed)");
        assert_eq!(
            decide_with(&RunRecords::default(), None, Some(history)).status,
            RemoteStatus::Killed
        );
    }
}
