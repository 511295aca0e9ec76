//! The LMDB store against the `Store` contract: records, revisions, indexes, damage,
//! growth, a second process, and the dump format.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ganga_core::{
    ActiveJob, Application, BackendConfig, BackendInfo, Change, Committed, Executable, Job, JobId,
    JobRef, JobSpec, JobSummary, Options, Override, RunState, RunUpdate, SplitAttribute, Splitter,
    Status, StatusCounts, StatusTimes, Store, StoreError, Subjob, SummaryEntry, Timestamp, Value,
};
use ganga_plugin_sdk::PluginContext;
use ganga_plugin_sdk::StorePlugin;
use ganga_records::{Dictionary, RecordStore as _};
use ganga_store_lmdb::{LmdbOptions, LmdbStore, SUBJOBS_PER_GROUP as PER_GROUP};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T0: i64 = 1_700_000_000_000;

fn at(offset_secs: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_secs * 1000)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory (the tests need a writable TMPDIR)")
}

fn spec(name: &str, backend: &str) -> JobSpec {
    JobSpec {
        auto_resubmit: None,
        name: name.to_owned(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".to_owned(),
            args: vec!["hello".to_owned()],
            env: BTreeMap::new(),
        }),
        backend: BackendConfig::named(backend),
        input_files: Vec::new(),
        output_files: Vec::new(),
        splitter: None,
    }
}

/// A new job with a freshly reserved id, not yet committed.
fn new_job(store: &LmdbStore, name: &str) -> Result<Job, StoreError> {
    let id = store.reserve_ids(1)?;
    Ok(Job::new(id, spec(name, "local"), at(0)))
}

/// Puts `job` and returns it as stored (with its new revision).
fn put(store: &LmdbStore, job: &Job) -> Result<Job, StoreError> {
    let committed = store.commit(&[Change::PutJob(job.clone())])?;
    assert_eq!(
        committed,
        vec![Committed {
            job: job.id,
            revision: job.revision + 1
        }]
    );
    let mut stored = job.clone();
    stored.revision += 1;
    Ok(stored)
}

fn with_status(job: &Job, status: Status, when: Timestamp) -> Job {
    let mut job = job.clone();
    job.run.status = status;
    job.run.times.set(status, when);
    job
}

fn assert_clean(store: &LmdbStore) -> TestResult {
    let report = store.check()?;
    assert!(
        report.problems.is_empty(),
        "check found problems: {:#?}",
        report.problems
    );
    Ok(())
}

fn summary_ids(entries: &[SummaryEntry]) -> Vec<JobId> {
    entries.iter().map(SummaryEntry::id).collect()
}

/// A job with every field set to something other than its default.
fn full_job(id: JobId) -> Job {
    let times: StatusTimes = [
        (Status::New, at(1)),
        (Status::Submitting, at(2)),
        (Status::Submitted, at(3)),
        (Status::Running, at(4)),
    ]
    .into_iter()
    .collect();
    let options: Options = [
        ("queue".to_owned(), Value::from("short")),
        ("cores".to_owned(), Value::Integer(-4)),
        ("exclusive".to_owned(), Value::Bool(true)),
        ("memory_gb".to_owned(), Value::Float(2.5)),
        (
            "tags".to_owned(),
            Value::List(vec![Value::from("a"), Value::Integer(7)]),
        ),
        (
            "limits".to_owned(),
            Value::Table(BTreeMap::from([
                ("cpu".to_owned(), Value::Integer(3600)),
                ("nested".to_owned(), Value::List(vec![Value::Bool(false)])),
            ])),
        ),
    ]
    .into_iter()
    .collect();
    Job {
        id,
        revision: 0,
        spec: Arc::new(JobSpec {
            auto_resubmit: None,
            name: "full job".to_owned(),
            comment: "every field set — ünïcode too".to_owned(),
            application: Application::Executable(Executable {
                exe: "/usr/bin/analysis".to_owned(),
                args: vec!["--in".to_owned(), "data file.txt".to_owned()],
                env: BTreeMap::from([
                    ("A".to_owned(), "1".to_owned()),
                    ("PATH".to_owned(), "/opt/bin".to_owned()),
                ]),
            }),
            backend: BackendConfig {
                kind: "slurm".to_owned(),
                options,
            },
            input_files: vec![PathBuf::from("/data/in.txt"), PathBuf::from("/data/b")],
            output_files: vec!["*.root".to_owned(), "log.txt".to_owned()],
            splitter: Some(Splitter::Generic {
                attributes: vec![
                    SplitAttribute {
                        path: "application.args".to_owned(),
                        values: vec![
                            Value::List(vec![Value::from("x"), Value::Integer(1)]),
                            Value::from("y"),
                        ],
                    },
                    SplitAttribute {
                        path: "backend.queue".to_owned(),
                        values: vec![Value::from("long"), Value::Float(0.5)],
                    },
                ],
            }),
        }),
        run: RunState {
            auto_resubmits: 0,
            status: Status::Running,
            times,
            submit_count: 3,
            backend: BackendInfo {
                id: Some("12345".to_owned()),
                native_state: Some("RUNNING".to_owned()),
                exit_code: Some(-9),
                reason: Some("node lost".to_owned()),
                actual_ce: Some("node17.example.org".to_owned()),
            },
            outputs: vec!["stdout".to_owned(), "out/result.root".to_owned()],
        },
        subjobs: [Status::Running, Status::Completed].into_iter().collect(),
        metadata: BTreeMap::from([
            ("ganga.uuid".to_owned(), "0b4e-ü".to_owned()),
            ("label".to_owned(), String::new()),
        ]),
    }
}

/// Two subjobs that use every kind of override and every kind of value between them, and
/// every backend fact (a backend id as text and as a number, a negative exit code, times
/// before and after their dictionary's base).
fn full_subjobs() -> Vec<Subjob> {
    let mut first = Subjob::new(
        0,
        vec![
            Override::Name("sub zero".to_owned()),
            Override::Comment("first".to_owned()),
            Override::Exe("/bin/other".to_owned()),
            Override::Args(vec!["x".to_owned(), "1".to_owned()]),
            Override::AppendArgs(vec!["--more".to_owned()]),
            Override::Env(BTreeMap::from([("K".to_owned(), "v".to_owned())])),
            Override::EnvVar("ONE".to_owned(), "1".to_owned()),
            Override::BackendOption("queue".to_owned(), Value::from("long")),
            Override::BackendOption(
                "limits".to_owned(),
                Value::Table(BTreeMap::from([("mem".to_owned(), Value::Float(1.5))])),
            ),
            Override::BackendOption("cores".to_owned(), Value::Integer(-3)),
            Override::BackendOption("exclusive".to_owned(), Value::Bool(true)),
            Override::BackendOption(
                "tags".to_owned(),
                Value::List(vec![Value::from("ü"), Value::Integer(i64::MAX)]),
            ),
        ],
        at(1),
    );
    first.run.status = Status::Running;
    first.run.times.set(Status::Running, at(5));
    first.run.submit_count = 1;
    first.run.backend = BackendInfo {
        id: Some("12345_0".to_owned()),
        native_state: Some("R".to_owned()),
        exit_code: None,
        reason: Some("started".to_owned()),
        actual_ce: Some("node3".to_owned()),
    };
    let mut second = Subjob::new(1, vec![Override::Args(vec!["y".to_owned()])], at(1));
    second.run.status = Status::Completed;
    second.run.times.set(Status::Completed, at(9));
    second.run.times.set(Status::Submitting, at(-5));
    second.run.submit_count = 2;
    second.run.backend.id = Some("4000123".to_owned());
    second.run.backend.exit_code = Some(-11);
    second.run.backend.native_state = Some("R".to_owned());
    second.run.outputs = vec!["result.root".to_owned(), "stdout".to_owned()];
    vec![first, second]
}

#[test]
fn every_field_of_jobs_and_subjobs_round_trips() -> TestResult {
    let dir = tmp();
    let id;
    let args_id;
    {
        let store = LmdbStore::open(dir.path())?;
        id = store.reserve_ids(2)?;
        args_id = id + 1;
        let job = full_job(id);
        let mut args_job = full_job(args_id);
        Arc::make_mut(&mut args_job.spec).splitter = Some(Splitter::Args {
            args: vec![vec!["a".to_owned()], vec!["b".to_owned(), "c".to_owned()]].into(),
            append: true,
        });
        args_job.subjobs = StatusCounts::default();
        let committed = store.commit(&[
            Change::PutJob(job.clone()),
            Change::PutSubjobs {
                job: id,
                subjobs: full_subjobs(),
            },
            Change::PutJob(args_job.clone()),
        ])?;
        assert_eq!(
            committed,
            vec![
                Committed {
                    job: id,
                    revision: 1
                },
                Committed {
                    job: args_id,
                    revision: 1
                }
            ]
        );
        assert_clean(&store)?;
    }
    // Read back from a freshly opened environment, so that nothing comes from memory.
    let store = LmdbStore::open(dir.path())?;
    let mut expected = full_job(id);
    expected.revision = 1;
    assert_eq!(store.job(id)?, Some(expected.clone()));
    assert_eq!(store.subjobs(id, 0..10)?, full_subjobs());
    assert_eq!(store.subjobs(id, 1..2)?, full_subjobs()[1..].to_vec());
    assert_eq!(store.subjobs(id, 0..0)?, Vec::new());
    assert_eq!(store.subjobs(args_id, 0..10)?, Vec::new());
    let args_job = store.job(args_id)?.ok_or("the Args job is missing")?;
    assert_eq!(
        args_job.spec.splitter,
        Some(Splitter::Args {
            args: vec![vec!["a".to_owned()], vec!["b".to_owned(), "c".to_owned()]].into(),
            append: true,
        })
    );
    let summaries = store.summaries(0, 10)?;
    assert_eq!(
        summaries.first(),
        Some(&SummaryEntry::Readable(JobSummary::of(&expected)))
    );
    assert_eq!(summary_ids(&summaries), vec![id, args_id]);
    assert_eq!(
        store.active()?,
        vec![
            ActiveJob {
                id,
                backend: "slurm".to_owned(),
                status: Status::Running,
                revision: 1,
            },
            ActiveJob {
                id: args_id,
                backend: "slurm".to_owned(),
                status: Status::Running,
                revision: 1,
            }
        ]
    );
    assert_eq!(store.job(args_id + 1)?, None);
    Ok(())
}

