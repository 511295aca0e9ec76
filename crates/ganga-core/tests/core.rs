//! The job model's rules, driven by data.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::BTreeMap;

use ganga_core::{
    ActiveUnit, Application, ArgLists, AutoResubmit, BackendConfig, Executable, Job, JobRef,
    JobSpec, LifecycleError, OutputsReport, Override, PollOutcome, PollReport, RemoteStatus,
    SplitAttribute, SplitError, Splitter, Status, StatusCounts, Subjob, Timestamp, UnitChange,
    UnitRefusal, UnitUpdate, Value, after_poll, auto_resubmission, auto_resubmit_single,
    auto_resubmit_split, lost, settle,
};

/// Ganga's `Job.status_graph` (Job.py:671), written out independently of the code:
/// `from: to, to, ...`. Every pair not listed (and not `s -> s`) must be refused.
const GANGA_TABLE: &str = "
new: submitting removed
submitting: new submitted unknown failed
submitted: running killed unknown failed completing completed submitting
running: completing completed failed killed unknown submitting submitted
completing: completed failed unknown submitting submitted
killed: removed failed submitting submitted failed_frozen
failed: removed submitting completed submitted failed_frozen
completed: removed failed submitting submitted completed_frozen
completed_frozen: completed
failed_frozen: failed
incomplete: removed
unknown: removed
template: removed
removed:
";

