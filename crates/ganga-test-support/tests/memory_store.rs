//! The Store trait's default methods (`update_units`, `active_units`) and its commit
//! rules, on the in-memory store that relies on them.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use ganga_core::{
    Application, BackendConfig, Change, Executable, Job, JobRef, JobSpec, RunUpdate, Splitter,
    Status, Store, StoreError, Timestamp, UnitChange, UnitRefusal, UnitUpdate,
};
use ganga_test_support::MemoryStore;

fn spec(subjobs: usize) -> JobSpec {
    JobSpec {
        name: "m".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/true".into(),
            args: vec![],
            env: Default::default(),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec![],
        splitter: (subjobs > 0).then(|| Splitter::Args {
            args: (0..subjobs).map(|i| vec![i.to_string()]).collect(),
            append: false,
        }),
        auto_resubmit: None,
    }
}

/// A job of `n` subjobs, submitted: every subjob `submitting`.
fn submitted(store: &MemoryStore, n: usize) -> Job {
    let id = store.reserve_ids(1).unwrap();
    let mut job = Job::new(id, spec(n), Timestamp(1));
    let mut subjobs = job.split(Timestamp(1)).unwrap();
    job.begin_submit(&mut subjobs, Timestamp(2)).unwrap();
    store
        .commit(&[Change::PutJob(job), Change::PutSubjobs { job: id, subjobs }])
        .unwrap();
    store.job(id).unwrap().unwrap()
}

fn to_submitted(unit: JobRef, seen: Status) -> UnitUpdate {
    UnitUpdate {
        unit,
        seen,
        run: 1,
        change: UnitChange {
            status: Some((Status::Submitted, Timestamp(3))),
            id: Some(format!("remote-{unit}")),
            ..UnitChange::default()
        },
    }
}

#[test]
fn unit_updates_are_applied_through_the_status_rules_and_keep_the_counters() {
    let store = MemoryStore::new();
    let job = submitted(&store, 3);
    let id = job.id;
    let outcome = store
        .update_units(&[
            to_submitted(JobRef::subjob(id, 0), Status::Submitting),
            // Seen in another status than it has: someone else changed it meanwhile.
            to_submitted(JobRef::subjob(id, 1), Status::Running),
            to_submitted(JobRef::subjob(id, 7), Status::Submitting),
            to_submitted(JobRef::job(id + 1), Status::Submitting),
        ])
        .unwrap();
    assert_eq!(outcome.committed.len(), 1, "{outcome:?}");
    assert_eq!(outcome.committed[0].job, id);
    let refused: Vec<(JobRef, &UnitRefusal)> =
        outcome.refused.iter().map(|(u, why)| (*u, why)).collect();
    assert!(
        matches!(
            refused.as_slice(),
            [
                (u1, UnitRefusal::Changed { status: Status::Submitting, run: 1 }),
                (u7, UnitRefusal::NoSuchUnit),
                (other, UnitRefusal::NoSuchUnit),
            ] if *u1 == JobRef::subjob(id, 1) && *u7 == JobRef::subjob(id, 7) && *other == JobRef::job(id + 1)
        ),
        "{refused:?}"
    );
    let subjobs = store.subjobs(id, 0..3).unwrap();
    let statuses: Vec<Status> = subjobs.iter().map(|s| s.status()).collect();
    assert_eq!(
        statuses,
        [Status::Submitted, Status::Submitting, Status::Submitting]
    );
    assert_eq!(subjobs[0].run.backend.id.as_deref(), Some("remote-0.0"));
    let master = store.job(id).unwrap().unwrap();
    assert_eq!(master.subjobs.get(Status::Submitted), 1);
    assert_eq!(master.subjobs.get(Status::Submitting), 2);
    assert_eq!(master.revision, job.revision + 1);
    assert!(store.check().unwrap().problems.is_empty());
}

#[test]
fn a_job_none_of_whose_updates_apply_is_not_written() {
    let store = MemoryStore::new();
    let job = submitted(&store, 2);
    let outcome = store
        .update_units(&[to_submitted(JobRef::subjob(job.id, 0), Status::Running)])
        .unwrap();
    assert!(outcome.committed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.refused.len(), 1);
    assert_eq!(store.job(job.id).unwrap().unwrap().revision, job.revision);
}

#[test]
fn unit_updates_that_meet_another_writer_conflict_and_write_nothing() {
    let store = MemoryStore::new();
    let a = submitted(&store, 2);
    let b = submitted(&store, 1);
    store.interfere(1);
    let err = store
        .update_units(&[
            to_submitted(JobRef::subjob(a.id, 0), Status::Submitting),
            to_submitted(JobRef::subjob(b.id, 0), Status::Submitting),
        ])
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict {
            jobs: vec![a.id, b.id]
        }
    );
    assert_eq!(store.interfered(), 1);
    // All or nothing: neither job's subjob moved on.
    for id in [a.id, b.id] {
        let first = store.subjobs(id, 0..1).unwrap();
        assert_eq!(first[0].status(), Status::Submitting);
    }
    // Read again, they apply.
    let outcome = store
        .update_units(&[to_submitted(JobRef::subjob(a.id, 0), Status::Submitting)])
        .unwrap();
    assert_eq!(outcome.committed.len(), 1);
}

#[test]
fn a_commit_at_a_revision_another_writer_moved_on_is_refused_whole() {
    let store = MemoryStore::new();
    let job = submitted(&store, 0);
    let mut stale = job.clone();
    stale.revision -= 1;
    let other = submitted(&store, 0);
    let err = store
        .commit(&[
            Change::PutRun(RunUpdate::of(&other)),
            Change::PutRun(RunUpdate::of(&stale)),
        ])
        .unwrap_err();
    assert_eq!(err, StoreError::Conflict { jobs: vec![job.id] });
    assert_eq!(
        store.job(other.id).unwrap().unwrap().revision,
        other.revision
    );
    // Subjobs without their master in the commit are refused.
    let err = store
        .commit(&[Change::PutSubjobs {
            job: job.id,
            subjobs: vec![],
        }])
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[test]
fn active_units_lists_each_active_unit_once_in_cursor_order() {
    let store = MemoryStore::new();
    let split = submitted(&store, 3);
    let single = submitted(&store, 0);
    let units: Vec<JobRef> = store
        .active_units(None, 100)
        .unwrap()
        .into_iter()
        .map(|u| u.unit)
        .collect();
    assert_eq!(
        units,
        [
            JobRef::subjob(split.id, 0),
            JobRef::subjob(split.id, 1),
            JobRef::subjob(split.id, 2),
            JobRef::job(single.id),
        ]
    );
}