#[test]
fn stale_revisions_are_refused_and_write_nothing() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let a = put(&store, &new_job(&store, "a")?)?;
    assert_eq!(a.revision, 1);

    // Another writer read revision 0: refused, and the record stays as it was.
    let mut stale = a.clone();
    stale.revision = 0;
    Arc::make_mut(&mut stale.spec).name = "stale".to_owned();
    assert_eq!(
        store.commit(&[Change::PutJob(stale)]),
        Err(StoreError::Conflict { jobs: vec![a.id] })
    );
    assert_eq!(store.job(a.id)?, Some(a.clone()));

    let mut a2 = a.clone();
    Arc::make_mut(&mut a2.spec).name = "a2".to_owned();
    let a2 = put(&store, &a2)?;
    assert_eq!(a2.revision, 2);

    // One conflicting job makes the whole commit fail: the new job b, its subjobs and
    // the removal of c are not written either.
    let b = new_job(&store, "b")?;
    let c = put(&store, &new_job(&store, "c")?)?;
    let mut b_split = b.clone();
    b_split.subjobs = [Status::New].into_iter().collect();
    let result = store.commit(&[
        Change::PutJob(b_split),
        Change::PutSubjobs {
            job: b.id,
            subjobs: vec![Subjob::new(0, Vec::new(), at(0))],
        },
        Change::RemoveJob {
            job: c.id,
            revision: c.revision,
        },
        Change::PutJob(a.clone()),
    ]);
    assert_eq!(result, Err(StoreError::Conflict { jobs: vec![a.id] }));
    assert_eq!(store.job(b.id)?, None);
    assert_eq!(store.subjobs(b.id, 0..10)?, Vec::new());
    assert_eq!(store.job(c.id)?, Some(c.clone()));
    assert_eq!(store.job(a.id)?, Some(a2.clone()));
    assert_eq!(summary_ids(&store.summaries(0, 100)?), vec![a.id, c.id]);

    // Every conflicting job is listed: a stale put, a put of a "new" job that exists, a
    // removal at the wrong revision, a put claiming a revision of a job never written.
    let mut c_as_new = c.clone();
    c_as_new.revision = 0;
    let mut b_claims = b.clone();
    b_claims.revision = 4;
    let result = store.commit(&[
        Change::PutJob(a.clone()),
        Change::PutJob(b_claims),
        Change::RemoveJob {
            job: c.id,
            revision: 7,
        },
    ]);
    assert_eq!(
        result,
        Err(StoreError::Conflict {
            jobs: vec![a.id, b.id, c.id]
        })
    );
    assert_eq!(
        store.commit(&[Change::PutJob(c_as_new)]),
        Err(StoreError::Conflict { jobs: vec![c.id] })
    );
    assert_eq!(store.job(a.id)?, Some(a2));
    assert_eq!(store.job(b.id)?, None);
    assert_eq!(store.job(c.id)?, Some(c));
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn malformed_commits_are_invalid() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let a = put(&store, &new_job(&store, "a")?)?;

    // Subjobs without their master.
    let result = store.commit(&[Change::PutSubjobs {
        job: a.id,
        subjobs: vec![Subjob::new(0, Vec::new(), at(0))],
    }]);
    match result {
        Err(StoreError::Invalid(message)) => assert!(message.contains("master"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.subjobs(a.id, 0..10)?, Vec::new());

    // An id that was never reserved.
    let unreserved = Job::new(a.id + 1, spec("x", "local"), at(0));
    assert!(matches!(
        store.commit(&[Change::PutJob(unreserved)]),
        Err(StoreError::Invalid(_))
    ));

    // The same job twice.
    assert!(matches!(
        store.commit(&[Change::PutJob(a.clone()), Change::PutJob(a.clone())]),
        Err(StoreError::Invalid(_))
    ));

    // A backend name that cannot be an index key.
    let mut bad_backend = a.clone();
    Arc::make_mut(&mut bad_backend.spec).backend.kind = "lo\0cal".to_owned();
    assert!(matches!(
        store.commit(&[Change::PutJob(bad_backend)]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.job(a.id)?, Some(a));
    assert_eq!(store.commit(&[])?, Vec::new());
    Ok(())
}

#[test]
fn removal_deletes_the_job_its_subjobs_summary_and_index_entry() -> TestResult {
    let dir = tmp();
    let (a, b);
    {
        let store = LmdbStore::open(dir.path())?;
        let mut master = with_status(&new_job(&store, "master")?, Status::Running, at(2));
        master.subjobs = [Status::Running, Status::Running, Status::New]
            .into_iter()
            .collect();
        let mut subjobs: Vec<Subjob> = (0..3)
            .map(|i| Subjob::new(i, vec![Override::Args(vec![i.to_string()])], at(0)))
            .collect();
        subjobs[0].run.status = Status::Running;
        subjobs[1].run.status = Status::Running;
        // Its neighbour, whose subjob keys sort right after the master's.
        let mut neighbour = with_status(&new_job(&store, "neighbour")?, Status::Submitted, at(1));
        neighbour.subjobs = [Status::New].into_iter().collect();
        store.commit(&[
            Change::PutJob(master.clone()),
            Change::PutSubjobs {
                job: master.id,
                subjobs,
            },
            Change::PutJob(neighbour.clone()),
            Change::PutSubjobs {
                job: neighbour.id,
                subjobs: vec![Subjob::new(0, Vec::new(), at(0))],
            },
        ])?;
        a = master.id;
        b = neighbour.id;
        assert_eq!(store.active()?.len(), 2);

        assert_eq!(
            store.commit(&[Change::RemoveJob {
                job: a,
                revision: 0
            }]),
            Err(StoreError::Conflict { jobs: vec![a] })
        );
        assert!(store.job(a)?.is_some());

        store.commit(&[Change::RemoveJob {
            job: a,
            revision: 1,
        }])?;
        assert_eq!(store.job(a)?, None);
        assert_eq!(store.subjobs(a, 0..u32::MAX)?, Vec::new());
        assert_eq!(summary_ids(&store.summaries(0, 10)?), vec![b]);
        assert_eq!(
            store.active()?,
            vec![ActiveJob {
                id: b,
                backend: "local".to_owned(),
                status: Status::Submitted,
                revision: 1,
            }]
        );
        assert_eq!(store.subjobs(b, 0..10)?.len(), 1);
        assert_clean(&store)?;

        // Removing it again: nothing is at any revision.
        assert_eq!(
            store.commit(&[Change::RemoveJob {
                job: a,
                revision: 1
            }]),
            Err(StoreError::Conflict { jobs: vec![a] })
        );
    }
    // Ids are never handed out again, even after the highest one was removed.
    let store = LmdbStore::open(dir.path())?;
    let removed = store.commit(&[Change::RemoveJob {
        job: b,
        revision: 1,
    }]);
    assert_eq!(removed, Ok(Vec::new()));
    drop(store);
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.reserve_ids(1)?, b + 1);
    assert_eq!(store.summaries(0, 10)?, Vec::new());
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn the_active_index_follows_status_changes() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let quiet = put(&store, &new_job(&store, "quiet")?)?;
    let job = put(&store, &new_job(&store, "busy")?)?;
    assert_eq!(store.active()?, Vec::new());

    let active = |status, revision| {
        vec![ActiveJob {
            id: job.id,
            backend: "local".to_owned(),
            status,
            revision,
        }]
    };
    let job = put(&store, &with_status(&job, Status::Submitting, at(1)))?;
    assert_eq!(store.active()?, active(Status::Submitting, 2));
    let job = put(&store, &with_status(&job, Status::Submitted, at(2)))?;
    assert_eq!(store.active()?, active(Status::Submitted, 3));
    let job = put(&store, &with_status(&job, Status::Running, at(3)))?;
    assert_eq!(store.active()?, active(Status::Running, 4));
    assert_clean(&store)?;

    // Moved to another backend while active: only the new entry remains.
    let mut moved = job.clone();
    Arc::make_mut(&mut moved.spec).backend.kind = "slurm".to_owned();
    let job = put(&store, &moved)?;
    assert_eq!(
        store.active()?,
        vec![ActiveJob {
            id: job.id,
            backend: "slurm".to_owned(),
            status: Status::Running,
            revision: 5,
        }]
    );
    assert_clean(&store)?;

    let job = put(&store, &with_status(&job, Status::Completing, at(4)))?;
    assert_eq!(store.active()?.len(), 1);
    let job = put(&store, &with_status(&job, Status::Completed, at(5)))?;
    assert_eq!(store.active()?, Vec::new());
    // Unknown is not active (Ganga's table only leads it to removed).
    put(&store, &with_status(&quiet, Status::Unknown, at(6)))?;
    assert_eq!(store.active()?, Vec::new());
    assert_eq!(
        store.job(job.id)?.map(|j| j.status()),
        Some(Status::Completed)
    );
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn check_passes_after_a_mixed_workload_and_finds_broken_indexes() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let first = store.reserve_ids(20)?;
    let mut jobs = Vec::new();
    for id in first..first + 20 {
        let mut job = Job::new(id, spec(&format!("job {id}"), "local"), at(0));
        let mut changes = Vec::new();
        if id % 3 == 0 {
            job.subjobs = [Status::New, Status::Running, Status::Completed]
                .into_iter()
                .collect();
            job = with_status(&job, Status::Running, at(1));
            let subjobs = [Status::New, Status::Running, Status::Completed]
                .into_iter()
                .enumerate()
                .map(|(i, status)| {
                    let mut s = Subjob::new(i as u32, Vec::new(), at(0));
                    s.run.status = status;
                    s
                })
                .collect();
            changes.push(Change::PutSubjobs { job: id, subjobs });
        }
        changes.insert(0, Change::PutJob(job.clone()));
        store.commit(&changes)?;
        job.revision = 1;
        jobs.push(job);
    }
    // Some finish, some are removed, some get another subjob update.
    for job in jobs.iter_mut().filter(|j| j.id % 4 == 1) {
        *job = put(&store, &with_status(job, Status::Submitting, at(2)))?;
    }
    let removed: Vec<Change> = jobs
        .iter()
        .filter(|j| j.id % 5 == 0)
        .map(|j| Change::RemoveJob {
            job: j.id,
            revision: j.revision,
        })
        .collect();
    store.commit(&removed)?;
    jobs.retain(|j| j.id % 5 != 0);
    let split = jobs
        .iter()
        .find(|j| j.is_split())
        .ok_or("no split job left")?
        .clone();
    let mut master = split.clone();
    master.subjobs.shift(Status::Running, Status::Completed);
    let mut done = Subjob::new(1, Vec::new(), at(0));
    done.run.status = Status::Completed;
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: master.id,
            subjobs: vec![done],
        },
    ])?;

    let report = store.check()?;
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.jobs, jobs.len() as u64);
    let split_jobs = jobs.iter().filter(|j| j.is_split()).count() as u64;
    assert_eq!(report.subjobs, 3 * split_jobs);

    // Damage each index in turn; check names what is wrong.
    let active = store.active()?;
    let victim = active.first().ok_or("no active job")?;
    let mut key = victim.backend.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&victim.id.to_be_bytes());
    let value = store.raw_get("active", &key)?.ok_or("no active entry")?;
    assert!(store.raw_delete("active", &key)?);
    let problems = store.check()?.problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains(&format!("job {}", victim.id)) && problems[0].contains("active"),
        "{problems:#?}"
    );
    // An entry with a stale revision (another process changed the job).
    let mut stale = value.clone();
    *stale.last_mut().ok_or("an empty active entry")? ^= 0x40;
    store.raw_put("active", &key, &stale)?;
    let problems = store.check()?.problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains(&format!("at revision {}", victim.revision)),
        "{problems:#?}"
    );
    store.raw_put("active", &key, &value)?;
    assert_clean(&store)?;

    // A summary that no longer matches its job.
    let other = jobs
        .iter()
        .find(|j| j.id != master.id && !j.status().is_active())
        .ok_or("no inactive job")?;
    let mut wrong = JobSummary::of(other);
    wrong.name = "renamed behind the store's back".to_owned();
    let mut bytes = Vec::new();
    ganga_records::encode_summary(&wrong, &mut bytes);
    store.raw_put("summaries", &other.id.to_be_bytes(), &bytes)?;
    // A subjob whose master does not exist, and an entry for a job that is not active.
    let mut orphan = Vec::new();
    ganga_records::encode_subjob(
        &Subjob::new(0, Vec::new(), at(0)),
        &mut Dictionary::new(at(0)),
        None,
        &mut orphan,
    );
    store.raw_put(
        "subjobs",
        &group_key(999_999, 0),
        &group_value(&[Some(orphan)]),
    )?;
    let mut stray = b"local\0".to_vec();
    stray.extend_from_slice(&other.id.to_be_bytes());
    store.raw_put("active", &stray, &[Status::Running as u8, 1])?;

    let problems = store.check()?.problems;
    let mentions = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        mentions(&format!(
            "job {}: summary differs from the job in name",
            other.id
        )),
        "{problems:#?}"
    );
    assert!(
        mentions("master job 999999 does not exist"),
        "{problems:#?}"
    );
    assert!(
        mentions(&format!("job {} is not active", other.id)),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    Ok(())
}

#[test]
fn check_finds_subjob_counters_that_disagree() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let mut job = new_job(&store, "split")?;
    job.subjobs = [Status::New, Status::New].into_iter().collect();
    store.commit(&[
        Change::PutJob(job.clone()),
        Change::PutSubjobs {
            job: job.id,
            subjobs: vec![Subjob::new(0, Vec::new(), at(0))],
        },
    ])?;
    let problems = store.check()?.problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("subjob counters say [new:2] but its subjobs are [new:1]"),
        "{problems:#?}"
    );
    Ok(())
}

#[test]
fn a_corrupt_record_is_reported_for_its_job_alone() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let a = put(&store, &new_job(&store, "a")?)?;
    let mut b = new_job(&store, "b")?;
    b.subjobs = [Status::New, Status::New].into_iter().collect();
    store.commit(&[
        Change::PutJob(b.clone()),
        Change::PutSubjobs {
            job: b.id,
            subjobs: vec![
                Subjob::new(0, Vec::new(), at(0)),
                Subjob::new(1, Vec::new(), at(0)),
            ],
        },
    ])?;
    let c = put(&store, &new_job(&store, "c")?)?;

    let garbage = b"\xff\x00 not cbor at all";
    store.raw_put("jobs", &b.id.to_be_bytes(), garbage)?;
    store.raw_put("summaries", &b.id.to_be_bytes(), garbage)?;
    // The group of subjobs 0–15 of a (which has none): valid CBOR, wrong shape.
    store.raw_put("subjobs", &group_key(a.id, 0), b"\x01")?;

    let summaries = store.summaries(0, 10)?;
    assert_eq!(summary_ids(&summaries), vec![a.id, b.id, c.id]);
    assert_eq!(summaries[0], SummaryEntry::Readable(JobSummary::of(&a)));
    match &summaries[1] {
        SummaryEntry::Unreadable { id, error } => {
            assert_eq!(*id, b.id);
            assert!(error.contains("CBOR"), "{error}");
        }
        other => panic!("expected job {} unreadable, got {other:?}", b.id),
    }
    assert_eq!(summaries[2], SummaryEntry::Readable(JobSummary::of(&c)));

    match store.job(b.id) {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::job(b.id));
            assert!(
                detail.contains("jobs") && detail.contains("CBOR"),
                "{detail}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.job(a.id)?, Some(a.clone()));
    assert_eq!(store.job(c.id)?, Some(c.clone()));
    match store.subjobs(a.id, 0..10) {
        Err(StoreError::Corrupt { job, .. }) => assert_eq!(job, JobRef::subjob(a.id, 0)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The good subjobs of b still read (b's master is corrupt, its subjobs are not).
    assert_eq!(store.subjobs(b.id, 0..10)?.len(), 2);
    let problems = store.check()?.problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("job {}: record unreadable", b.id))),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("subjob {}.0: record unreadable", a.id))),
        "{problems:#?}"
    );

    // A corrupt job cannot be overwritten blindly, but it can be removed.
    let mut b_again = b.clone();
    b_again.revision = 1;
    assert!(matches!(
        store.commit(&[Change::PutJob(b_again)]),
        Err(StoreError::Corrupt { .. })
    ));
    store.commit(&[Change::RemoveJob {
        job: b.id,
        revision: 1,
    }])?;
    assert_eq!(summary_ids(&store.summaries(0, 10)?), vec![a.id, c.id]);
    assert_eq!(store.subjobs(b.id, 0..10)?, Vec::new());
    Ok(())
}

#[test]
fn the_map_grows_when_it_fills() -> TestResult {
    let dir = tmp();
    let initial = 64 << 10;
    let comment = "x".repeat(2000);
    let ids;
    {
        let store =
            LmdbStore::open_with(dir.path(), &LmdbOptions::new().initial_map_size(initial))?;
        assert_eq!(store.map_size(), initial);
        let first = store.reserve_ids(600)?;
        ids = first..first + 600;
        let job_with_comment = |id| {
            let mut job = Job::new(id, spec(&format!("job {id}"), "local"), at(0));
            Arc::make_mut(&mut job.spec).comment = comment.clone();
            job
        };
        // One by one, then a large batch in one transaction.
        for id in ids.start..ids.start + 200 {
            store.commit(&[Change::PutJob(job_with_comment(id))])?;
        }
        let batch: Vec<Change> = (ids.start + 200..ids.end)
            .map(|id| Change::PutJob(job_with_comment(id)))
            .collect();
        store.commit(&batch)?;
        assert!(
            store.map_size() >= 1 << 20,
            "the map should have grown past 1 MiB, is {}",
            store.map_size()
        );
        assert_eq!(store.summaries(0, 1000)?.len(), 600);
        assert_clean(&store)?;
    }
    // Reopened with the same tiny initial size, everything is still there.
    let store = LmdbStore::open_with(dir.path(), &LmdbOptions::new().initial_map_size(initial))?;
    assert_eq!(store.summaries(0, 1000)?.len(), 600);
    let last = store.job(ids.end - 1)?.ok_or("last job missing")?;
    assert_eq!(last.spec.comment, comment);
    Ok(())
}

#[test]
fn reserved_ids_are_monotonic_across_reopen() -> TestResult {
    let dir = tmp();
    {
        let store = LmdbStore::open(dir.path())?;
        assert_eq!(store.reserve_ids(1)?, 0);
        assert_eq!(store.reserve_ids(3)?, 1);
        assert_eq!(store.reserve_ids(0)?, 4);
        assert_eq!(store.reserve_ids(1)?, 4);
    }
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.reserve_ids(2)?, 5);
    assert!(matches!(
        store.reserve_ids(u64::MAX),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.reserve_ids(1)?, 7);
    Ok(())
}