fn ganga_table() -> BTreeMap<Status, Vec<Status>> {
    GANGA_TABLE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (from, tos) = line.split_once(':').unwrap();
            (
                from.trim().parse().unwrap(),
                tos.split_whitespace().map(|s| s.parse().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn every_allowed_transition_is_allowed_and_every_other_refused() {
    let table = ganga_table();
    assert_eq!(
        table.len(),
        Status::ALL.len(),
        "the table covers every status"
    );
    let mut allowed = 0;
    for from in Status::ALL {
        for to in Status::ALL {
            let expected = from == to || table[&from].contains(&to);
            assert_eq!(
                from.can_become(to),
                expected,
                "{from} -> {to} should be {}",
                if expected { "allowed" } else { "refused" }
            );
            allowed += usize::from(expected && from != to);
        }
    }
    assert_eq!(allowed, 45, "Ganga's table has 45 edges");
}

#[test]
fn illegal_transitions_are_refused_with_the_job_and_both_statuses() {
    let mut job = plain_job();
    let err = job.set_status(Status::Completed, Timestamp(5)).unwrap_err();
    assert_eq!(err.to_string(), "job 7: cannot go from new to completed");
    assert_eq!(
        job.status(),
        Status::New,
        "a refused transition changes nothing"
    );
    assert_eq!(job.run.times.get(Status::Completed), None);

    job.set_status(Status::Submitting, Timestamp(6)).unwrap();
    assert_eq!(job.run.times.get(Status::Submitting), Some(Timestamp(6)));
}

#[test]
fn status_names_round_trip() {
    for s in Status::ALL {
        assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        assert_eq!(Status::from_index(s.index()), Some(s));
    }
    assert!("finished".parse::<Status>().is_err());
}

#[test]
fn master_status_follows_gangas_priority() {
    let cases: &[(&[Status], Option<Status>)] = &[
        (
            &[Status::Completed, Status::Running, Status::Submitted],
            Some(Status::Submitted),
        ),
        (&[Status::Completed, Status::Running], Some(Status::Running)),
        (
            &[Status::Completed, Status::Completing, Status::Failed],
            Some(Status::Completing),
        ),
        (
            &[Status::Completed, Status::Killed, Status::Failed],
            Some(Status::Failed),
        ),
        (&[Status::Completed, Status::Killed], Some(Status::Killed)),
        (
            &[Status::Completed, Status::Completed],
            Some(Status::Completed),
        ),
        (
            &[Status::Submitting, Status::Completed],
            Some(Status::Submitting),
        ),
        (&[Status::New, Status::New], None),
        (&[Status::CompletedFrozen], None),
    ];
    for (subjobs, expected) in cases {
        let counts: StatusCounts = subjobs.iter().copied().collect();
        assert_eq!(counts.master_status(), *expected, "subjobs {subjobs:?}");
    }
}

fn spec(splitter: Option<Splitter>) -> JobSpec {
    JobSpec {
        auto_resubmit: None,
        name: "j".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".into(),
            args: vec!["base".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec!["*.txt".into()],
        splitter,
    }
}

fn plain_job() -> Job {
    Job::new(7, spec(None), Timestamp(1))
}

fn split_job(n: usize) -> (Job, Vec<Subjob>) {
    let args = (0..n).map(|i| vec![i.to_string()]).collect();
    let mut job = Job::new(
        3,
        spec(Some(Splitter::Args {
            args,
            append: false,
        })),
        Timestamp(1),
    );
    let subjobs = job.split(Timestamp(2)).unwrap();
    (job, subjobs)
}

#[test]
fn arg_splitter_replaces_or_appends_args() {
    let (job, subjobs) = split_job(3);
    assert_eq!(subjobs.len(), 3);
    assert_eq!(job.subjobs.get(Status::New), 3);
    let args: Vec<_> = subjobs
        .iter()
        .map(|sj| {
            sj.effective_spec(&job.spec)
                .application
                .executable()
                .args
                .clone()
        })
        .collect();
    assert_eq!(args, vec![vec!["0"], vec!["1"], vec!["2"]]);
    assert!(
        subjobs
            .iter()
            .all(|sj| sj.effective_spec(&job.spec).splitter.is_none())
    );

    let mut job = Job::new(
        4,
        spec(Some(Splitter::Args {
            args: vec![vec!["x".to_owned()]].into(),
            append: true,
        })),
        Timestamp(1),
    );
    let subjobs = job.split(Timestamp(1)).unwrap();
    assert_eq!(
        subjobs[0]
            .effective_spec(&job.spec)
            .application
            .executable()
            .args,
        vec!["base", "x"]
    );
}

#[test]
fn generic_splitter_sets_several_attributes_at_once() {
    let splitter = Splitter::Generic {
        attributes: vec![
            SplitAttribute {
                path: "application.args".into(),
                values: vec![
                    Value::List(vec!["a".into(), Value::Integer(1)]),
                    Value::List(vec!["b".into()]),
                ],
            },
            SplitAttribute {
                path: "application.env.SEED".into(),
                values: vec![Value::Integer(11), "22".into()],
            },
            SplitAttribute {
                path: "backend.queue".into(),
                values: vec!["short".into(), "long".into()],
            },
            SplitAttribute {
                path: "name".into(),
                values: vec!["first".into(), "second".into()],
            },
        ],
    };
    let mut job = Job::new(1, spec(Some(splitter)), Timestamp(1));
    let subjobs = job.split(Timestamp(1)).unwrap();
    let second = subjobs[1].effective_spec(&job.spec);
    assert_eq!(second.application.executable().args, vec!["b"]);
    assert_eq!(second.application.executable().env["SEED"], "22");
    assert_eq!(
        second.application.executable().env["A"],
        "1",
        "other env kept"
    );
    assert_eq!(second.backend.options["queue"], Value::from("long"));
    assert_eq!(second.name, "second");
    let first = subjobs[0].effective_spec(&job.spec);
    assert_eq!(first.application.executable().args, vec!["a", "1"]);
    assert_eq!(first.application.executable().env["SEED"], "11");
    assert_eq!(job.spec.name, "j", "the master keeps its own spec");
}

#[test]
fn bad_splitters_are_refused_with_the_cause() {
    let unequal = Splitter::Generic {
        attributes: vec![
            SplitAttribute {
                path: "name".into(),
                values: vec!["a".into(), "b".into()],
            },
            SplitAttribute {
                path: "comment".into(),
                values: vec!["c".into()],
            },
        ],
    };
    assert!(matches!(
        unequal.split(),
        Err(SplitError::UnequalLengths { .. })
    ));

    let unknown = Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.nonsense".into(),
            values: vec!["a".into()],
        }],
    };
    assert_eq!(
        unknown.split(),
        Err(SplitError::UnknownAttribute("application.nonsense".into()))
    );

    let bad_value = Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.env".into(),
            values: vec!["not a table".into()],
        }],
    };
    let err = bad_value.split().unwrap_err().to_string();
    assert!(err.contains("expected a table of strings"), "{err}");

    let empty = Splitter::Args {
        args: ArgLists::new(),
        append: false,
    };
    assert_eq!(empty.split(), Err(SplitError::Empty));
}

