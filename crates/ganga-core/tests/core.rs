//! The job model's rules, driven by data.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::BTreeMap;

use ganga_core::{
    Application, ArgLists, BackendConfig, Executable, Job, JobRef, JobSpec, LifecycleError,
    NextStep, Override, PollReport, RemoteStatus, SplitAttribute, SplitError, Splitter, Status,
    StatusCounts, Subjob, Timestamp, Value, next_step,
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

fn report(status: RemoteStatus) -> PollReport {
    PollReport {
        job: JobRef::job(1),
        status,
        native_state: "x".into(),
        exit_code: None,
        reason: None,
        actual_ce: None,
        started: None,
        ended: None,
    }
}

#[test]
fn poll_answers_decide_the_next_step_and_unknown_never_finishes_a_job() {
    use RemoteStatus::*;
    let cases = [
        (Status::Submitted, Unknown, NextStep::Stay),
        (Status::Running, Unknown, NextStep::Stay),
        (
            Status::Submitting,
            Queued,
            NextStep::Become(Status::Submitted),
        ),
        (Status::Submitted, Queued, NextStep::Stay),
        (
            Status::Submitted,
            Running,
            NextStep::Become(Status::Running),
        ),
        (Status::Running, Running, NextStep::Stay),
        (
            Status::Submitted,
            Succeeded,
            NextStep::Finalise { succeeded: true },
        ),
        (
            Status::Running,
            Failed,
            NextStep::Finalise { succeeded: false },
        ),
        (
            Status::Completing,
            Succeeded,
            NextStep::Finalise { succeeded: true },
        ),
        (Status::Running, Killed, NextStep::Killed),
    ];
    for (current, remote, expected) in cases {
        assert_eq!(
            next_step(current, &report(remote)),
            expected,
            "{current} + {remote:?}"
        );
    }
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
fn protocol_messages_survive_cbor() {
    use ganga_core::protocol::{StoreReply, StoreRequest};
    let (job, sjs) = split_job(2);
    let msgs = vec![
        StoreRequest::Commit(vec![
            ganga_core::Change::PutJob(job.clone()),
            ganga_core::Change::PutSubjobs {
                job: job.id,
                subjobs: sjs.clone(),
            },
        ]),
        StoreRequest::Subjobs {
            job: 3,
            start: 0,
            end: 10,
        },
    ];
    for m in msgs {
        let mut bytes = Vec::new();
        ciborium::into_writer(&m, &mut bytes).unwrap();
        let back: StoreRequest = ciborium::from_reader(&bytes[..]).unwrap();
        assert_eq!(back, m);
    }
    let reply = StoreReply::Job(Some(job));
    let mut bytes = Vec::new();
    ciborium::into_writer(&reply, &mut bytes).unwrap();
    assert_eq!(
        ciborium::from_reader::<StoreReply, _>(&bytes[..]).unwrap(),
        reply
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