#[test]
fn handles_in_one_process_share_the_environment() -> TestResult {
    let dir = tmp();
    let one = LmdbStore::open(dir.path())?;
    let two = LmdbStore::open(dir.path())?;
    let job = put(&one, &new_job(&one, "shared")?)?;
    assert_eq!(two.job(job.id)?, Some(job));
    assert_eq!(two.reserve_ids(1)?, 1);
    let described = two.describe()?;
    assert_eq!(described.name, "lmdb");
    assert_eq!(described.format_version, 3);
    assert_eq!(described.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(Path::new(&described.location), dir.path().canonicalize()?);
    Ok(())
}

#[test]
fn a_store_of_a_newer_format_is_refused() -> TestResult {
    let dir = tmp();
    {
        let store = LmdbStore::open(dir.path())?;
        store.raw_put("meta", b"format_version", &4u32.to_be_bytes())?;
    }
    match LmdbStore::open(dir.path()) {
        Err(StoreError::Unsupported(message)) => {
            assert!(message.contains("format version 4"), "{message}");
            assert!(message.contains("up to 3"), "{message}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    Ok(())
}

const CHILD_DIR_VAR: &str = "GANGA_STORE_LMDB_TEST_CHILD_DIR";

/// Run by `another_process_reads_while_a_write_is_open` in a child process: lists the
/// store in `$GANGA_STORE_LMDB_TEST_CHILD_DIR`.
#[test]
#[ignore = "run as a child process by another_process_reads_while_a_write_is_open"]
fn child_lists_jobs() -> TestResult {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return Ok(());
    };
    let store = LmdbStore::open(Path::new(&dir))?;
    for entry in store.summaries(0, 100)? {
        match entry {
            SummaryEntry::Readable(s) => {
                let job = store.job(s.id)?.ok_or("a listed job is missing")?;
                println!(
                    "CHILD job {} {} {} rev {}",
                    s.id, s.name, s.status, job.revision
                );
            }
            SummaryEntry::Unreadable { id, error } => println!("CHILD unreadable {id} {error}"),
        }
    }
    for a in store.active()? {
        println!("CHILD active {} {}", a.id, a.status);
    }
    println!("CHILD done");
    Ok(())
}

/// Runs the ignored test `name` of this binary in a child process on the store in `dir`
/// and returns the lines it printed that start with `CHILD `.
fn run_child(name: &str, dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // The child must not wait for this process's write transaction; if it does, it
    // would wait forever, so give up after a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err("the child process blocked while a write transaction was open".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .ok_or("no child stdout")?
        .read_to_string(&mut out)?;
    if !status.success() {
        return Err(format!("child failed: {status}\n{out}").into());
    }
    Ok(out
        .lines()
        .filter(|l| l.starts_with("CHILD "))
        .map(str::to_owned)
        .collect())
}

#[test]
fn another_process_reads_while_a_write_is_open() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let job = put(
        &store,
        &with_status(&new_job(&store, "committed")?, Status::Running, at(1)),
    )?;
    let fresh = new_job(&store, "fresh")?;

    let mut changed = with_status(&job, Status::Completed, at(2));
    Arc::make_mut(&mut changed.spec).name = "uncommitted".to_owned();
    let lines = store.with_uncommitted(
        &[Change::PutJob(changed), Change::PutJob(fresh.clone())],
        || run_child("child_lists_jobs", dir.path()),
    )??;
    assert_eq!(
        lines,
        vec![
            format!("CHILD job {} committed running rev 1", job.id),
            format!("CHILD active {} running", job.id),
            "CHILD done".to_owned(),
        ]
    );
    // The aborted transaction left nothing behind here either.
    assert_eq!(store.job(job.id)?, Some(job.clone()));
    assert_eq!(store.job(fresh.id)?, None);

    // And once committed, the child sees the new state.
    let mut changed = with_status(&job, Status::Completed, at(2));
    Arc::make_mut(&mut changed.spec).name = "now-committed".to_owned();
    put(&store, &changed)?;
    let lines = run_child("child_lists_jobs", dir.path())?;
    assert_eq!(
        lines,
        vec![
            format!("CHILD job {} now-committed completed rev 2", job.id),
            "CHILD done".to_owned(),
        ]
    );
    Ok(())
}

/// Run by `a_map_grown_by_another_process_is_adopted` in a child process: fills the
/// store in `$GANGA_STORE_LMDB_TEST_CHILD_DIR` far beyond its initial map.
#[test]
#[ignore = "run as a child process by a_map_grown_by_another_process_is_adopted"]
fn child_fills_store() -> TestResult {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return Ok(());
    };
    let store = LmdbStore::open_with(
        Path::new(&dir),
        &LmdbOptions::new().initial_map_size(64 << 10),
    )?;
    let first = store.reserve_ids(600)?;
    let comment = "y".repeat(2000);
    for batch in (first..first + 600).collect::<Vec<_>>().chunks(50) {
        let changes: Vec<Change> = batch
            .iter()
            .map(|&id| {
                let mut job = Job::new(id, spec("filler", "local"), at(0));
                Arc::make_mut(&mut job.spec).comment = comment.clone();
                Change::PutJob(job)
            })
            .collect();
        store.commit(&changes)?;
    }
    println!("CHILD filled {} bytes", store.map_size());
    Ok(())
}

#[test]
fn a_map_grown_by_another_process_is_adopted() -> TestResult {
    let dir = tmp();
    let initial = 64 << 10;
    let store = LmdbStore::open_with(dir.path(), &LmdbOptions::new().initial_map_size(initial))?;
    let mine = put(&store, &new_job(&store, "mine")?)?;
    assert_eq!(store.summaries(0, 10)?.len(), 1);
    assert_eq!(store.map_size(), initial);

    let lines = run_child("child_fills_store", dir.path())?;
    assert_eq!(lines.len(), 1, "{lines:?}");

    // The data now lies beyond this process's map: reading adopts the larger size.
    assert_eq!(store.summaries(0, 1000)?.len(), 601);
    assert!(store.map_size() > initial, "map is {}", store.map_size());
    let last = store.job(600)?.ok_or("the child's last job is missing")?;
    assert_eq!(last.spec.name, "filler");
    let mine = put(&store, &with_status(&mine, Status::Submitting, at(1)))?;
    assert_eq!(store.job(mine.id)?, Some(mine));
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn the_plugin_opens_the_configured_directory() -> TestResult {
    let home = tmp();
    let context = |config: Options| PluginContext {
        home_id: String::new(),
        home: home.path().to_owned(),
        config,
    };
    let default = LmdbStore::create(context(Options::new()))?;
    assert_eq!(default.dir(), home.path().canonicalize()?.join("store"));
    let configured = LmdbStore::create(context(
        [("path".to_owned(), Value::from("elsewhere/jobs"))]
            .into_iter()
            .collect(),
    ))?;
    assert_eq!(
        configured.dir(),
        home.path().canonicalize()?.join("elsewhere/jobs")
    );
    let wrong = LmdbStore::create(context(
        [("path".to_owned(), Value::Integer(3))]
            .into_iter()
            .collect(),
    ));
    assert!(wrong.is_err_and(|e| e.contains("must be a string")));
    Ok(())
}

#[test]
fn dump_of_a_small_workload() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let first = store.reserve_ids(3)?;

    let mut split = Job::new(first, spec("split", "local"), at(0));
    Arc::make_mut(&mut split.spec).splitter = Some(Splitter::Args {
        args: vec![vec!["1".to_owned()], vec!["2".to_owned()]].into(),
        append: false,
    });
    Arc::make_mut(&mut split.spec).output_files = vec!["out.txt".to_owned()];
    split = with_status(&split, Status::Running, at(10));
    split.run.submit_count = 1;
    split.subjobs = [Status::Running, Status::Completed].into_iter().collect();
    let mut sub0 = Subjob::new(0, vec![Override::Args(vec!["1".to_owned()])], at(0));
    sub0.run.status = Status::Running;
    sub0.run.times.set(Status::Running, at(11));
    sub0.run.backend.id = Some("4242".to_owned());
    // Its arguments differ from its split item (["2"]): spelled out in its record.
    let mut sub1 = Subjob::new(
        1,
        vec![Override::Args(vec!["2".to_owned(), "--again".to_owned()])],
        at(0),
    );
    sub1.run.status = Status::Completed;
    sub1.run.times.set(Status::Completed, at(12));
    sub1.run.backend.exit_code = Some(0);
    sub1.run.outputs = vec!["out.txt".to_owned()];

    let mut plain = Job::new(first + 1, spec("plain", "slurm"), at(1));
    Arc::make_mut(&mut plain.spec).comment = "a comment".to_owned();
    Arc::make_mut(&mut plain.spec).backend.options = [("queue".to_owned(), Value::from("short"))]
        .into_iter()
        .collect();
    plain = with_status(&plain, Status::Failed, at(20));
    plain
        .metadata
        .insert("ganga.uuid".to_owned(), "0b4e".to_owned());
    plain.run.backend = BackendInfo {
        id: Some("99".to_owned()),
        native_state: Some("FAILED".to_owned()),
        exit_code: Some(3),
        reason: Some("exit code 3".to_owned()),
        actual_ce: Some("node1".to_owned()),
    };
    let gone = Job::new(first + 2, spec("gone", "local"), at(2));

    store.commit(&[
        Change::PutJob(split.clone()),
        Change::PutSubjobs {
            job: split.id,
            subjobs: vec![sub0, sub1],
        },
        Change::PutJob(plain),
        Change::PutJob(gone.clone()),
    ])?;
    store.commit(&[Change::RemoveJob {
        job: gone.id,
        revision: 1,
    }])?;
    let split = put(&store, &{
        let mut s = split.clone();
        s.revision = 1;
        s
    })?;
    assert_eq!(split.revision, 2);
    assert_clean(&store)?;
    insta::assert_snapshot!(store.dump()?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Format version 2: subjobs against their job's dictionary, compactness, the upgrade from
// format 1.
// ---------------------------------------------------------------------------------------

/// The `subjobs` key of a group of subjobs.
fn group_key(job: JobId, group: u32) -> Vec<u8> {
    let mut key = job.to_be_bytes().to_vec();
    key.extend_from_slice(&group.to_be_bytes());
    key
}

/// A group's value: a CBOR array of records (byte strings) and nulls.
fn group_value(slots: &[Option<Vec<u8>>]) -> Vec<u8> {
    let value = ciborium::Value::Array(
        slots
            .iter()
            .map(|s| {
                s.clone()
                    .map_or(ciborium::Value::Null, ciborium::Value::Bytes)
            })
            .collect(),
    );
    let mut bytes = Vec::new();
    ciborium::into_writer(&value, &mut bytes).expect("writing to a Vec never fails");
    bytes
}

/// The records of a stored group, by position; empty if there is no such group.
fn stored_group(
    store: &LmdbStore,
    job: JobId,
    group: u32,
) -> Result<Vec<Option<Vec<u8>>>, Box<dyn std::error::Error>> {
    let Some(bytes) = store.raw_get("subjobs", &group_key(job, group))? else {
        return Ok(Vec::new());
    };
    match ciborium::from_reader::<ciborium::Value, _>(&bytes[..])? {
        ciborium::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                ciborium::Value::Null => Ok(None),
                ciborium::Value::Bytes(b) => Ok(Some(b)),
                other => Err(format!("not a record: {other:?}").into()),
            })
            .collect(),
        other => Err(format!("not a group: {other:?}").into()),
    }
}

/// The stored record of a subjob, taken out of its group.
fn stored_record(
    store: &LmdbStore,
    job: JobId,
    index: u32,
) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error>> {
    let slots = stored_group(store, job, index / PER_GROUP)?;
    Ok(slots.get((index % PER_GROUP) as usize).cloned().flatten())
}

/// Replaces the stored record of a subjob in its group, bypassing every check.
fn raw_put_record(store: &LmdbStore, job: JobId, index: u32, record: &[u8]) -> TestResult {
    let mut slots = stored_group(store, job, index / PER_GROUP)?;
    let at = (index % PER_GROUP) as usize;
    slots.resize(slots.len().max(at + 1), None);
    slots[at] = Some(record.to_vec());
    store.raw_put(
        "subjobs",
        &group_key(job, index / PER_GROUP),
        &group_value(&slots),
    )?;
    Ok(())
}

/// Whether a stored record leaves out its overrides, taking its master's split item: it
/// then does not decode without one.
fn takes_split_item(record: &[u8], dict: &Dictionary) -> bool {
    ganga_records::decode_subjob(0, record, dict, None)
        .is_err_and(|e| e.to_string().contains("master's splitter"))
}

/// The dictionary stored for `job`.
fn stored_dictionary(
    store: &LmdbStore,
    job: JobId,
) -> Result<Dictionary, Box<dyn std::error::Error>> {
    let bytes = store
        .raw_get("dicts", &job.to_be_bytes())?
        .ok_or_else(|| format!("job {job} has no dictionary"))?;
    Ok(Dictionary::decode(&bytes)?)
}

/// A small deterministic generator (splitmix64), for realistic spreads of times and ids.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }

    fn millis(&mut self, n: u64) -> i64 {
        i64::try_from(self.below(n)).unwrap_or(0)
    }
}

/// Subjob `k` of a master created at `created`, run to `completed` on a batch farm: an
/// ArgSplitter override, six status times (submitted 40 ms apart, running within 10
/// minutes, ending 5 minutes to an hour later), a backend id of up to 7 digits, exit code,
/// native state, host, outputs.
fn completed_subjob(k: u32, created: Timestamp, rng: &mut Rng) -> Subjob {
    let t = created.as_millis();
    let mut sj = Subjob::new(
        k,
        vec![Override::AppendArgs(vec![format!("arg{k}")])],
        created,
    );
    let submitted = t + 2_000 + i64::from(k) * 40;
    let running = submitted + rng.millis(600_000);
    let completing = running + 300_000 + rng.millis(3_300_000);
    for (status, at) in [
        (Status::Submitting, t + 2_000),
        (Status::Submitted, submitted),
        (Status::Running, running),
        (Status::Completing, completing),
        (Status::Completed, completing + 1_000 + rng.millis(4_000)),
    ] {
        sj.run.times.set(status, Timestamp(at));
    }
    sj.run.status = Status::Completed;
    sj.run.submit_count = 1;
    sj.run.backend = BackendInfo {
        id: Some((10_000 + rng.below(4_000_000)).to_string()),
        native_state: Some("exited 0".to_owned()),
        exit_code: Some(0),
        reason: None,
        actual_ce: Some(format!("wn{:02}.farm.example.org", rng.below(16))),
    };
    sj.run.outputs = vec!["stdout".to_owned()];
    sj
}

/// A master split into `n` completed subjobs, as `completed_subjob` makes them.
fn completed_split_job(id: JobId, n: u32, created: Timestamp, rng: &mut Rng) -> (Job, Vec<Subjob>) {
    split_job_of(Workload::Farm, id, n, created, rng)
}

/// The ArgSplitter items of a measured workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `application.args += ["arg<k>"]`, as `completed_subjob` makes them.
    Farm,
    /// `application.args = ["medium", "sub", "<k>", "r<random up to 1e6>"]`, as Ganga's
    /// bulk fixture (`make_repo_bulk.py`, and `crates/ganga-bench`) splits its jobs.
    Bulk,
}

/// A master split into `n` completed subjobs whose ArgSplitter items are the workload's.
fn split_job_of(
    workload: Workload,
    id: JobId,
    n: u32,
    created: Timestamp,
    rng: &mut Rng,
) -> (Job, Vec<Subjob>) {
    let mut master = Job::new(id, spec(&format!("split {id}"), "local"), created);
    let args: Vec<Vec<String>> = match workload {
        Workload::Farm => (0..n).map(|k| vec![format!("arg{k}")]).collect(),
        Workload::Bulk => (0..n)
            .map(|k| {
                vec![
                    "medium".to_owned(),
                    "sub".to_owned(),
                    k.to_string(),
                    format!("r{}", rng.below(1_000_001)),
                ]
            })
            .collect(),
    };
    let append = workload == Workload::Farm;
    let subjobs: Vec<Subjob> = (0..n)
        .map(|k| {
            let mut sj = completed_subjob(k, created, rng);
            let item = args[k as usize].clone();
            sj.overrides = vec![if append {
                Override::AppendArgs(item)
            } else {
                Override::Args(item)
            }];
            sj
        })
        .collect();
    Arc::make_mut(&mut master.spec).splitter = Some(Splitter::Args {
        args: args.into(),
        append,
    });
    Arc::make_mut(&mut master.spec).output_files = vec!["stdout".to_owned()];
    let ended = subjobs
        .iter()
        .filter_map(|s| s.run.times.latest())
        .max()
        .unwrap_or(created);
    master = with_status(&master, Status::Completed, ended);
    master.run.submit_count = 1;
    master.subjobs.add(Status::Completed, n);
    (master, subjobs)
}

/// A plain job run to the end, as most of a user's jobs are.
fn completed_plain_job(id: JobId, created: Timestamp) -> Job {
    let mut job = Job::new(id, spec(&format!("plain {id}"), "local"), created);
    Arc::make_mut(&mut job.spec).comment = format!("plain job {id}");
    Arc::make_mut(&mut job.spec).output_files = vec!["out.txt".to_owned()];
    let t = created.as_millis();
    for (status, d) in [
        (Status::Submitting, 2_000),
        (Status::Submitted, 2_100),
        (Status::Running, 5_000),
        (Status::Completing, 9_000),
        (Status::Completed, 9_500),
    ] {
        job = with_status(&job, status, Timestamp(t + d));
    }
    job.run.submit_count = 1;
    job.run.backend = BackendInfo {
        id: Some("123456".to_owned()),
        native_state: Some("exited 0".to_owned()),
        exit_code: Some(0),
        reason: None,
        actual_ce: Some("wn03.farm.example.org".to_owned()),
    };
    job.run.outputs = vec!["out.txt".to_owned()];
    job
}

/// What a store takes per subjob, in bytes: see [`bytes_per_subjob`].
#[derive(Debug)]
struct Measured {
    /// The subjob records alone.
    record: f64,
    /// The values of table `subjobs`: the records and their groups' framing.
    value: f64,
    /// The pages of table `subjobs`.
    table: f64,
    /// The pages table `subjobs` would take with every leaf filled in key order as far as
    /// whole entries go (what appending does), and its branch pages.
    packed: f64,
    /// The pages of tables `jobs`, `specs` and `splitters`: the masters and the plain
    /// jobs.
    jobs: f64,
    /// The pages of tables `summaries` and `dicts`.
    others: f64,
    /// The data file.
    file: f64,
}