fn finish(job: &mut Job, sj: &mut Subjob, end: Status) {
    job.set_subjob_status(sj, Status::Submitted, Timestamp(3))
        .unwrap();
    job.set_subjob_status(sj, Status::Running, Timestamp(4))
        .unwrap();
    if end == Status::Killed {
        job.set_subjob_status(sj, Status::Killed, Timestamp(5))
            .unwrap();
    } else {
        job.set_subjob_status(sj, Status::Completing, Timestamp(5))
            .unwrap();
        job.set_subjob_status(sj, end, Timestamp(6)).unwrap();
    }
}

#[test]
fn submit_moves_a_new_job_and_its_subjobs_to_submitting_and_derives_the_master() {
    let (mut job, mut subjobs) = split_job(3);
    job.begin_submit(&mut subjobs, Timestamp(3)).unwrap();
    assert_eq!(job.status(), Status::Submitting);
    assert!(
        subjobs
            .iter()
            .all(|s| s.status() == Status::Submitting && s.run.submit_count == 1)
    );
    assert_eq!(job.subjobs.get(Status::Submitting), 3);

    let err = job.begin_submit(&mut subjobs, Timestamp(3)).unwrap_err();
    assert!(
        matches!(err, LifecycleError::Refused { verb: "submit", .. }),
        "{err}"
    );
}

#[test]
fn the_master_follows_its_subjobs_through_a_run() {
    let (mut job, mut sjs) = split_job(3);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    let (a, rest) = sjs.split_first_mut().unwrap();
    let (b, c) = rest.split_first_mut().unwrap();
    let c = &mut c[0];
    job.set_subjob_status(a, Status::Submitted, Timestamp(4))
        .unwrap();
    assert_eq!(job.status(), Status::Submitting, "one still submitting");
    job.set_subjob_status(b, Status::Submitted, Timestamp(4))
        .unwrap();
    job.set_subjob_status(c, Status::Submitted, Timestamp(4))
        .unwrap();
    assert_eq!(job.status(), Status::Submitted);
    job.set_subjob_status(a, Status::Running, Timestamp(5))
        .unwrap();
    assert_eq!(
        job.status(),
        Status::Submitted,
        "Ganga: submitted outranks running"
    );
    job.set_subjob_status(b, Status::Running, Timestamp(5))
        .unwrap();
    job.set_subjob_status(c, Status::Running, Timestamp(5))
        .unwrap();
    assert_eq!(job.status(), Status::Running);
    for sj in [&mut *a, &mut *b] {
        job.set_subjob_status(sj, Status::Completing, Timestamp(6))
            .unwrap();
        job.set_subjob_status(sj, Status::Completed, Timestamp(7))
            .unwrap();
    }
    assert_eq!(job.status(), Status::Running);
    job.set_subjob_status(c, Status::Completing, Timestamp(6))
        .unwrap();
    job.set_subjob_status(c, Status::Failed, Timestamp(8))
        .unwrap();
    assert_eq!(job.status(), Status::Failed);
    assert_eq!(job.run.times.get(Status::Failed), Some(Timestamp(8)));
}

#[test]
fn resubmit_takes_only_failed_and_killed_subjobs() {
    let (mut job, mut sjs) = split_job(4);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    let ends = [
        Status::Completed,
        Status::Failed,
        Status::Killed,
        Status::Completed,
    ];
    for (sj, end) in sjs.iter_mut().zip(ends) {
        finish(&mut job, sj, end);
    }
    assert_eq!(job.status(), Status::Failed);
    sjs[1].run.backend.exit_code = Some(3);
    sjs[1].run.outputs = vec!["stdout".into()];

    let chosen = job.begin_resubmit(&mut sjs, Timestamp(9)).unwrap();
    assert_eq!(chosen, vec![1, 2]);
    assert_eq!(sjs[0].status(), Status::Completed);
    assert_eq!(sjs[3].status(), Status::Completed);
    for i in [1, 2] {
        assert_eq!(sjs[i].status(), Status::Submitting);
        assert_eq!(sjs[i].run.submit_count, 2);
        assert_eq!(sjs[i].run.backend.exit_code, None, "a new run starts clean");
        assert!(sjs[i].run.outputs.is_empty());
    }
    assert_eq!(job.status(), Status::Submitting);
    assert_eq!(job.run.submit_count, 2);

    // Nothing failed: nothing to resubmit.
    let (mut job, mut sjs) = split_job(1);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    finish(&mut job, &mut sjs[0], Status::Completed);
    assert!(matches!(
        job.begin_resubmit(&mut sjs, Timestamp(9)),
        Err(LifecycleError::NothingToResubmit { .. })
    ));
}