/// What a store of `masters` split jobs of `per` completed subjobs each (ArgSplitter
/// items as `workload` makes them) and ten plain jobs per master takes, per subjob. Each
/// master goes in with its subjobs in one commit, as `ganga submit` puts a new job.
fn bytes_per_subjob(
    workload: Workload,
    masters: u64,
    per: u32,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let plain_per_master = 10;
    let first = store.reserve_ids(masters * (1 + plain_per_master))?;
    let mut rng = Rng(7);
    let page = 4096u64;
    // What LMDB needs for each entry of table subjobs in a leaf page: an 8-byte node
    // header, the 12-byte key and the value, rounded up to even, and a 2-byte slot; a
    // value of more than 2,018 bytes goes to overflow pages and leaves 8 bytes in the leaf.
    // Leaves are filled in key order as far as whole nodes go.
    let (mut records, mut values, mut leaves, mut overflow, mut used) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for m in 0..masters {
        let id = first + m * (1 + plain_per_master);
        let created = Timestamp(T0 + i64::try_from(id)? * 37_000);
        let (master, subjobs) = split_job_of(workload, id, per, created, &mut rng);
        store.commit(&[
            Change::PutJob(master),
            Change::PutSubjobs { job: id, subjobs },
        ])?;
        let plain: Vec<Change> = (1..=plain_per_master)
            .map(|p| Change::PutJob(completed_plain_job(id + p, created)))
            .collect();
        store.commit(&plain)?;
        for (_, record) in store.subjob_batch(id, 0..per)?.records() {
            records += record.len() as u64;
        }
        for g in 0..per.div_ceil(PER_GROUP) {
            let value = store
                .raw_get("subjobs", &group_key(id, g))?
                .ok_or("a group is missing")?
                .len() as u64;
            values += value;
            let node = if 8 + 12 + value > 2038 {
                overflow += (value + 16).div_ceil(page);
                ((8 + 12 + 8 + 1) & !1) + 2
            } else {
                ((8 + 12 + value + 1) & !1) + 2
            };
            if leaves == 0 || used + node > page - 16 {
                leaves += 1;
                used = 0;
            }
            used += node;
        }
    }
    // Reading every subjob back, in pages of 1,024 as the cache does: the stored records
    // as batches, then decoded.
    let started = Instant::now();
    let mut read = 0;
    for m in 0..masters {
        let id = first + m * (1 + plain_per_master);
        for p in (0..per).step_by(1024) {
            read += store.subjob_batch(id, p..p.saturating_add(1024))?.len();
        }
    }
    let batches = started.elapsed();
    let started = Instant::now();
    let mut decoded = 0;
    for m in 0..masters {
        let id = first + m * (1 + plain_per_master);
        for p in (0..per).step_by(1024) {
            decoded += store.subjobs(id, p..p.saturating_add(1024))?.len();
        }
    }
    let decoding = started.elapsed();
    let n = masters * u64::from(per);
    assert_eq!((read, decoded), (n as usize, n as usize));
    let space = store.space()?;
    assert_eq!(
        u64::from(space.page_size),
        page,
        "measured with 4 KiB pages"
    );
    let table = |name| space.table(name).ok_or(format!("no table {name}"));
    let subjobs = table("subjobs")?;
    assert_eq!(
        subjobs.entries,
        masters * u64::from(per.div_ceil(PER_GROUP))
    );
    let per_subjob = |bytes: u64| bytes as f64 / n as f64;
    let measured = Measured {
        record: per_subjob(records),
        value: per_subjob(values),
        table: per_subjob(subjobs.pages() * page),
        packed: per_subjob((leaves + overflow + subjobs.branch_pages) * page),
        jobs: per_subjob(
            (table("jobs")?.pages() + table("specs")?.pages() + table("splitters")?.pages()) * page,
        ),
        others: per_subjob((table("summaries")?.pages() + table("dicts")?.pages()) * page),
        file: per_subjob(space.file_bytes),
    };
    eprintln!(
        "{workload:?}, {masters} x {per} subjobs + {} plain jobs, {PER_GROUP} subjobs a \
         group, bytes a subjob: record {:.1}, in its group {:.1}, table subjobs {:.1} \
         ({} leaf pages, {:.1} subjobs a leaf; packed {:.1}), tables jobs, specs and \
         splitters {:.1}, summaries \
         and dicts {:.1}, data file {:.1}; read every subjob: as batches {batches:?}, \
         decoded {decoding:?}; {space:#?}",
        masters * plain_per_master,
        measured.record,
        measured.value,
        measured.table,
        subjobs.leaf_pages,
        n as f64 / subjobs.leaf_pages as f64,
        measured.packed,
        measured.jobs,
        measured.others,
        measured.file,
    );
    assert_clean(&store)?;
    Ok(measured)
}

/// Guards the size of the format: fails if records or LMDB's use of pages grow. Measured
/// (4 KiB pages) at 20 x 1,000: table subjobs 43.6 bytes a subjob with either workload's
/// items (records of 36.7), the data file 61.8 (farm) and 70.0 (bulk, whose masters hold
/// 18 bytes a subjob of argument lists). About 6 of those are pages every store has
/// (each of its eight tables has at least a page, and a job's state and spec are in
/// tables of their own), which at the full scale are nothing: there the file takes about
/// 55 and 63 bytes a subjob (`bytes_per_subjob_at_full_scale`, `docs/storage-format.md`).
#[test]
fn a_subjob_takes_few_bytes_on_disk() -> TestResult {
    for (workload, file_at_most) in [(Workload::Farm, 63.0), (Workload::Bulk, 71.0)] {
        let m = bytes_per_subjob(workload, 20, 1_000)?;
        assert!(
            m.record <= 37.5 && m.table <= 45.0,
            "{workload:?}: records of {:.1} bytes, table subjobs {:.1} bytes a subjob",
            m.record,
            m.table
        );
        // Appending fills the leaf pages as far as whole entries go.
        assert!(
            m.table <= m.packed * 1.01,
            "{workload:?}: table subjobs takes {:.1} bytes a subjob, packed leaves would be \
             {:.1}",
            m.table,
            m.packed
        );
        assert!(
            m.file <= file_at_most,
            "{workload:?}: the data file takes {:.1} bytes a subjob (at most \
             {file_at_most}): {m:?}",
            m.file
        );
    }
    Ok(())
}

/// The figure of issue 3: 1,000 masters of 1,000 subjobs and 10,000 plain jobs, with the
/// ArgSplitter items of both workloads. `cargo test -p ganga-store-lmdb --release --test
/// store -- --ignored --nocapture bytes_per_subjob_at_full_scale`
#[test]
#[ignore = "a measurement of a million subjobs; run it by name"]
fn bytes_per_subjob_at_full_scale() -> TestResult {
    for workload in [Workload::Farm, Workload::Bulk] {
        bytes_per_subjob(workload, 1_000, 1_000)?;
    }
    Ok(())
}

/// Subjob `done` as it was at an earlier step of its run: 0 new, 1 submitted, 2 running,
/// 3 (or more) as it ended.
fn subjob_at_step(done: &Subjob, created: Timestamp, step: usize) -> Subjob {
    if step >= 3 {
        return done.clone();
    }
    let mut sj = Subjob::new(done.index, done.overrides.clone(), created);
    if step == 0 {
        return sj;
    }
    let (status, keep) = if step == 1 {
        (
            Status::Submitted,
            &[Status::Submitting, Status::Submitted][..],
        )
    } else {
        (
            Status::Running,
            &[Status::Submitting, Status::Submitted, Status::Running][..],
        )
    };
    for s in keep {
        if let Some(t) = done.run.times.get(*s) {
            sj.run.times.set(*s, t);
        }
    }
    sj.run.status = status;
    sj.run.submit_count = 1;
    sj.run.backend.id = done.run.backend.id.clone();
    if step == 2 {
        sj.run.backend.native_state = Some("running".to_owned());
        sj.run.backend.actual_ce = done.run.backend.actual_ce.clone();
    }
    sj
}

/// What table `subjobs` takes when subjobs are stored `new` and rewritten as they run, as
/// the monitor does (records, so groups, grow in place): 100 masters of 1,000 subjobs,
/// each stored new, then either completed at once or moved through submitted and
/// running first, in commits of 100 subjobs. `cargo test -p ganga-store-lmdb --release
/// --test store -- --ignored --nocapture bytes_per_subjob_grown_in_place`
#[test]
#[ignore = "a measurement; run it by name"]
fn bytes_per_subjob_grown_in_place() -> TestResult {
    let (masters, per) = (100u64, 1_000u32);
    for steps in [&[3usize][..], &[1, 2, 3]] {
        let dir = tmp();
        let store = LmdbStore::open(dir.path())?;
        let first = store.reserve_ids(masters)?;
        let mut rng = Rng(7);
        for id in first..first + masters {
            let created = Timestamp(T0 + i64::try_from(id)? * 37_000);
            let (done, subjobs) = split_job_of(Workload::Bulk, id, per, created, &mut rng);
            let mut master = Job::new(id, JobSpec::clone(&done.spec), created);
            master.subjobs.add(Status::New, per);
            let new: Vec<Subjob> = subjobs
                .iter()
                .map(|s| subjob_at_step(s, created, 0))
                .collect();
            master.revision = store.commit(&[
                Change::PutJob(master.clone()),
                Change::PutSubjobs {
                    job: id,
                    subjobs: new,
                },
            ])?[0]
                .revision;
            let mut previous = Status::New;
            for &step in steps {
                for chunk in subjobs.chunks(100) {
                    let now: Vec<Subjob> = chunk
                        .iter()
                        .map(|s| subjob_at_step(s, created, step))
                        .collect();
                    for sj in &now {
                        master.subjobs.shift(previous, sj.status());
                    }
                    master.revision = store.commit(&[
                        Change::PutJob(master.clone()),
                        Change::PutSubjobs {
                            job: id,
                            subjobs: now,
                        },
                    ])?[0]
                        .revision;
                }
                previous = subjob_at_step(&subjobs[0], created, step).status();
            }
        }
        let space = store.space()?;
        let table = space.table("subjobs").ok_or("no table subjobs")?;
        let n = (masters * u64::from(per)) as f64;
        eprintln!(
            "grown in place through steps {steps:?}, {PER_GROUP} subjobs a group: table \
             subjobs {:.1} B/subjob ({:.1} subjobs a leaf), data file {:.1} B/subjob",
            (table.pages() * u64::from(space.page_size)) as f64 / n,
            n / table.leaf_pages as f64,
            space.file_bytes as f64 / n,
        );
        assert_clean(&store)?;
    }
    Ok(())
}

/// What rewriting subjobs costs with subjobs grouped: 100,000 status changes (100 subjobs
/// of each of 1,000 masters, spread over the whole job, so every group of every job is
/// rewritten), committed 50 masters and their subjobs at a time, as the monitor does:
/// once with the masters put whole, once with their runs updated.
/// `cargo test -p ganga-store-lmdb --release --test store -- --ignored --nocapture
/// rewriting_subjobs_at_full_scale`
#[test]
#[ignore = "a measurement of a million subjobs; run it by name"]
fn rewriting_subjobs_at_full_scale() -> TestResult {
    let (masters, per) = (1_000u64, 1_000u32);
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let first = store.reserve_ids(masters)?;
    let mut rng = Rng(7);
    for id in first..first + masters {
        let created = Timestamp(T0 + i64::try_from(id)? * 37_000);
        let (master, subjobs) = split_job_of(Workload::Bulk, id, per, created, &mut rng);
        store.commit(&[
            Change::PutJob(master),
            Change::PutSubjobs { job: id, subjobs },
        ])?;
    }
    let before = store.space()?;
    let ids: Vec<JobId> = (first..first + masters).collect();
    // Twice: the masters put whole (spec and splitter compared with the stored ones), then
    // only their runs updated (their stored splitters decoded to encode the subjobs).
    for (round, status) in [(0, Status::Failed), (1, Status::Completed)] {
        let (mut committing, mut changed, mut splitter_bytes) = (Duration::ZERO, 0, 0);
        for chunk in ids.chunks(50) {
            let mut changes = Vec::new();
            for &id in chunk {
                let mut master = store.job(id)?.ok_or("no master")?;
                let mut subjobs = Vec::new();
                for k in (0..per).step_by(10) {
                    let mut sj = store.subjobs(id, k..k + 1)?.remove(0);
                    let from = sj.status();
                    sj.run.status = status;
                    sj.run.times.set(status, at(100_000 + round));
                    sj.run.backend.reason = Some("killed by the batch system".to_owned());
                    master.subjobs.shift(from, status);
                    subjobs.push(sj);
                }
                changed += subjobs.len();
                if round == 0 {
                    changes.push(Change::PutJob(master));
                } else {
                    splitter_bytes += store
                        .raw_get("splitters", &id.to_be_bytes())?
                        .map_or(0, |b| b.len());
                    changes.push(Change::PutRun(RunUpdate::of(&master)));
                }
                changes.push(Change::PutSubjobs { job: id, subjobs });
            }
            let started = Instant::now();
            store.commit(&changes)?;
            committing += started.elapsed();
        }
        let how = if round == 0 {
            "job puts"
        } else {
            "run updates"
        };
        eprintln!(
            "{changed} subjobs rewritten ({PER_GROUP} a group), masters as {how}: \
             {committing:?} of commits"
        );
        if round == 1 {
            // What decoding the stored splitters costs of that.
            let started = Instant::now();
            for &id in &ids {
                let bytes = store
                    .raw_get("splitters", &id.to_be_bytes())?
                    .ok_or("no splitter")?;
                ganga_records::decode_splitter(&bytes)?;
            }
            eprintln!(
                "decoding the {masters} splitters ({:.1} KB each): {:?}",
                splitter_bytes as f64 / masters as f64 / 1000.0,
                started.elapsed()
            );
        }
    }
    let after = store.space()?;
    let table = |s: &ganga_store_lmdb::StoreSpace| {
        s.table("subjobs")
            .map_or(0, |t| t.pages() * u64::from(s.page_size)) as f64
            / (masters * u64::from(per)) as f64
    };
    eprintln!(
        "table subjobs {:.1} -> {:.1} B/subjob, data file {:.1} -> {:.1} B/subjob",
        table(&before),
        table(&after),
        before.file_bytes as f64 / (masters * u64::from(per)) as f64,
        after.file_bytes as f64 / (masters * u64::from(per)) as f64,
    );
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_master_changed_after_its_subjobs_were_stored_leaves_them_as_written() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let id = store.reserve_ids(1)?;
    let mut master = Job::new(id, spec("split", "local"), at(0));
    Arc::make_mut(&mut master.spec).splitter = Some(Splitter::Args {
        args: (0..3).map(|k| vec![format!("a{k}")]).collect(),
        append: false,
    });
    master = with_status(&master, Status::Running, at(10));
    master.run.submit_count = 1;
    let subjobs: Vec<Subjob> = (0..3u32)
        .map(|k| {
            let mut sj = Subjob::new(
                k,
                vec![
                    Override::Args(vec![format!("a{k}")]),
                    Override::EnvVar("SEED".to_owned(), k.to_string()),
                    Override::BackendOption("queue".to_owned(), Value::Integer(i64::from(k))),
                ],
                at(0),
            );
            sj.run.status = Status::Running;
            sj.run.times.set(Status::Submitting, at(1));
            sj.run.times.set(Status::Submitted, at(2));
            sj.run.times.set(Status::Running, at(3 + i64::from(k)));
            sj.run.submit_count = 1;
            sj.run.backend.id = Some(format!("{}", 7000 + k));
            sj.run.backend.native_state = Some("R".to_owned());
            sj.run.backend.actual_ce = Some("wn01".to_owned());
            sj
        })
        .collect();
    master.subjobs.add(Status::Running, 3);
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    let base = stored_dictionary(&store, id)?.base();
    assert_eq!(base, at(0), "based at the master's creation");

    // Every field of the master's spec and run state changes, its creation time too.
    let mut changed = master.clone();
    changed.revision = 1;
    Arc::make_mut(&mut changed.spec).name = "renamed".to_owned();
    Arc::make_mut(&mut changed.spec).comment = "changed after the split".to_owned();
    let exe = Arc::make_mut(&mut changed.spec)
        .application
        .executable_mut();
    exe.exe = "/bin/other".to_owned();
    exe.args = vec!["--other".to_owned()];
    exe.env = BTreeMap::from([("SEED".to_owned(), "99".to_owned())]);
    Arc::make_mut(&mut changed.spec).backend.options = [("queue".to_owned(), Value::from("long"))]
        .into_iter()
        .collect();
    Arc::make_mut(&mut changed.spec).splitter = Some(Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.args".to_owned(),
            values: vec![Value::from("x")],
        }],
    });
    changed.run.times = [(Status::New, at(-500)), (Status::Killed, at(900))]
        .into_iter()
        .collect();
    changed.run.status = Status::Killed;
    changed.run.submit_count = 4;
    changed.run.backend.id = Some("master-9".to_owned());
    let changed = put(&store, &changed)?;
    assert_eq!(store.job(id)?, Some(changed.clone()));
    assert_eq!(store.subjobs(id, 0..10)?, subjobs);
    assert_eq!(
        stored_dictionary(&store, id)?.base(),
        base,
        "the base never moves"
    );

    // A subjob rewritten with new strings: the dictionary grows, the others still read.
    let mut failed = subjobs[1].clone();
    failed.run.status = Status::Failed;
    failed.run.times.set(Status::Failed, at(1000));
    failed.run.backend.native_state = Some("exited 7".to_owned());
    failed.run.backend.reason = Some("exit code 7".to_owned());
    failed.run.backend.exit_code = Some(7);
    let before = stored_dictionary(&store, id)?.len();
    let mut master = changed.clone();
    master.subjobs.shift(Status::Running, Status::Failed);
    store.commit(&[
        Change::PutJob(master),
        Change::PutSubjobs {
            job: id,
            subjobs: vec![failed.clone()],
        },
    ])?;
    let dict = stored_dictionary(&store, id)?;
    assert_eq!(dict.base(), base);
    assert_eq!(dict.len(), before + 2, "the new native state and reason");
    let expected = vec![subjobs[0].clone(), failed, subjobs[2].clone()];
    assert_eq!(store.subjobs(id, 0..10)?, expected);
    assert_clean(&store)?;
    drop(store);
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.subjobs(id, 0..10)?, expected);
    Ok(())
}

/// Puts `master` with `splitter` (and `subjobs`, listed before it in the commit), and
/// keeps its revision.
fn resplit(
    store: &LmdbStore,
    master: &mut Job,
    splitter: Option<Splitter>,
    subjobs: Vec<Subjob>,
) -> TestResult {
    Arc::make_mut(&mut master.spec).splitter = splitter;
    let mut changes = Vec::new();
    if !subjobs.is_empty() {
        changes.push(Change::PutSubjobs {
            job: master.id,
            subjobs,
        });
    }
    changes.push(Change::PutJob(master.clone()));
    master.revision = store.commit(&changes)?[0].revision;
    Ok(())
}

/// Which of the first `n` subjobs of `job` have records that take their master's split
/// item.
fn taking_split_items(
    store: &LmdbStore,
    job: JobId,
    n: u32,
) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let dict = stored_dictionary(store, job)?;
    let mut taking = Vec::new();
    for k in 0..n {
        let record = stored_record(store, job, k)?.ok_or(format!("no record {job}.{k}"))?;
        if takes_split_item(&record, &dict) {
            taking.push(k);
        }
    }
    Ok(taking)
}

#[test]
fn a_master_whose_splitter_changes_keeps_its_subjobs_reading_right() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let id = store.reserve_ids(1)?;
    let n = 20u32;
    let words = |prefix: &str, k: u32| vec![prefix.to_owned(), k.to_string()];
    let args = |prefix: &str, range: std::ops::Range<u32>| Splitter::Args {
        args: range.map(|k| words(prefix, k)).collect(),
        append: false,
    };
    let mut master = Job::new(id, spec("split", "local"), at(0));
    Arc::make_mut(&mut master.spec).splitter = Some(args("a", 0..n));
    master = with_status(&master, Status::Running, at(1));
    master.subjobs.add(Status::Running, n);
    let mut subjobs: Vec<Subjob> = (0..n)
        .map(|k| {
            let mut sj = Subjob::new(k, vec![Override::Args(words("a", k))], at(0));
            sj.run.status = Status::Running;
            sj.run.times.set(Status::Running, at(2 + i64::from(k)));
            sj.run.backend.id = Some((100 + k).to_string());
            sj
        })
        .collect();
    // Subjob 3 was given other arguments than its split item: stored in full.
    subjobs[3].overrides = vec![Override::Args(vec!["other".to_owned()])];
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    master.revision = 1;
    let all_but = |skip: &[u32]| (0..n).filter(|k| !skip.contains(k)).collect::<Vec<_>>();
    assert_eq!(taking_split_items(&store, id, n)?, all_but(&[3]));
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);

    // More subjobs to come: the items of the stored ones do not change, nor their records.
    let groups = |store: &LmdbStore| -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        (0..2)
            .map(|g| store.raw_get("subjobs", &group_key(id, g)))
            .collect()
    };
    let before = groups(&store)?;
    resplit(&store, &mut master, Some(args("a", 0..n + 5)), Vec::new())?;
    assert_eq!(groups(&store)?, before, "records rewritten needlessly");
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);

    // The items of subjobs 5–9 change: their records now spell out their overrides.
    let changed = Splitter::Args {
        args: (0..n)
            .map(|k| {
                if (5..10).contains(&k) {
                    words("b", k)
                } else {
                    words("a", k)
                }
            })
            .collect(),
        append: false,
    };
    resplit(&store, &mut master, Some(changed), Vec::new())?;
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);
    assert_eq!(
        taking_split_items(&store, id, n)?,
        all_but(&[3, 5, 6, 7, 8, 9])
    );
    assert_clean(&store)?;

    // Another kind of splitter, which gives subjobs 10–19 the same items and 0–9 others;
    // in the same commit (listed first), subjob 12 changes and subjob 0 is given its new
    // item: both are written against the new splitter.
    let generic = Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.args".to_owned(),
            values: (0..n)
                .map(|k| {
                    let prefix = if k < 10 { "c" } else { "a" };
                    Value::List(words(prefix, k).into_iter().map(Value::from).collect())
                })
                .collect(),
        }],
    };
    subjobs[12].run.status = Status::Completed;
    subjobs[12].run.times.set(Status::Completed, at(100));
    subjobs[0].overrides = vec![Override::Args(words("c", 0))];
    master.subjobs.shift(Status::Running, Status::Completed);
    resplit(
        &store,
        &mut master,
        Some(generic),
        vec![subjobs[12].clone(), subjobs[0].clone()],
    )?;
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);
    let mut taking = vec![0];
    taking.extend(10..n);
    assert_eq!(taking_split_items(&store, id, n)?, taking);
    // As the cache gets them, across the plugin boundary.
    let carried = ganga_records::SubjobBatch::decode(&store.subjob_batch(id, 0..n)?.encode())?;
    assert_eq!(carried.unpack(), Ok(subjobs.clone()));
    assert_clean(&store)?;

    // No splitter any more: every record spells out its overrides.
    resplit(&store, &mut master, None, Vec::new())?;
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);
    assert_eq!(taking_split_items(&store, id, n)?, Vec::<u32>::new());
    assert_clean(&store)?;
    assert!(!store.dump()?.contains("split_item="));
    drop(store);
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.subjobs(id, 0..n)?, subjobs);
    assert_eq!(store.job(id)?, Some(master));
    Ok(())
}

#[test]
fn subjobs_are_stored_in_groups_and_written_into_them_by_splicing() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let id = store.reserve_ids(2)?;
    let (mut master, mut subjobs) = completed_split_job(id, 40, at(0), &mut Rng(5));
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    master.revision = 1;
    let entries = |store: &LmdbStore| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(store.space()?.table("subjobs").ok_or("no table")?.entries)
    };
    assert_eq!(entries(&store)?, u64::from(40u32.div_ceil(PER_GROUP)));
    let groups_before: Vec<_> = (0..3)
        .map(|g| stored_group(&store, id, g))
        .collect::<Result<_, _>>()?;

    // One subjob rewritten: its group is rewritten with the other records as they were;
    // the other groups are not touched.
    let k = PER_GROUP + 1;
    subjobs[k as usize].run.backend.reason = Some("looked at again".to_owned());
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: vec![subjobs[k as usize].clone()],
        },
    ])?;
    master.revision = 2;
    for (g, before) in groups_before.iter().enumerate() {
        let after = stored_group(&store, id, g as u32)?;
        for (slot, (b, a)) in before.iter().zip(&after).enumerate() {
            if g as u32 * PER_GROUP + slot as u32 == k {
                assert_ne!(a, b);
            } else {
                assert_eq!(a, b, "group {g}, record {slot}");
            }
        }
    }
    assert_eq!(store.subjobs(id, 0..40)?, subjobs);

    // Subjobs far apart, out of order, one of them twice (the later put wins): groups
    // with gaps, read in index order.
    let sparse = id + 1;
    let mut other = Job::new(sparse, spec("sparse", "local"), at(0));
    let indices = [u32::MAX, 5, 100, u32::MAX - 1, 0];
    other.subjobs.add(Status::New, indices.len() as u32);
    let mut puts: Vec<Subjob> = indices
        .iter()
        .map(|&i| Subjob::new(i, vec![Override::Name(format!("n{i}"))], at(0)))
        .collect();
    let mut again = puts[1].clone();
    again.overrides = vec![Override::Name("again".to_owned())];
    puts.push(again.clone());
    store.commit(&[
        Change::PutSubjobs {
            job: sparse,
            subjobs: puts.clone(),
        },
        Change::PutJob(other.clone()),
    ])?;
    let mut expected: Vec<Subjob> = puts[..5].to_vec();
    expected[1] = again;
    expected.sort_by_key(|s| s.index);
    assert_eq!(store.subjobs(sparse, 0..u32::MAX)?, expected[..4]);
    assert_eq!(
        store.subjob_batch(sparse, 0..u32::MAX)?.indices(),
        &[0, 5, 100, u32::MAX - 1]
    );
    assert_eq!(
        store.subjobs(sparse, u32::MAX - 1..u32::MAX)?,
        expected[3..4]
    );
    assert_eq!(store.subjobs(sparse, 1..100)?, expected[1..2]);
    assert_eq!(
        stored_group(&store, sparse, 0)?.len(),
        6,
        "trailing gaps left out"
    );
    assert_eq!(
        stored_group(&store, sparse, u32::MAX / PER_GROUP)?.len(),
        PER_GROUP as usize
    );
    assert_eq!(entries(&store)?, 3 + 3);
    assert_clean(&store)?;
    let dump = store.dump()?;
    assert!(
        dump.contains(&format!("[subjobs] {} records in 6 groups", 40 + 5)),
        "{dump}"
    );
    assert!(
        dump.contains(&format!("  {sparse}.4294967295 status=new")),
        "{dump}"
    );

    store.commit(&[Change::RemoveJob {
        job: sparse,
        revision: 1,
    }])?;
    assert_eq!(entries(&store)?, 3);
    assert_eq!(store.subjobs(sparse, 0..u32::MAX)?, Vec::new());
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_corrupt_subjob_record_is_reported_for_that_subjob() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let id = store.reserve_ids(1)?;
    // Three groups: 0–15, 16–31, 32–39.
    let (master, subjobs) = completed_split_job(id, 40, at(0), &mut Rng(1));
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    // Subjob 4: valid CBOR, not a subjob record. Subjob 7: a record that refers to a
    // string its job's dictionary does not have. Both in a group that is itself intact.
    raw_put_record(&store, id, 4, b"\x01")?;
    let mut foreign = Dictionary::new(at(0));
    for i in 0..40 {
        foreign.intern(&format!("s{i}"));
    }
    let mut record = Vec::new();
    ganga_records::encode_subjob(
        &completed_subjob(7, at(0), &mut Rng(2)),
        &mut foreign,
        None,
        &mut record,
    );
    raw_put_record(&store, id, 7, &record)?;
    // The group of subjobs 16–31: cut short, so its records cannot be told apart.
    let group_1 = store
        .raw_get("subjobs", &group_key(id, 1))?
        .ok_or("no group 1")?;
    store.raw_put("subjobs", &group_key(id, 1), &group_1[..group_1.len() / 2])?;

    let corrupt = |range: std::ops::Range<u32>| match store.subjobs(id, range.clone()) {
        Err(StoreError::Corrupt { job, detail }) => Ok((job, detail)),
        other => Err(format!(
            "subjobs {range:?}: expected Corrupt, got {other:?}"
        )),
    };
    let (job, detail) = corrupt(0..10)?;
    assert_eq!(job, JobRef::subjob(id, 4));
    assert!(detail.starts_with("table subjobs:"), "{detail}");
    let (job, detail) = corrupt(5..10)?;
    assert_eq!(job, JobRef::subjob(id, 7));
    assert!(detail.contains("not in the job's dictionary"), "{detail}");
    // The other records of that group read.
    assert_eq!(store.subjobs(id, 0..4)?, subjobs[..4]);
    assert_eq!(store.subjobs(id, 5..7)?, subjobs[5..7]);
    assert_eq!(store.subjobs(id, 8..16)?, subjobs[8..16]);
    // The damaged group: every range reaching into it, naming its first subjob there.
    for (range, first) in [(8..20, 16), (16..32, 16), (20..21, 20), (0..40, 16)] {
        let (job, detail) = corrupt(range)?;
        assert_eq!(job, JobRef::subjob(id, first));
        assert!(
            detail.contains(&format!(
                "the group of subjobs {id}.16–{id}.31 does not decode"
            )),
            "{detail}"
        );
    }
    // The other groups read.
    assert_eq!(store.subjobs(id, 32..100)?, subjobs[32..]);
    let mut stored = master.clone();
    stored.revision = 1;
    assert_eq!(
        store.summaries(0, 10)?,
        vec![SummaryEntry::Readable(JobSummary::of(&stored))]
    );
    assert_eq!(store.job(id)?, Some(stored.clone()));

    let mut problems = store.check()?.problems;
    problems.sort();
    // The job's counters cannot be checked: its subjobs 16–31 cannot be counted.
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!(
            "subjob {id}.16: record unreadable: the group of subjobs {id}.16–{id}.31"
        )),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with(&format!("subjob {id}.4: record unreadable")),
        "{problems:#?}"
    );
    assert!(
        problems[2].starts_with(&format!("subjob {id}.7: record unreadable")),
        "{problems:#?}"
    );
    let dump = store.dump()?;
    assert!(
        dump.contains(&format!("  {id}.16–{id}.31 UNREADABLE (group: ")),
        "{dump}"
    );
    assert!(dump.contains(&format!("  {id}.4 UNREADABLE (")), "{dump}");

    // A subjob of an intact group can be written (over a damaged record too); one of the
    // damaged group cannot, and nothing of that commit is written.
    let mut fixed = subjobs[4].clone();
    fixed.run.backend.reason = Some("rewritten".to_owned());
    let mut master = stored.clone();
    let committed = store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: vec![fixed.clone()],
        },
    ])?;
    master.revision = committed[0].revision;
    assert_eq!(store.subjobs(id, 0..7)?[4], fixed);
    let refused = store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: vec![subjobs[33].clone(), subjobs[20].clone()],
        },
    ]);
    match refused {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::subjob(id, 20));
            assert!(detail.contains("remove the job"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.job(id)?.map(|j| j.revision), Some(master.revision));
    // Removing the job removes the damaged group too.
    store.commit(&[Change::RemoveJob {
        job: id,
        revision: master.revision,
    }])?;
    assert_eq!(store.raw_get("subjobs", &group_key(id, 1))?, None);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn subjob_batches_hand_over_the_stored_records_undecoded() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let id = store.reserve_ids(1)?;
    let (master, subjobs) = completed_split_job(id, 20, at(0), &mut Rng(3));
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    let garbage = b"\xff\xfe not a record";
    raw_put_record(&store, id, 2, garbage)?;

    // The batch is made without decoding: the damaged record is in it as it is stored,
    // and so are the records that leave out their split item, with the items.
    let batch = store.subjob_batch(id, 0..20)?;
    assert_eq!(batch.len(), 20);
    assert_eq!(batch.dictionary(), &stored_dictionary(&store, id)?);
    for (index, record) in batch.records() {
        let stored = stored_record(&store, id, index)?;
        assert_eq!(Some(record.to_vec()), stored, "record {index}");
        assert_eq!(
            takes_split_item(record, batch.dictionary()),
            index != 2,
            "record {index}"
        );
    }
    match batch.unpack() {
        Err((index, _)) => assert_eq!(index, 2),
        Ok(_) => panic!("the damaged record unpacked"),
    }
    // As the protocol carries it, across the plugin boundary.
    let carried = ganga_records::SubjobBatch::decode(&batch.encode())?;
    assert_eq!(carried, batch);
    assert_eq!(carried.get(19), Some(Ok(subjobs[19].clone())));
    assert_eq!(
        store.subjob_batch(id, 3..18)?.unpack(),
        Ok(subjobs[3..18].to_vec())
    );
    assert!(store.subjob_batch(id, 20..90)?.is_empty());
    assert!(store.subjob_batch(id + 1, 0..9)?.is_empty());
    assert!(store.subjob_batch(id, 3..3)?.is_empty());
    // The batch carries the master's splitter as stored, and decodes through it.
    let splitter = store
        .raw_get("splitters", &id.to_be_bytes())?
        .ok_or("no splitter stored")?;
    assert!(carried.encode().ends_with(&splitter));
    // The master's state plays no part: a damaged one leaves the subjobs readable.
    let state = store
        .raw_get("jobs", &id.to_be_bytes())?
        .ok_or("no state")?;
    store.raw_put("jobs", &id.to_be_bytes(), b"\x01")?;
    assert_eq!(store.subjobs(id, 0..2)?, subjobs[..2].to_vec());
    store.raw_put("jobs", &id.to_be_bytes(), &state)?;
    // Without a readable splitter there are no split items: the records that need theirs
    // are reported when decoded, the others read.
    store.raw_put("splitters", &id.to_be_bytes(), b"\x01")?;
    let batch = store.subjob_batch(id, 0..20)?;
    assert_eq!(batch.len(), 20);
    match store.subjobs(id, 5..6) {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::subjob(id, 5));
            assert!(detail.contains("master's splitter"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    Ok(())
}

/// The store written by format-1 code, and what it holds, from `tests/fixtures/format-v1`.
const FORMAT_1_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v1");

#[derive(Debug, serde::Deserialize)]
struct Expected {
    job: Job,
    subjobs: Vec<Subjob>,
}

/// A copy of the format-1 store in a new directory, and the jobs it holds.
fn format_1_store()
-> Result<(tempfile::TempDir, BTreeMap<JobId, Expected>), Box<dyn std::error::Error>> {
    let dir = tmp();
    let fixture = Path::new(FORMAT_1_FIXTURE);
    std::fs::copy(fixture.join("data.mdb"), dir.path().join("data.mdb"))?;
    let expected: BTreeMap<JobId, Expected> =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json"))?)?;
    assert_eq!(expected.len(), 3, "the fixture holds three jobs");
    Ok((dir, expected))
}

#[test]
fn a_format_1_store_is_upgraded_in_place() -> TestResult {
    let (dir, expected) = format_1_store()?;
    let data = dir.path().join("data.mdb");
    let original = std::fs::read(&data)?;
    let dump;
    {
        let store = LmdbStore::open(dir.path())?;
        assert_eq!(
            store.raw_get("meta", b"format_version")?,
            Some(3u32.to_be_bytes().to_vec())
        );
        assert_eq!(store.describe()?.format_version, 3);
        // A copy of the store as it was is kept beside it.
        let kept = dir.path().join("data.mdb.v1-backup");
        assert!(std::fs::metadata(&kept)?.len() > 0, "no copy kept");
        for (&id, e) in &expected {
            assert_eq!(store.job(id)?.as_ref(), Some(&e.job), "job {id}");
            assert_eq!(
                store.subjobs(id, 0..u32::MAX)?,
                e.subjobs,
                "subjobs of {id}"
            );
            // Compact records now, and a dictionary for each job with subjobs, based at
            // its master's creation.
            // Its state, spec and splitter in tables of their own.
            let key = id.to_be_bytes();
            let state = store.raw_get("jobs", &key)?.ok_or("no state")?;
            let spec = store.raw_get("specs", &key)?.ok_or("no spec")?;
            let splitter = store.raw_get("splitters", &key)?;
            assert_eq!(splitter.is_some(), e.job.spec.splitter.is_some());
            let splitter = match splitter {
                Some(bytes) => ganga_records::decode_splitter(&bytes)?,
                None => None,
            };
            assert_eq!(
                ganga_records::job_from_parts(
                    id,
                    ganga_records::decode_state(&state)?,
                    ganga_records::decode_spec(&spec)?,
                    splitter
                ),
                e.job
            );
            if e.subjobs.is_empty() {
                assert_eq!(store.raw_get("dicts", &id.to_be_bytes())?, None);
            } else {
                assert_eq!(
                    Some(stored_dictionary(&store, id)?.base()),
                    e.job.run.times.get(Status::New)
                );
                // Every subjob of the fixture has its split item as its overrides (an
                // ArgSplitter's, a GenericSplitter's): the records leave them out.
                let n = e.subjobs.len() as u32;
                assert_eq!(
                    taking_split_items(&store, id, n)?,
                    (0..n).collect::<Vec<_>>()
                );
            }
        }
        let summaries: Vec<SummaryEntry> = expected
            .values()
            .map(|e| SummaryEntry::Readable(JobSummary::of(&e.job)))
            .collect();
        assert_eq!(store.summaries(0, 100)?, summaries);
        let active: Vec<ActiveJob> = expected
            .values()
            .filter(|e| e.job.status().is_active())
            .map(|e| ActiveJob {
                id: e.job.id,
                backend: e.job.spec.backend.kind.clone(),
                status: e.job.status(),
                revision: e.job.revision,
            })
            .collect();
        assert!(!active.is_empty(), "the fixture has an active job");
        assert_eq!(store.active()?, active);
        assert_clean(&store)?;
        dump = store.dump()?;
    }
    let upgraded = std::fs::read(&data)?;
    assert!(upgraded != original, "the data file was not rewritten");

    // A second open changes nothing, not one byte.
    let store = LmdbStore::open(dir.path())?;
    assert!(std::fs::read(&data)? == upgraded, "the second open wrote");
    assert_eq!(store.dump()?, dump);
    // And the store goes on from where format 1 left it.
    assert_eq!(store.reserve_ids(1)?, 3);
    Ok(())
}

#[test]
fn a_format_1_store_with_damaged_records_upgrades_and_reports_them() -> TestResult {
    let (dir, expected) = format_1_store()?;
    // Damage the job record of job 1 and the record of subjob 0.2, through LMDB itself,
    // as a format-1 store could have been damaged. A CBOR map, as format-1 records are.
    let garbage = b"\xa1\x62id\x63bad";
    {
        // SAFETY: the copy is opened by nothing else, here or in another process.
        let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir.path())? };
        let rtxn = env.read_txn()?;
        let (jobs, subjobs) = env
            .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit((
                    opener.open_database::<heed::types::Bytes, heed::types::Bytes>(
                        rtxn,
                        Some("jobs"),
                    )?,
                    opener.open_database::<heed::types::Bytes, heed::types::Bytes>(
                        rtxn,
                        Some("subjobs"),
                    )?,
                )))
            })?
            .unwrap_commit();
        let (jobs, subjobs) = jobs.zip(subjobs).ok_or("the fixture lacks its tables")?;
        let mut wtxn = env.write_txn()?;
        jobs.put(&mut wtxn, &1u64.to_be_bytes(), garbage)?;
        subjobs.put(&mut wtxn, &format_1_subjob_key(0, 2), garbage)?;
        wtxn.commit()?;
        env.prepare_for_closing().wait();
    }

    // With a map too small for the old and the new records at once: the upgrade grows it.
    let initial = 64 << 10;
    let store = LmdbStore::open_with(dir.path(), &LmdbOptions::new().initial_map_size(initial))?;
    assert!(store.map_size() > initial, "map is {}", store.map_size());
    assert_eq!(
        store.raw_get("meta", b"format_version")?,
        Some(3u32.to_be_bytes().to_vec())
    );
    // Carried over byte for byte, and reported for their jobs alone.
    assert_eq!(
        store.raw_get("jobs", &1u64.to_be_bytes())?,
        Some(garbage.to_vec())
    );
    assert_eq!(stored_record(&store, 0, 2)?, Some(garbage.to_vec()));
    match store.job(1) {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::job(1));
            assert!(detail.starts_with("table jobs:"), "{detail}");
        }
        other => panic!("expected job 1 Corrupt, got {other:?}"),
    }
    for id in [0, 2] {
        assert_eq!(store.job(id)?.as_ref(), Some(&expected[&id].job));
    }
    // The subjobs of the unreadable master are read against a dictionary based at their
    // earliest time, and spell out their overrides (its splitter is unknown).
    assert_eq!(store.subjobs(1, 0..10)?, expected[&1].subjobs);
    assert_eq!(taking_split_items(&store, 1, 2)?, Vec::<u32>::new());
    assert_eq!(taking_split_items(&store, 0, 2)?, vec![0, 1]);
    assert_eq!(
        Some(stored_dictionary(&store, 1)?.base()),
        expected[&1]
            .subjobs
            .iter()
            .filter_map(|s| s.run.times.iter().map(|(_, t)| t).min())
            .min()
    );
    match store.subjobs(0, 0..10) {
        Err(StoreError::Corrupt { job, .. }) => assert_eq!(job, JobRef::subjob(0, 2)),
        other => panic!("expected subjob 0.2 Corrupt, got {other:?}"),
    }
    assert_eq!(store.subjobs(0, 0..2)?, expected[&0].subjobs[..2]);
    assert_eq!(store.subjobs(0, 3..10)?, expected[&0].subjobs[3..]);
    // The summaries were not damaged: all three list.
    let summaries: Vec<SummaryEntry> = expected
        .values()
        .map(|e| SummaryEntry::Readable(JobSummary::of(&e.job)))
        .collect();
    assert_eq!(store.summaries(0, 100)?, summaries);

    let mut problems = store.check()?.problems;
    problems.sort();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    let expected_starts = [
        "active entry local 1: job 1 is unreadable",
        "job 0: subjob counters say",
        "job 1: record unreadable",
        "subjob 0.2: record unreadable",
    ];
    for (problem, start) in problems.iter().zip(expected_starts) {
        assert!(problem.starts_with(start), "{problems:#?}");
    }
    Ok(())
}