#[test]
fn resubmit_refuses_a_job_that_is_still_running() {
    let (mut job, mut sjs) = split_job(2);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    let err = job.begin_resubmit(&mut sjs, Timestamp(4)).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot resubmit a job that is submitting"),
        "{err}"
    );
}

#[test]
fn kill_targets_only_submitted_and_running_subjobs() {
    let (mut job, mut sjs) = split_job(3);
    assert!(
        job.kill_targets(&sjs).is_err(),
        "a new job cannot be killed"
    );
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    for sj in sjs.iter_mut() {
        job.set_subjob_status(sj, Status::Submitted, Timestamp(4))
            .unwrap();
    }
    job.set_subjob_status(&mut sjs[1], Status::Running, Timestamp(5))
        .unwrap();
    job.set_subjob_status(&mut sjs[2], Status::Running, Timestamp(5))
        .unwrap();
    job.set_subjob_status(&mut sjs[2], Status::Completing, Timestamp(5))
        .unwrap();
    job.set_subjob_status(&mut sjs[2], Status::Completed, Timestamp(5))
        .unwrap();
    assert_eq!(job.kill_targets(&sjs).unwrap(), vec![0, 1]);
    for i in [0, 1] {
        let (left, right) = sjs.split_at_mut(i);
        let _ = left;
        job.set_subjob_status(&mut right[0], Status::Killed, Timestamp(6))
            .unwrap();
    }
    assert_eq!(job.status(), Status::Killed);
}

#[test]
fn force_status_follows_gangas_whitelist() {
    let mut job = plain_job();
    assert!(
        job.force_status(Status::Completed, Timestamp(2)).is_err(),
        "new -> completed"
    );
    assert!(matches!(
        job.force_status(Status::Running, Timestamp(2)),
        Err(LifecycleError::NotForceable { .. })
    ));
    job.set_status(Status::Submitting, Timestamp(2)).unwrap();
    job.set_status(Status::Submitted, Timestamp(2)).unwrap();
    job.force_status(Status::Failed, Timestamp(3)).unwrap();
    job.force_status(Status::Completed, Timestamp(4)).unwrap();
    assert_eq!(job.status(), Status::Completed);

    // On a master: each subjob that can be forced is, then the master follows.
    let (mut job, mut sjs) = split_job(3);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    finish(&mut job, &mut sjs[0], Status::Failed);
    finish(&mut job, &mut sjs[1], Status::Completed);
    job.set_subjob_status(&mut sjs[2], Status::Submitted, Timestamp(3))
        .unwrap();
    let changed = job
        .force_status_of_subjobs(&mut sjs, Status::Failed, Timestamp(9))
        .unwrap();
    assert_eq!(changed, vec![1, 2]);
    assert_eq!(job.status(), Status::Failed);
    let changed = job
        .force_status_of_subjobs(&mut sjs, Status::Completed, Timestamp(10))
        .unwrap();
    assert_eq!(changed, vec![0, 1, 2]);
    assert_eq!(job.status(), Status::Completed);
}

#[test]
fn remove_is_refused_while_completing_and_for_active_jobs_unless_forced() {
    let mut job = plain_job();
    assert!(job.check_remove(false).is_ok());
    job.set_status(Status::Submitting, Timestamp(2)).unwrap();
    job.set_status(Status::Submitted, Timestamp(2)).unwrap();
    assert!(job.check_remove(false).is_err());
    assert!(job.check_remove(true).is_ok());
    job.set_status(Status::Completing, Timestamp(2)).unwrap();
    assert!(
        job.check_remove(true).is_err(),
        "never while collecting outputs"
    );
}