/// How long the upgrade of a large format-1 store takes and what it leaves: 1,000 masters
/// of 1,000 subjobs and 10,000 plain jobs, written in format 1 (CBOR of the serde types,
/// the same keys) with LMDB directly. `cargo test -p ganga-store-lmdb --release --test
/// store -- --ignored --nocapture format_1_upgrade_at_full_scale`
#[test]
#[ignore = "a measurement of a million subjobs; run it by name"]
fn format_1_upgrade_at_full_scale() -> TestResult {
    use heed::types::Bytes;
    let (masters, per, plain_per_master) = (1_000u64, 1_000u32, 10u64);
    let dir = tmp();
    {
        // SAFETY: the directory is new and opened by nothing else.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .max_dbs(16)
                .map_size(4 << 30)
                .open(dir.path())?
        };
        let wtxn = env.write_txn()?;
        let tables = env
            .create_databases_and_commit(wtxn, |opener, txn| -> heed::Result<_> {
                let mut create = |name| opener.create_database::<Bytes, Bytes>(txn, Some(name));
                Ok(heed::CommitOrAbort::<_, ()>::Commit([
                    create("meta")?,
                    create("jobs")?,
                    create("subjobs")?,
                    create("summaries")?,
                    create("active")?,
                ]))
            })?
            .unwrap_commit();
        let [meta, jobs, subjobs, summaries, _] = tables;
        let mut txn = env.write_txn()?;
        meta.put(&mut txn, b"format_version", &1u32.to_be_bytes())?;
        let next = masters * (1 + plain_per_master);
        meta.put(&mut txn, b"next_job_id", &next.to_be_bytes())?;
        let mut rng = Rng(7);
        for m in 0..masters {
            let id = m * (1 + plain_per_master);
            let created = Timestamp(T0 + i64::try_from(id)? * 37_000);
            let (mut master, split) = completed_split_job(id, per, created, &mut rng);
            master.revision = 1;
            let mut all = vec![master];
            all.extend((1..=plain_per_master).map(|p| {
                let mut job = completed_plain_job(id + p, created);
                job.revision = 1;
                job
            }));
            for job in &all {
                jobs.put(&mut txn, &job.id.to_be_bytes(), &format_1_record(job)?)?;
                let summary = format_1_record(&JobSummary::of(job))?;
                summaries.put(&mut txn, &job.id.to_be_bytes(), &summary)?;
            }
            for subjob in &split {
                let record = format_1_record(subjob)?;
                subjobs.put(&mut txn, &format_1_subjob_key(id, subjob.index), &record)?;
            }
        }
        txn.commit()?;
        env.prepare_for_closing().wait();
    }
    let data = dir.path().join("data.mdb");
    let before = std::fs::metadata(&data)?.len();
    let started = Instant::now();
    let store = LmdbStore::open(dir.path())?;
    let took = started.elapsed();
    let space = store.space()?;
    let n = (masters * u64::from(per)) as f64;
    let table = space.table("subjobs").ok_or("no table subjobs")?;
    eprintln!(
        "format 1: data file {:.1} B/subjob; upgraded in {took:?}; format 2: tables {:.1} \
         B/subjob, {:.1} subjobs a leaf, data file {:.1} B/subjob ({} pages free)",
        before as f64 / n,
        space.table_bytes() as f64 / n,
        n / table.leaf_pages as f64,
        space.file_bytes as f64 / n,
        space.used_pages - space.tables.iter().map(|t| t.pages()).sum::<u64>()
    );
    assert_eq!(table.entries, masters * u64::from(per.div_ceil(PER_GROUP)));
    assert_clean(&store)?;
    Ok(())
}

/// The `subjobs` key of a subjob in format 1 (one entry per subjob).
fn format_1_subjob_key(job: JobId, index: u32) -> Vec<u8> {
    let mut key = job.to_be_bytes().to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// CBOR of the serde types, as format 1 stored them.
fn format_1_record<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes)?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// A job in three parts: run updates, writes of the parts that changed, damage to a part,
// and the pages of the map let go while reading.
// ---------------------------------------------------------------------------------------