#[test]
fn copy_makes_a_new_job_with_the_same_spec_and_no_history() {
    let (mut job, mut sjs) = split_job(2);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    let copy = job.copy_as(99, Timestamp(50));
    assert_eq!(copy.id, 99);
    assert_eq!(copy.spec, job.spec);
    assert_eq!(copy.status(), Status::New);
    assert_eq!(copy.run.submit_count, 0);
    assert!(
        !copy.is_split(),
        "subjobs are made again when the copy is submitted"
    );
}

fn unit(status: Status, native: Option<&str>) -> ActiveUnit {
    ActiveUnit {
        unit: JobRef::subjob(1, 0),
        backend: "b".into(),
        status,
        run: 1,
        id: Some("7".into()),
        native_state: native.map(str::to_owned),
        since: Some(Timestamp(1)),
    }
}

/// What each (status, answer) pair leads to, as data: the status written (if any),
/// whether outputs are then collected, whether only the facts are written.
#[test]
fn poll_answers_decide_what_happens_and_nothing_uncertain_finishes_a_unit() {
    use RemoteStatus::*;
    #[derive(Debug, PartialEq)]
    enum Want {
        Nothing,
        Become(Status),
        Facts,
        Finalise(Option<Status>, bool),
        Absent,
    }
    let now = Timestamp(100);
    let cases = [
        (Status::Submitted, Unknown, Some("x"), Want::Nothing),
        (Status::Running, Unknown, Some("x"), Want::Nothing),
        (Status::Running, Absent, Some("x"), Want::Absent),
        (
            Status::Submitting,
            Queued,
            None,
            Want::Become(Status::Submitted),
        ),
        (Status::Submitted, Queued, Some("x"), Want::Nothing),
        (
            Status::Submitted,
            Queued,
            Some("PENDING (Priority)"),
            Want::Facts,
        ),
        (
            Status::Submitted,
            Running,
            Some("x"),
            Want::Become(Status::Running),
        ),
        (
            Status::Submitting,
            Running,
            None,
            Want::Become(Status::Running),
        ),
        (Status::Running, Running, Some("x"), Want::Nothing),
        (
            Status::Submitted,
            Succeeded,
            Some("x"),
            Want::Finalise(Some(Status::Completing), true),
        ),
        (
            Status::Running,
            Failed,
            Some("x"),
            Want::Finalise(Some(Status::Completing), false),
        ),
        // Interrupted while its outputs were collected: finalised again, from the same
        // evidence, without writing anything first.
        (
            Status::Completing,
            Succeeded,
            Some("x"),
            Want::Finalise(None, true),
        ),
        (
            Status::Running,
            Killed,
            Some("x"),
            Want::Become(Status::Killed),
        ),
        (Status::Completing, Killed, Some("x"), Want::Nothing),
    ];
    for (status, remote, native, want) in cases {
        let report = PollReport::new(remote, "x");
        let got = match after_poll(&unit(status, native), &report, now) {
            PollOutcome::Nothing => Want::Nothing,
            PollOutcome::Absent => Want::Absent,
            PollOutcome::Update(c) => match c.status {
                Some((s, _)) => Want::Become(s),
                None => {
                    assert_eq!(c.native_state.as_deref(), Some("x"));
                    Want::Facts
                }
            },
            PollOutcome::Finalise {
                update, succeeded, ..
            } => Want::Finalise(update.and_then(|c| c.status.map(|(s, _)| s)), succeeded),
        };
        assert_eq!(got, want, "{status} + {remote:?} (recorded {native:?})");
    }
}

#[test]
fn an_ended_unit_settles_by_its_outputs() {
    let now = Timestamp(5);
    let all = OutputsReport {
        collected: vec!["out.txt".into(), "stdout".into()],
        unmatched: vec![],
        skipped: vec![],
    };
    let c = settle(true, None, &all, now);
    assert_eq!(c.status, Some((Status::Completed, now)));
    assert_eq!(c.outputs.as_deref(), Some(&all.collected[..]));
    assert_eq!(c.reason, None);

    let missing = OutputsReport {
        unmatched: vec!["*.root".into()],
        skipped: vec!["link -> /etc: it leads out of the working directory".into()],
        ..all.clone()
    };
    let c = settle(true, None, &missing, now);
    assert_eq!(c.status, Some((Status::Failed, now)));
    let reason = c.reason.unwrap();
    assert!(reason.contains("`*.root` matched nothing"), "{reason}");
    assert!(
        reason.contains("leads out of the working directory"),
        "{reason}"
    );

    let c = settle(false, Some("exit code 3"), &missing, now);
    assert!(c.reason.unwrap().starts_with("exit code 3; "));
    assert_eq!(
        settle(false, None, &all, now).status,
        Some((Status::Failed, now))
    );
}

#[test]
fn lost_units_fail_with_the_reason() {
    let c = lost(Timestamp(9), 120, None);
    assert_eq!(c.status, Some((Status::Failed, Timestamp(9))));
    assert!(c.reason.unwrap().starts_with("lost: "));
}

#[test]
fn auto_resubmit_follows_gangas_limits() {
    let policy = AutoResubmit::DEFAULT;
    assert!(auto_resubmit_single(&policy, 0));
    assert!(auto_resubmit_single(&policy, 4));
    assert!(!auto_resubmit_single(&policy, 5));
    assert!(!auto_resubmit_single(&AutoResubmit::OFF, 0));

    let counts = |pairs: &[(Status, u32)]| {
        let mut c = StatusCounts::default();
        for &(s, n) in pairs {
            c.add(s, n);
        }
        c
    };
    // Not while a subjob is still going.
    assert!(!auto_resubmit_split(
        &policy,
        &counts(&[(Status::Failed, 1), (Status::Running, 3)])
    ));
    // A quarter failed: within the limit.
    assert!(auto_resubmit_split(
        &policy,
        &counts(&[(Status::Failed, 1), (Status::Completed, 3)])
    ));
    // More than a quarter: something no retry fixes.
    assert!(!auto_resubmit_split(
        &policy,
        &counts(&[(Status::Failed, 2), (Status::Completed, 3)])
    ));
    assert!(!auto_resubmit_split(
        &policy,
        &counts(&[(Status::Completed, 3)])
    ));
}

#[test]
fn unit_updates_apply_only_to_what_their_writer_saw() {
    let (mut job, mut sjs) = split_job(3);
    job.begin_submit(&mut sjs, Timestamp(3)).unwrap();
    let id = job.id;
    let to = |status, seen, run| UnitUpdate {
        unit: JobRef::subjob(id, 1),
        seen,
        run,
        change: UnitChange::to(status, Timestamp(10)),
    };
    // Submitting -> Running passes through Submitted.
    let u = to(Status::Running, Status::Submitting, 1);
    job.apply_unit_update(Some(&mut sjs[1]), &u).unwrap();
    assert_eq!(sjs[1].status(), Status::Running);
    assert_eq!(sjs[1].run.times.get(Status::Submitted), Some(Timestamp(10)));
    assert_eq!(job.subjobs.get(Status::Running), 1);
    assert_eq!(job.subjobs.get(Status::Submitting), 2);
    assert_eq!(job.status(), Status::Submitting);

    // A writer that saw it submitted, or saw another run, is refused.
    let stale = to(Status::Completing, Status::Submitted, 1);
    assert!(matches!(
        job.apply_unit_update(Some(&mut sjs[1]), &stale),
        Err(UnitRefusal::Changed {
            status: Status::Running,
            run: 1
        })
    ));
    let other_run = to(Status::Completing, Status::Running, 2);
    assert!(
        job.apply_unit_update(Some(&mut sjs[1]), &other_run)
            .is_err()
    );
    // Illegal moves are refused.
    let back = to(Status::New, Status::Running, 1);
    assert!(matches!(
        job.apply_unit_update(Some(&mut sjs[1]), &back),
        Err(UnitRefusal::Illegal { .. })
    ));

    // An automatic resubmission starts a new run.
    let failed = to(Status::Failed, Status::Running, 1);
    job.apply_unit_update(Some(&mut sjs[1]), &failed).unwrap();
    let again = UnitUpdate {
        change: auto_resubmission(Timestamp(20)),
        ..to(Status::Submitting, Status::Failed, 1)
    };
    job.apply_unit_update(Some(&mut sjs[1]), &again).unwrap();
    assert_eq!(sjs[1].run.submit_count, 2);
    assert_eq!(sjs[1].run.auto_resubmits, 1);
    assert_eq!(sjs[1].status(), Status::Submitting);
    assert_eq!(job.subjobs.get(Status::Failed), 0);
}