/// A split master of three subjobs (overrides equal to their ArgSplitter items) with
/// metadata, stored; and its subjobs.
fn stored_master(store: &LmdbStore) -> Result<(Job, Vec<Subjob>), Box<dyn std::error::Error>> {
    let id = store.reserve_ids(1)?;
    let mut master = Job::new(id, spec("master", "slurm"), at(0));
    Arc::make_mut(&mut master.spec).splitter = Some(Splitter::Args {
        args: (0..3).map(|k| vec![format!("arg{k}")]).collect(),
        append: false,
    });
    master
        .metadata
        .insert("ganga.uuid".to_owned(), "7f3a".to_owned());
    master.subjobs = [Status::New; 3].into_iter().collect();
    let subjobs: Vec<Subjob> = (0..3)
        .map(|k| Subjob::new(k, vec![Override::Args(vec![format!("arg{k}")])], at(0)))
        .collect();
    store.commit(&[
        Change::PutJob(master.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    master.revision = 1;
    Ok((master, subjobs))
}

#[test]
fn a_run_update_writes_the_state_summary_and_active_entry_only() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (master, mut subjobs) = stored_master(&store)?;
    let id = master.id;
    let key = id.to_be_bytes();
    let spec_bytes = store.raw_get("specs", &key)?;
    let splitter_bytes = store.raw_get("splitters", &key)?;
    assert!(spec_bytes.is_some() && splitter_bytes.is_some());
    let before = store.record_writes();

    // One subjob runs: its master's run and counters change, with the subjob, in one
    // commit that does not carry the master's spec.
    let mut expected = with_status(&master, Status::Running, at(5));
    expected.run.submit_count = 1;
    expected.run.backend.id = Some("77".to_owned());
    expected.subjobs.shift(Status::New, Status::Running);
    subjobs[1].run.status = Status::Running;
    subjobs[1].run.times.set(Status::Running, at(5));
    let committed = store.commit(&[
        Change::PutSubjobs {
            job: id,
            subjobs: vec![subjobs[1].clone()],
        },
        Change::PutRun(RunUpdate::of(&expected)),
    ])?;
    assert_eq!(
        committed,
        vec![Committed {
            job: id,
            revision: 2
        }]
    );
    expected.revision = 2;

    // The spec, the splitter and the metadata are as they were, not written again.
    let after = store.record_writes();
    assert_eq!(after.states, before.states + 1);
    assert_eq!(
        (after.specs, after.splitters),
        (before.specs, before.splitters)
    );
    assert_eq!(store.raw_get("specs", &key)?, spec_bytes);
    assert_eq!(store.raw_get("splitters", &key)?, splitter_bytes);
    assert_eq!(store.job(id)?, Some(expected.clone()));
    // The summary and the active index follow.
    assert_eq!(
        store.summaries(id, 1)?,
        vec![SummaryEntry::Readable(JobSummary::of(&expected))]
    );
    assert_eq!(
        store.active()?,
        vec![ActiveJob {
            id,
            backend: "slurm".to_owned(),
            status: Status::Running,
            revision: 2,
        }]
    );
    // The subjob was written against the stored splitter: its record leaves out its
    // arguments, and reads back with them.
    assert_eq!(store.subjobs(id, 0..3)?, subjobs);
    assert_eq!(taking_split_items(&store, id, 3)?, vec![0, 1, 2]);
    assert_clean(&store)?;

    // A run update at a revision that is not the stored one is refused, and so is one of a
    // job that does not exist (reserved, never put): nothing is written.
    let stale = RunUpdate::of(&with_status(&master, Status::Killed, at(6)));
    assert_eq!(
        store.commit(&[Change::PutRun(stale)]),
        Err(StoreError::Conflict { jobs: vec![id] })
    );
    let never = store.reserve_ids(1)?;
    let mut ghost = RunUpdate::of(&expected);
    ghost.job = never;
    assert_eq!(
        store.commit(&[Change::PutRun(ghost)]),
        Err(StoreError::Conflict { jobs: vec![never] })
    );
    // A job put and a run update of the same job in one commit: which one wins is unclear.
    assert!(matches!(
        store.commit(&[
            Change::PutJob(expected.clone()),
            Change::PutRun(RunUpdate::of(&expected)),
        ]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.job(id)?, Some(expected.clone()));

    // A damaged summary is made again from the spec.
    store.raw_put("summaries", &key, b"\xff")?;
    let mut done = with_status(&expected, Status::Completed, at(9));
    done.run.backend.exit_code = Some(0);
    done.subjobs = [Status::Completed; 3].into_iter().collect();
    subjobs
        .iter_mut()
        .for_each(|s| s.run.status = Status::Completed);
    store.commit(&[
        Change::PutRun(RunUpdate::of(&done)),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    done.revision = 3;
    assert_eq!(store.job(id)?, Some(done.clone()));
    assert_eq!(
        store.summaries(id, 1)?,
        vec![SummaryEntry::Readable(JobSummary::of(&done))]
    );
    // Finished: out of the active index.
    assert_eq!(store.active()?, Vec::new());
    assert_eq!(store.subjobs(id, 0..3)?, subjobs);
    let after = store.record_writes();
    assert_eq!(
        (after.specs, after.splitters),
        (before.specs, before.splitters)
    );
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_job_put_rewrites_its_spec_and_splitter_only_when_they_change() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (master, subjobs) = stored_master(&store)?;
    let id = master.id;
    let key = id.to_be_bytes();
    let plain = put(&store, &new_job(&store, "plain")?)?;
    // A job without a splitter has no entry in table splitters.
    assert_eq!(store.raw_get("splitters", &plain.id.to_be_bytes())?, None);
    let spec_bytes = store.raw_get("specs", &key)?;
    let splitter_bytes = store.raw_get("splitters", &key)?;
    let counts = store.record_writes();

    // A change of status only: the state is written, not the spec or the splitter.
    let running = put(&store, &with_status(&master, Status::Submitted, at(1)))?;
    let now = store.record_writes();
    assert_eq!(
        (now.states, now.specs, now.splitters),
        (counts.states + 1, counts.specs, counts.splitters)
    );
    assert_eq!(store.raw_get("specs", &key)?, spec_bytes);
    assert_eq!(store.raw_get("splitters", &key)?, splitter_bytes);
    assert_eq!(store.job(id)?, Some(running.clone()));

    // A new name: the spec is written, the splitter is not.
    let mut renamed = running.clone();
    Arc::make_mut(&mut renamed.spec).name = "renamed".to_owned();
    let renamed = put(&store, &renamed)?;
    let then = store.record_writes();
    assert_eq!((then.specs, then.splitters), (now.specs + 1, now.splitters));
    assert!(store.raw_get("specs", &key)? != spec_bytes);
    assert_eq!(store.raw_get("splitters", &key)?, splitter_bytes);
    assert_eq!(store.job(id)?, Some(renamed.clone()));
    assert_eq!(
        store.summaries(id, 1)?,
        vec![SummaryEntry::Readable(JobSummary::of(&renamed))]
    );

    // The splitter removed: its entry goes (and the spec, which says whether the job has
    // one, is written), and the records that left out their items spell them out first,
    // so they still read right.
    let mut unsplit = renamed.clone();
    Arc::make_mut(&mut unsplit.spec).splitter = None;
    let unsplit = put(&store, &unsplit)?;
    let last = store.record_writes();
    assert_eq!(
        (last.specs, last.splitters),
        (then.specs + 1, then.splitters + 1)
    );
    assert_eq!(store.raw_get("splitters", &key)?, None);
    assert_eq!(store.job(id)?, Some(unsplit));
    assert_eq!(store.subjobs(id, 0..3)?, subjobs);
    assert_eq!(taking_split_items(&store, id, 3)?, Vec::<u32>::new());
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn the_active_index_carries_each_jobs_revision() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (master, _) = stored_master(&store)?;
    let mut job = with_status(&master, Status::Submitted, at(1));
    let mut plain = put(
        &store,
        &with_status(&new_job(&store, "p")?, Status::Running, at(1)),
    )?;
    for step in 0..300u64 {
        // Revisions past 255 take a second byte.
        let committed = store.commit(&[Change::PutRun(RunUpdate::of(&job))])?;
        job.revision = committed[0].revision;
        assert_eq!(job.revision, step + 2);
        if step % 100 == 0 {
            plain = put(&store, &plain)?;
        }
    }
    let active = store.active()?;
    assert_eq!(active.len(), 2);
    for a in &active {
        let stored = store.job(a.id)?.ok_or("an active job is missing")?;
        assert_eq!((a.revision, a.status), (stored.revision, stored.status()));
    }
    assert_eq!(active[0].revision, 301);
    assert_eq!(active[1].revision, plain.revision);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_damaged_spec_or_splitter_makes_only_its_job_unreadable() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (a, a_subjobs) = stored_master(&store)?;
    let (b, _) = stored_master(&store)?;
    let c = put(&store, &new_job(&store, "c")?)?;
    let garbage = b"\xff\x00 not cbor at all";
    store.raw_put("specs", &a.id.to_be_bytes(), garbage)?;
    store.raw_put("splitters", &b.id.to_be_bytes(), garbage)?;
    // Orphans: a spec and a splitter of a job that does not exist.
    let orphan = (c.id + 100).to_be_bytes();
    store.raw_put(
        "specs",
        &orphan,
        &store
            .raw_get("specs", &c.id.to_be_bytes())?
            .ok_or("no spec")?,
    )?;
    store.raw_put(
        "splitters",
        &orphan,
        &store
            .raw_get("splitters", &b.id.to_be_bytes())?
            .ok_or("no splitter")?,
    )?;

    for (id, table) in [(a.id, "table specs:"), (b.id, "table splitters:")] {
        match store.job(id) {
            Err(StoreError::Corrupt { job, detail }) => {
                assert_eq!(job, JobRef::job(id));
                assert!(detail.starts_with(table), "{detail}");
            }
            other => panic!("expected job {id} Corrupt, got {other:?}"),
        }
    }
    assert_eq!(store.job(c.id)?, Some(c.clone()));
    // Every summary lists (they are apart from the parts).
    assert_eq!(
        summary_ids(&store.summaries(0, 10)?),
        vec![a.id, b.id, c.id]
    );
    // a's subjobs read (its splitter is intact); b's take their items from a splitter
    // that does not decode.
    assert_eq!(store.subjobs(a.id, 0..3)?, a_subjobs);
    match store.subjobs(b.id, 0..3) {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::subjob(b.id, 0));
            assert!(detail.contains("master's splitter"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let mut problems = store.check()?.problems;
    problems.sort();
    let expected_starts = [
        format!("job {}: record unreadable: table specs:", a.id),
        format!("job {}: record unreadable: table splitters:", b.id),
        format!("spec {}: there is no job", c.id + 100),
        format!("splitter {}: there is no job", c.id + 100),
        format!("subjob {}.0: record unreadable", b.id),
        format!("subjob {}.1: record unreadable", b.id),
        format!("subjob {}.2: record unreadable", b.id),
    ];
    assert_eq!(problems.len(), expected_starts.len(), "{problems:#?}");
    for (problem, start) in problems.iter().zip(&expected_starts) {
        assert!(problem.starts_with(start.as_str()), "{problems:#?}");
    }
    // A damaged job cannot be overwritten (its spec or splitter would be replaced
    // unseen), but its run can be updated (the state reads) and it can be removed.
    for job in [&a, &b] {
        let mut again = job.clone();
        Arc::make_mut(&mut again.spec).name = "again".to_owned();
        assert!(matches!(
            store.commit(&[Change::PutJob(again)]),
            Err(StoreError::Corrupt { .. })
        ));
    }
    let running = with_status(&a, Status::Running, at(3));
    store.commit(&[Change::PutRun(RunUpdate::of(&running))])?;
    store.commit(&[
        Change::RemoveJob {
            job: a.id,
            revision: 2,
        },
        Change::RemoveJob {
            job: b.id,
            revision: 1,
        },
    ])?;
    for table in ["jobs", "specs", "splitters", "summaries", "dicts"] {
        for id in [a.id, b.id] {
            assert_eq!(
                store.raw_get(table, &id.to_be_bytes())?,
                None,
                "{table} {id}"
            );
        }
    }
    assert_eq!(store.active()?, Vec::new());
    store.raw_delete("specs", &orphan)?;
    store.raw_delete("splitters", &orphan)?;
    assert_clean(&store)?;
    Ok(())
}

/// The resident bytes of this process's mappings of `file` (`/proc/self/smaps`).
#[cfg(target_os = "linux")]
fn resident_bytes_of(file: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let name = file.to_str().ok_or("a path that is not UTF-8")?;
    let mut in_file = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_file = line.ends_with(name);
        } else if in_file && let Some(rss) = line.strip_prefix("Rss:") {
            kib += rss.trim().trim_end_matches("kB").trim().parse::<u64>()?;
        }
    }
    Ok(kib * 1024)
}

/// Reading a store through its map leaves the pages read resident in the process unless
/// they are let go: with a threshold of 1 MiB reading 15 MB leaves little of it, and the
/// default threshold lets pages go too.
#[cfg(target_os = "linux")]
#[test]
fn reading_a_large_store_lets_the_pages_of_the_map_go() -> TestResult {
    let (jobs, args_per_job) = (600u64, 2_000);
    let mut resident = Vec::new();
    for threshold in [Some(1u64 << 20), None, Some(u64::MAX)] {
        let dir = tmp();
        let options = match threshold {
            Some(t) => LmdbOptions::new().trim_threshold(t),
            None => LmdbOptions::new(),
        };
        let store = LmdbStore::open_with(dir.path(), &options)?;
        let first = store.reserve_ids(jobs)?;
        // Masters of 2,000 argument lists of unique words: about 20 KB a splitter.
        for chunk in (first..first + jobs).collect::<Vec<_>>().chunks(100) {
            let changes: Vec<Change> = chunk
                .iter()
                .map(|&id| {
                    let mut job = Job::new(id, spec("big", "local"), at(0));
                    Arc::make_mut(&mut job.spec).splitter = Some(Splitter::Args {
                        args: (0..args_per_job)
                            .map(|k| vec![format!("{id}-{k}-x")])
                            .collect(),
                        append: false,
                    });
                    Change::PutJob(job)
                })
                .collect();
            store.commit(&changes)?;
        }
        let data = store.dir().join("data.mdb");
        let file = std::fs::metadata(&data)?.len();
        let read_before = store.read_stats();
        for id in first..first + jobs {
            assert!(store.job(id)?.is_some());
        }
        let stats = store.read_stats();
        let read = stats.bytes_read - read_before.bytes_read;
        let rss = resident_bytes_of(&data)?;
        eprintln!(
            "threshold {threshold:?}: data file {file} B, counted {read} B, {} trims, map \
             resident {rss} B",
            stats.trims
        );
        // Each job's three records lie apart: what is counted is at least the file.
        assert!(
            read >= file,
            "counted {read} bytes read of a file of {file}"
        );
        resident.push((stats.trims, rss, read, file));
    }
    let [
        (trims, trimmed, read, _),
        (default_trims, default_trimmed, _, file),
        (no_trims, untrimmed, _, _),
    ] = resident[..]
    else {
        return Err("three runs".into());
    };
    assert!(trims >= read / (1 << 20) - 1, "{trims} trims");
    assert!(
        trimmed <= 4 << 20,
        "{trimmed} bytes of the map resident after trims"
    );
    assert!(default_trims >= 1, "the default threshold never trimmed");
    assert!(
        default_trimmed < file / 2,
        "{default_trimmed} bytes of a file of {file} resident with the default threshold"
    );
    assert_eq!(no_trims, 0);
    assert!(
        untrimmed >= file / 2,
        "{untrimmed} bytes of the map resident without trims, of a file of {file}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Format 3: the index of active units, unit updates, backups, damage.
// ---------------------------------------------------------------------------------------

use ganga_core::{ActiveUnit, UnitChange, UnitCursor, UnitRefusal, UnitUpdate};

/// A master on `backend` split into `n` subjobs, submitted, each `submitted` with a
/// backend id; stored with its subjobs in one commit.
fn submitted_master(
    store: &LmdbStore,
    n: u32,
    backend: &str,
) -> Result<(Job, Vec<Subjob>), Box<dyn std::error::Error>> {
    let id = store.reserve_ids(1)?;
    let mut s = spec(&format!("master-{id}"), backend);
    s.splitter = Some(Splitter::Args {
        args: (0..n).map(|k| vec![format!("arg{k}")]).collect(),
        append: true,
    });
    let mut job = Job::new(id, s, at(0));
    let mut subjobs = job.split(at(1))?;
    job.begin_submit(&mut subjobs, at(2))?;
    for sj in &mut subjobs {
        job.set_subjob_status(sj, Status::Submitted, at(3))?;
        sj.run.backend.id = Some(format!("{}", 1000 + sj.index));
    }
    let committed = store.commit(&[
        Change::PutJob(job.clone()),
        Change::PutSubjobs {
            job: id,
            subjobs: subjobs.clone(),
        },
    ])?;
    job.revision = committed[0].revision;
    Ok((job, subjobs))
}

/// Every entry of the index, page by page.
fn all_units(store: &LmdbStore, page: u32) -> Result<Vec<ActiveUnit>, StoreError> {
    let mut out: Vec<ActiveUnit> = Vec::new();
    loop {
        let cursor = out.last().map(UnitCursor::after);
        let got = store.active_units(cursor.as_ref(), page)?;
        if got.is_empty() {
            return Ok(out);
        }
        out.extend(got);
    }
}

/// What the index must hold, from the jobs and subjobs themselves.
fn expected_units(store: &LmdbStore) -> Result<Vec<ActiveUnit>, StoreError> {
    let mut units = Vec::new();
    for entry in store.summaries(0, u32::MAX)? {
        let Some(job) = store.job(entry.id())? else {
            continue;
        };
        let backend = job.spec.backend.kind.clone();
        if job.is_split() {
            for sj in store.subjobs(job.id, 0..job.subjob_count())? {
                if sj.status().is_active() {
                    units.push(ActiveUnit::of(
                        JobRef::subjob(job.id, sj.index),
                        &backend,
                        &sj.run,
                    ));
                }
            }
        } else if job.status().is_active() {
            units.push(ActiveUnit::of(job.job_ref(), &backend, &job.run));
        }
    }
    units.sort_by(|a, b| UnitCursor::after(a).cmp(&UnitCursor::after(b)));
    Ok(units)
}

#[test]
fn the_index_of_active_units_follows_every_change() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (a, _) = submitted_master(&store, 40, "slurm")?;
    let (b, mut b_subjobs) = submitted_master(&store, 5, "local")?;
    let plain = new_job(&store, "plain")?;
    let plain = put(&store, &with_status(&plain, Status::Running, at(5)))?;
    let idle = put(&store, &new_job(&store, "idle")?)?;

    let units = all_units(&store, 7)?;
    assert_eq!(units, expected_units(&store)?);
    assert_eq!(units.len(), 40 + 5 + 1);
    // Backend, then job, the job before its subjobs, subjobs in index order.
    assert_eq!(units[0].unit, JobRef::subjob(b.id, 0));
    assert_eq!(units[5].unit, JobRef::job(plain.id));
    assert_eq!(units[6].unit, JobRef::subjob(a.id, 0));
    assert_eq!(units[6].backend, "slurm");
    assert_eq!(units[6].id.as_deref(), Some("1000"));
    assert_eq!(units[6].since, Some(at(3)));
    assert!(!units.iter().any(|u| u.unit.job == idle.id));
    assert_clean(&store)?;

    // Subjobs put that ended leave the index; a run update of a plain job too.
    let mut b_job = b.clone();
    for sj in &mut b_subjobs[..2] {
        b_job.set_subjob_status(sj, Status::Failed, at(9))?;
    }
    store.commit(&[
        Change::PutRun(RunUpdate::of(&b_job)),
        Change::PutSubjobs {
            job: b.id,
            subjobs: b_subjobs[..2].to_vec(),
        },
    ])?;
    let done = with_status(&plain, Status::Completing, at(10));
    store.commit(&[Change::PutRun(RunUpdate::of(&done))])?;
    assert_eq!(all_units(&store, 1000)?, expected_units(&store)?);
    assert_eq!(all_units(&store, 1000)?.len(), 40 + 3 + 1);
    assert_clean(&store)?;

    // A job moved to another backend takes its units along; a removed job's go.
    let mut moved = store.job(a.id)?.ok_or("no job a")?;
    Arc::make_mut(&mut moved.spec).backend = BackendConfig::named("condor");
    store.commit(&[Change::PutJob(moved.clone())])?;
    let units = all_units(&store, 1000)?;
    assert_eq!(units, expected_units(&store)?);
    assert!(
        units
            .iter()
            .filter(|u| u.unit.job == a.id)
            .all(|u| u.backend == "condor")
    );
    let b_now = store.job(b.id)?.ok_or("no job b")?;
    store.commit(&[Change::RemoveJob {
        job: b.id,
        revision: b_now.revision,
    }])?;
    assert_eq!(all_units(&store, 3)?, expected_units(&store)?);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn unit_updates_follow_the_rules_in_one_transaction() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (a, _) = submitted_master(&store, 40, "local")?;
    let (b, _) = submitted_master(&store, 3, "local")?;
    let plain = new_job(&store, "plain")?;
    let mut submitted = with_status(&plain, Status::Submitting, at(4));
    submitted.run.submit_count = 1;
    let plain = put(&store, &submitted)?;

    let running = |unit: JobRef, seen: Status, run: u32, secs: i64| UnitUpdate {
        unit,
        seen,
        run,
        change: UnitChange {
            native_state: Some("RUNNING".to_owned()),
            ..UnitChange::to(Status::Running, at(secs))
        },
    };
    let updates = vec![
        running(JobRef::subjob(a.id, 3), Status::Submitted, 1, 20),
        running(JobRef::subjob(a.id, 17), Status::Submitted, 1, 21),
        // The same unit again, as seen after the first: applied in order.
        UnitUpdate {
            unit: JobRef::subjob(a.id, 3),
            seen: Status::Running,
            run: 1,
            change: UnitChange {
                exit_code: Some(0),
                ..UnitChange::to(Status::Completing, at(22))
            },
        },
        // Stale: the writer saw another status.
        running(JobRef::subjob(a.id, 5), Status::Submitting, 1, 23),
        // Stale: another run.
        running(JobRef::subjob(a.id, 6), Status::Submitted, 2, 23),
        // Illegal.
        UnitUpdate {
            unit: JobRef::subjob(b.id, 1),
            seen: Status::Submitted,
            run: 1,
            change: UnitChange::to(Status::New, at(24)),
        },
        running(JobRef::subjob(b.id, 99), Status::Submitted, 1, 24),
        running(JobRef::subjob(999, 0), Status::Submitted, 1, 24),
        // A plain job: from submitting through submitted.
        running(plain.job_ref(), Status::Submitting, 1, 25),
        // A master is not a unit.
        running(JobRef::job(a.id), Status::Submitted, 1, 25),
    ];

    // What the rules make of them, on the jobs as read.
    let mut expected: BTreeMap<JobId, (Job, Vec<Subjob>)> = BTreeMap::new();
    for id in [a.id, b.id, plain.id] {
        let job = store.job(id)?.ok_or("no job")?;
        let subjobs = store.subjobs(id, 0..job.subjob_count())?;
        expected.insert(id, (job, subjobs));
    }
    let mut refusals = Vec::new();
    for u in &updates {
        let Some((job, subjobs)) = expected.get_mut(&u.unit.job) else {
            refusals.push((u.unit, UnitRefusal::NoSuchUnit));
            continue;
        };
        let result = match u.unit.subjob {
            None => job.apply_unit_update(None, u),
            Some(i) => match subjobs.get_mut(i as usize) {
                Some(sj) => job.apply_unit_update(Some(sj), u),
                None => Err(UnitRefusal::NoSuchUnit),
            },
        };
        if let Err(why) = result {
            refusals.push((u.unit, why));
        }
    }

    let before = store.record_writes();
    let outcome = store.update_units(&updates)?;
    // Reported per unit (grouped by job: the order is not the updates').
    let mut refused = outcome.refused.clone();
    refused.sort_by_key(|(unit, _)| *unit);
    refusals.sort_by_key(|(unit, _)| *unit);
    assert_eq!(refused, refusals);
    assert_eq!(refused.len(), 6);
    // One new revision per job changed (b had only refusals), one state written each;
    // no spec or splitter.
    let revisions: Vec<(JobId, u64)> = outcome
        .committed
        .iter()
        .map(|c| (c.job, c.revision))
        .collect();
    assert_eq!(
        revisions,
        vec![(a.id, a.revision + 1), (plain.id, plain.revision + 1)]
    );
    let after = store.record_writes();
    assert_eq!(
        (after.states, after.specs, after.splitters),
        (before.states + 2, before.specs, before.splitters)
    );
    for (id, (mut job, subjobs)) in expected {
        if let Some(c) = outcome.committed.iter().find(|c| c.job == id) {
            job.revision = c.revision;
        }
        assert_eq!(store.job(id)?, Some(job.clone()), "job {id}");
        assert_eq!(
            store.subjobs(id, 0..job.subjob_count())?,
            subjobs,
            "subjobs of {id}"
        );
        assert_eq!(
            store.summaries(id, 1)?,
            vec![SummaryEntry::Readable(JobSummary::of(&job))]
        );
    }
    let a_now = store.job(a.id)?.ok_or("no job a")?;
    // Most of its subjobs are still submitted, which is what it derives.
    assert_eq!(a_now.status(), Status::Submitted);
    assert_eq!(a_now.subjobs.get(Status::Completing), 1);
    assert_eq!(a_now.subjobs.get(Status::Running), 1);
    assert_eq!(all_units(&store, 1000)?, expected_units(&store)?);
    assert_clean(&store)?;

    // Nothing applied: nothing written.
    let before = store.record_writes();
    let outcome =
        store.update_units(&[running(JobRef::subjob(a.id, 5), Status::Running, 1, 30)])?;
    assert!(outcome.committed.is_empty());
    assert_eq!(store.record_writes(), before);
    Ok(())
}

#[test]
fn a_backup_is_a_consistent_copy_while_a_writer_commits() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    for _ in 0..20 {
        submitted_master(&store, 100, "local")?;
    }
    // Every commit of the writer puts two jobs: a consistent copy holds an even number.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<u64, StoreError> {
            let mut commits = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let first = store.reserve_ids(2)?;
                let jobs: Vec<Change> = (first..first + 2)
                    .map(|id| Change::PutJob(Job::new(id, spec("pair", "local"), at(0))))
                    .collect();
                store.commit(&jobs)?;
                commits += 1;
            }
            Ok(commits)
        })
    };
    // Let the writer get going.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.summaries(0, u32::MAX)?.len() < 30 {
        assert!(Instant::now() < deadline, "the writer made no commits");
        std::thread::yield_now();
    }
    let dest = dir.path().join("backup");
    store.backup(&dest)?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = writer.join().map_err(|_| "the writer panicked")??;
    assert!(commits > 0);

    let copy = LmdbStore::open(&dest)?;
    assert_clean(&copy)?;
    let listed = copy.summaries(0, u32::MAX)?;
    assert_eq!((listed.len() - 20) % 2, 0, "a commit half copied");
    for entry in &listed {
        assert_eq!(copy.job(entry.id())?, store.job(entry.id())?);
    }
    assert_eq!(copy.subjobs(0, 0..100)?, store.subjobs(0, 0..100)?);
    // Compacted: no larger than the store.
    let size = |p: &Path| std::fs::metadata(p.join("data.mdb")).map(|m| m.len());
    assert!(size(&dest)? <= size(dir.path())?);
    // Never over an existing directory.
    match store.backup(&dest) {
        Err(StoreError::Invalid(message)) => assert!(message.contains("already exists")),
        other => panic!("expected Invalid, got {other:?}"),
    }
    Ok(())
}

/// A store of a few jobs, closed; its directory.
fn closed_store() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    submitted_master(&store, 50, "local")?;
    put(&store, &new_job(&store, "plain")?)?;
    drop(store);
    Ok(dir)
}