#[test]
fn job_refs_parse_and_print_as_ganga_fqids() {
    assert_eq!("12".parse::<JobRef>().unwrap(), JobRef::job(12));
    assert_eq!("12.3".parse::<JobRef>().unwrap(), JobRef::subjob(12, 3));
    assert_eq!(JobRef::subjob(12, 3).to_string(), "12.3");
    for bad in ["", "a", "1.", ".2", "1.2.3", "-1"] {
        assert!(bad.parse::<JobRef>().is_err(), "{bad:?}");
    }
}

#[test]
fn overrides_describe_the_attribute_they_set() {
    assert_eq!(
        Override::EnvVar("X".into(), "1".into()).path(),
        "application.env.X"
    );
    assert_eq!(
        Override::BackendOption("queue".into(), "q".into()).path(),
        "backend.queue"
    );
}

#[test]
fn user_paths_must_stay_inside_the_working_directory() {
    use ganga_core::check_inside_workdir as inside;
    for ok in ["stdout", "a/b.txt", "./a", "a..b"] {
        assert!(inside(ok).is_ok(), "{ok}");
    }
    for bad in ["", "../x", "a/../../x", "/etc/passwd"] {
        assert!(inside(bad).is_err(), "{bad}");
    }
}

#[test]
fn argument_lists_keep_every_list_and_word_and_serialize_as_lists() {
    let given: Vec<Vec<String>> = vec![
        vec!["a".into(), "".into(), "ünïcödé ☃".into()],
        vec![],
        vec!["--flag=x y".into()],
    ];
    let lists = ArgLists::from(given.clone());
    assert_eq!(lists.len(), 3);
    assert!(!lists.is_empty() && ArgLists::new().is_empty());
    for (k, list) in given.iter().enumerate() {
        assert_eq!(lists.list(k).as_ref(), Some(list));
    }
    assert_eq!(lists.list(3), None);
    assert_eq!(
        lists.iter().map(|l| l.len()).collect::<Vec<_>>(),
        vec![3, 0, 1]
    );
    assert_eq!(
        format!("{lists:?}"),
        r#"[["a", "", "ünïcödé ☃"], [], ["--flag=x y"]]"#
    );
    let json = serde_json::to_string(&lists).unwrap();
    assert_eq!(json, serde_json::to_string(&given).unwrap());
    assert_eq!(serde_json::from_str::<ArgLists>(&json).unwrap(), lists);

    let splitter = Splitter::Args {
        args: lists,
        append: true,
    };
    assert_eq!(
        splitter.item(2).unwrap(),
        Some(vec![Override::AppendArgs(vec!["--flag=x y".into()])])
    );
    assert_eq!(splitter.split().unwrap().len(), 3);
}

#[test]
fn records_of_backend_facts_and_changes_may_leave_out_any_field() {
    assert_eq!(
        serde_json::from_str::<ganga_core::BackendInfo>("{}").unwrap(),
        ganga_core::BackendInfo::default()
    );
    assert_eq!(
        serde_json::from_str::<ganga_core::UnitChange>("{}").unwrap(),
        ganga_core::UnitChange::default()
    );
    assert_eq!(
        serde_json::from_str::<ganga_core::Capabilities>("{}").unwrap(),
        ganga_core::Capabilities::default()
    );
    let change: ganga_core::UnitChange =
        serde_json::from_str(r#"{"new_run": true, "exit_code": 3}"#).unwrap();
    assert!(change.new_run);
    assert_eq!(change.exit_code, Some(3));
    assert_eq!(change.id, None);
}