fn open_error(dir: &Path) -> String {
    match LmdbStore::open(dir) {
        Ok(_) => panic!("a damaged store in {} opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_empty_or_truncated_data_file_is_refused_never_reset() -> TestResult {
    let dir = closed_store()?;
    let data = dir.path().join("data.mdb");
    let whole = std::fs::read(&data)?;

    std::fs::write(&data, b"")?;
    let message = open_error(dir.path());
    assert!(
        message.contains("is empty") && message.contains("backup"),
        "{message}"
    );
    // Nothing was written: still empty, still refused.
    assert_eq!(std::fs::metadata(&data)?.len(), 0);

    for len in [100, 4096, 8192 + 10, whole.len() / 2, whole.len() - 4096] {
        std::fs::write(&data, &whole[..len])?;
        let message = open_error(dir.path());
        assert!(
            message.contains("truncated") || message.contains("ends before"),
            "{len} bytes: {message}"
        );
        assert!(message.contains("data.mdb"), "{message}");
    }

    std::fs::remove_file(&data)?;
    let message = open_error(dir.path());
    assert!(message.contains("is missing"), "{message}");
    assert!(!data.exists(), "a new data file was made");

    std::fs::write(&data, &whole)?;
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.summaries(0, 10)?.len(), 2);
    Ok(())
}

#[test]
fn a_changed_byte_in_a_record_is_reported_for_its_job() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let (a, _) = submitted_master(&store, 30, "local")?;
    let b = put(&store, &new_job(&store, "b")?)?;
    // A string of b's spec, changed by one byte in the stored bytes (its checksum kept).
    let key = b.id.to_be_bytes();
    let mut stored = store.raw_get_stored("specs", &key)?.ok_or("no spec")?;
    let at_byte = stored.len() / 2;
    stored[at_byte] ^= 0x04;
    store.raw_put_unsealed("specs", &key, &stored)?;
    match store.job(b.id) {
        Err(StoreError::Corrupt { job, detail }) => {
            assert_eq!(job, JobRef::job(b.id));
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.job(a.id)?.map(|j| j.id), Some(a.id));
    // A group of subjobs changed: those subjobs are reported, the others read.
    let group = 1u32;
    let mut gkey = a.id.to_be_bytes().to_vec();
    gkey.extend_from_slice(&group.to_be_bytes());
    let mut stored = store.raw_get_stored("subjobs", &gkey)?.ok_or("no group")?;
    stored[3] ^= 0x01;
    store.raw_put_unsealed("subjobs", &gkey, &stored)?;
    match store.subjobs(a.id, 0..30) {
        Err(StoreError::Corrupt { job, .. }) => assert_eq!(job, JobRef::subjob(a.id, 16)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.subjobs(a.id, 0..16)?.len(), 16);
    let report = store.check()?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("specs") && p.contains(&b.id.to_string())),
        "{:#?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("subjobs")),
        "{:#?}",
        report.problems
    );
    Ok(())
}

/// 100,000 unit updates spread over 1,000 masters of 1,000 subjobs, in one call.
#[test]
#[ignore = "a measurement; run it by name, in a release build"]
fn updating_units_at_full_scale() -> TestResult {
    let dir = tmp();
    let store = LmdbStore::open(dir.path())?;
    let started = Instant::now();
    let mut masters = Vec::new();
    for _ in 0..1000 {
        masters.push(submitted_master(&store, 1000, "local")?.0);
    }
    eprintln!(
        "stored 1,000 x 1,000 submitted subjobs in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let units = all_units(&store, 10_000)?;
    eprintln!(
        "read the index of {} active units in {:?}",
        units.len(),
        started.elapsed()
    );
    assert_eq!(units.len(), 1_000_000);
    for round in 0..3 {
        // 100 subjobs of each master, spread over the whole job.
        let (from, to) = [
            (Status::Submitted, Status::Running),
            (Status::Running, Status::Completing),
            (Status::Completing, Status::Completed),
        ][round];
        let updates: Vec<UnitUpdate> = masters
            .iter()
            .flat_map(|m| {
                (0..100u32).map(move |k| UnitUpdate {
                    unit: JobRef::subjob(m.id, (k * 617) % 1000),
                    seen: from,
                    run: 1,
                    change: UnitChange {
                        native_state: Some(format!("{to}")),
                        ..UnitChange::to(to, at(100 + round as i64))
                    },
                })
            })
            .collect();
        let started = Instant::now();
        let outcome = store.update_units(&updates)?;
        let took = started.elapsed();
        assert!(outcome.refused.is_empty(), "{:?}", &outcome.refused[..3]);
        assert_eq!(outcome.committed.len(), 1000);
        eprintln!(
            "update_units: 100,000 updates ({from} -> {to}) over 1,000 masters in one call: {took:?}"
        );
    }
    let report = store.check()?;
    assert!(
        report.problems.is_empty(),
        "{:#?}",
        &report.problems[..3.min(report.problems.len())]
    );
    Ok(())
}

const FORMAT_2_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v2");

/// Opens a copy of the format-2 fixture in `dir` and checks it reads back as expected.
fn check_format_2_store(dir: &Path) -> TestResult {
    let expected: BTreeMap<JobId, Expected> = serde_json::from_str(&std::fs::read_to_string(
        Path::new(FORMAT_2_FIXTURE).join("expected.json"),
    )?)?;
    assert_eq!(expected.len(), 4, "the fixture holds four jobs");
    let store = LmdbStore::open(dir)?;
    assert_eq!(store.describe()?.format_version, 3);
    for (&id, e) in &expected {
        assert_eq!(store.job(id)?.as_ref(), Some(&e.job), "job {id}");
        assert_eq!(
            store.subjobs(id, 0..u32::MAX)?,
            e.subjobs,
            "subjobs of {id}"
        );
    }
    let mut units = Vec::new();
    for e in expected.values() {
        let backend = &e.job.spec.backend.kind;
        if e.subjobs.is_empty() {
            if e.job.status().is_active() {
                units.push(ActiveUnit::of(e.job.job_ref(), backend, &e.job.run));
            }
        } else {
            for sj in e.subjobs.iter().filter(|sj| sj.status().is_active()) {
                units.push(ActiveUnit::of(
                    JobRef::subjob(e.job.id, sj.index),
                    backend,
                    &sj.run,
                ));
            }
        }
    }
    units.sort_by(|a, b| UnitCursor::after(a).cmp(&UnitCursor::after(b)));
    assert_eq!(units.len(), 3);
    assert_eq!(all_units(&store, 2)?, units);
    assert_clean(&store)?;
    // Writable as format 3: a unit moves on.
    let unit = &units[0];
    let outcome = store.update_units(&[UnitUpdate {
        unit: unit.unit,
        seen: unit.status,
        run: unit.run,
        change: UnitChange::to(Status::Running, at(100)),
    }])?;
    assert!(outcome.refused.is_empty(), "{:?}", outcome.refused);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_format_2_store_is_upgraded_in_place_and_a_copy_is_kept() -> TestResult {
    let dir = tmp();
    std::fs::copy(
        Path::new(FORMAT_2_FIXTURE).join("data.mdb"),
        dir.path().join("data.mdb"),
    )?;
    check_format_2_store(dir.path())?;
    // The copy kept before the upgrade is the whole format-2 store: it upgrades the same.
    let kept = dir.path().join("data.mdb.v2-backup");
    let again = tmp();
    std::fs::copy(&kept, again.path().join("data.mdb"))?;
    check_format_2_store(again.path())?;
    Ok(())
}
