//! The queue and its runners with real processes: kill and resubmission of queued and
//! running runs, `find`, `changes`, runners and wrappers killed with SIGKILL, and several
//! submitters at once.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use ganga_core::{Backend, BackendRef, JobRef, RemoteStatus, SubmitSpec, UnitRun, Value};
use ganga_test_support::conformance;

/// A job that waits until `go` exists, then appends `name` to `log`.
fn gated(home: &Path, job: u64, go: &Path, log: &Path, name: &str) -> SubmitSpec {
    sh_args(
        home,
        job,
        "while [ ! -e \"$1\" ]; do sleep 0.05; done; echo \"$3\" >> \"$2\"",
        &[
            go.to_str().expect("utf-8"),
            log.to_str().expect("utf-8"),
            name,
        ],
    )
}

/// A job that appends `name` to `log` at once.
fn logging(home: &Path, job: u64, log: &Path, name: &str) -> SubmitSpec {
    sh_args(
        home,
        job,
        "echo \"$2\" >> \"$1\"",
        &[log.to_str().expect("utf-8"), name],
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn find(b: &dyn Backend, units: &[UnitRun]) -> Vec<Option<String>> {
    let asked: Vec<JobRef> = units.iter().map(|u| u.job).collect();
    let answers = b.find(units).await.expect("find call");
    conformance::keyed("find", &asked, answers)
        .expect("keyed answers")
        .into_iter()
        .map(|a| a.expect("an answer").map(|s| s.id))
        .collect()
}

fn unit_run(r: &BackendRef, run: u32) -> UnitRun {
    UnitRun {
        job: r.job,
        run,
        workspace: r.workspace.clone(),
    }
}

/// Collects `changes` until every job of `jobs` was named, failing after [`TIMEOUT`].
async fn changes_until(b: &dyn Backend, jobs: &[JobRef]) -> Vec<JobRef> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !jobs.iter().all(|j| seen.contains(j)) {
        assert!(
            std::time::Instant::now() < deadline,
            "changes named only {seen:?} of {jobs:?}"
        );
        seen.extend(
            b.changes(Duration::from_millis(500))
                .await
                .expect("changes"),
        );
    }
    seen
}

#[tokio::test]
async fn a_unit_killed_while_queued_never_starts() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let (go, log) = (home.path().join("go"), home.path().join("log"));
    let first = submit_one(&b, &gated(home.path(), 1, &go, &log, "first")).await;
    let queued = submit_one(&b, &logging(home.path(), 2, &log, "queued")).await;
    wait_status(&b, &first, RemoteStatus::Running).await;
    assert_eq!(poll(&b, &queued).await.status, RemoteStatus::Queued);

    // Its id exists before it starts, and reaches it.
    let answers = b.kill(std::slice::from_ref(&queued)).await.expect("kill");
    assert_eq!(answers, [(queued.job, Ok(()))]);
    let rep = poll(&b, &queued).await;
    assert_eq!(rep.status, RemoteStatus::Killed, "{rep:?}");
    assert!(read(&queued.workspace.join("local/killed-1")).contains("run=1\n"));

    std::fs::write(&go, "").expect("go");
    wait_status(&b, &first, RemoteStatus::Succeeded).await;
    // A unit queued after it runs, so the runner went past it.
    let last = submit_one(&b, &logging(home.path(), 3, &log, "last")).await;
    wait_status(&b, &last, RemoteStatus::Succeeded).await;
    assert_eq!(lines(&log), ["first", "last"]);
    assert!(!queued.workspace.join("local/started-1").exists());
    assert_eq!(poll(&b, &queued).await.status, RemoteStatus::Killed);
}

#[tokio::test]
async fn resubmitting_stops_a_run_that_still_runs() {
    let home = home();
    let b = backend(home.path(), &[("kill_grace_secs", Value::Float(0.5))]);
    // Run 1 keeps writing into its working directory, from a child process too.
    let s = sh(
        home.path(),
        1,
        "(while :; do echo child >> ticks; sleep 0.05; done) & while :; do echo tick >> ticks; sleep 0.05; done",
    );
    let r1 = submit_one(&b, &s).await;
    wait_file(&r1.workspace.join("work/ticks")).await;
    let old_group = wrapper_pid(&r1);
    assert!(live_members(old_group).len() >= 2);

    // A crashed ganga, or a user who forced it failed, submits run 2 without a kill.
    let s2 = SubmitSpec {
        run: 2,
        args: vec!["-c".into(), "sleep 0.5; ls".into()],
        ..s
    };
    let r2 = submit_one(&b, &s2).await;
    // Nothing of run 1 is alive once submit answered: nothing of it writes into run 2's
    // directory.
    assert_eq!(live_members(old_group), Vec::<i32>::new());
    wait_status(&b, &r2, RemoteStatus::Succeeded).await;
    assert!(!r2.workspace.join("work/ticks").exists());
    assert_eq!(read(&r2.workspace.join("work/stdout")), "stderr\nstdout\n");
}

#[tokio::test]
async fn resubmitting_a_queued_run_takes_it_out_of_the_queue() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let (go, log) = (home.path().join("go"), home.path().join("log"));
    let blocker = submit_one(&b, &gated(home.path(), 1, &go, &log, "blocker")).await;
    wait_status(&b, &blocker, RemoteStatus::Running).await;
    let s = logging(home.path(), 2, &log, "run 1");
    let r1 = submit_one(&b, &s).await;
    let s2 = SubmitSpec {
        run: 2,
        ..logging(home.path(), 2, &log, "run 2")
    };
    let r2 = submit_one(&b, &s2).await;
    std::fs::write(&go, "").expect("go");
    wait_status(&b, &r2, RemoteStatus::Succeeded).await;
    wait_status(&b, &blocker, RemoteStatus::Succeeded).await;
    assert_eq!(lines(&log), ["blocker", "run 2"]);
    assert_eq!(poll(&b, &r1).await.status, RemoteStatus::Absent);
}

#[tokio::test]
async fn find_answers_from_the_records() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let (go, log) = (home.path().join("go"), home.path().join("log"));
    let running = submit_one(&b, &gated(home.path(), 1, &go, &log, "a")).await;
    let queued = submit_one(&b, &logging(home.path(), 2, &log, "b")).await;
    wait_status(&b, &running, RemoteStatus::Running).await;
    assert_eq!(poll(&b, &queued).await.status, RemoteStatus::Queued);
    let never = spec(home.path(), 3, "true", &[]);
    let answers = find(
        &b,
        &[
            unit_run(&running, 1),
            unit_run(&queued, 1),
            UnitRun {
                job: never.job,
                run: 1,
                workspace: never.workspace.clone(),
            },
        ],
    )
    .await;
    assert_eq!(
        answers,
        [Some(running.id.clone()), Some(queued.id.clone()), None]
    );
    // Another run of a unit that was handed over is not.
    assert_eq!(find(&b, &[unit_run(&running, 2)]).await, [None]);
    std::fs::write(&go, "").expect("go");
    wait_status(&b, &queued, RemoteStatus::Succeeded).await;
    assert_eq!(
        find(&b, &[unit_run(&queued, 1)]).await,
        [Some(queued.id.clone())]
    );
}

#[tokio::test]
async fn changes_name_ended_and_killed_units_once() {
    let home = home();
    let b = backend(home.path(), &[]);
    // Events written while nothing watched are found by the first call.
    let quick: Vec<BackendRef> = submit(
        &b,
        &(0..3)
            .map(|i| spec_of(home.path(), JobRef::subjob(1, i), "true", &[]))
            .collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(|r| r.expect("submitted"))
    .collect();
    for r in &quick {
        // Ended, but no poll yet (a poll of an ended unit consumes its event).
        wait_file(&r.workspace.join("local/exit-1")).await;
    }
    let jobs: Vec<JobRef> = quick.iter().map(|r| r.job).collect();
    let seen = changes_until(&b, &jobs).await;
    for job in &jobs {
        assert_eq!(seen.iter().filter(|j| *j == job).count(), 1, "{seen:?}");
    }
    // Consumed: asked again, nothing.
    assert_eq!(b.changes(Duration::ZERO).await.expect("changes"), []);
    let events = home.path().join("local/events");
    assert_eq!(std::fs::read_dir(&events).expect("events").count(), 0);

    // A kill is a change too.
    let long = submit_one(&b, &sh(home.path(), 2, "sleep 600")).await;
    wait_status(&b, &long, RemoteStatus::Running).await;
    b.kill(std::slice::from_ref(&long)).await.expect("kill");
    changes_until(&b, &[long.job]).await;
}

#[tokio::test]
async fn a_wrapper_killed_with_sigkill_leaves_an_absent_unit_and_an_event() {
    let home = home();
    let b = backend(home.path(), &[]);
    let go = home.path().join("go");
    let r = submit_one(
        &b,
        &sh_args(
            home.path(),
            1,
            "while [ ! -e \"$1\" ]; do sleep 0.05; done",
            &[go.to_str().expect("utf-8")],
        ),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Running).await;
    let _ = b.changes(Duration::ZERO).await.expect("changes");
    // Only the wrapper: the program goes on, then ends with nobody to record it.
    kill(wrapper_pid(&r), libc::SIGKILL);
    std::fs::write(&go, "").expect("go");
    // Its runner tells whoever watches (before any poll: a poll that finds the unit gone
    // consumes the event itself).
    changes_until(&b, &[r.job]).await;
    let rep = wait_status(&b, &r, RemoteStatus::Absent).await;
    assert!(
        rep.reason
            .as_deref()
            .is_some_and(|why| why.contains("without recording an exit code")),
        "{rep:?}"
    );
}

#[tokio::test]
async fn a_runner_killed_with_sigkill_loses_no_unit() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let (go, log) = (home.path().join("go"), home.path().join("log"));
    let running = submit_one(&b, &gated(home.path(), 1, &go, &log, "running")).await;
    let waiting = submit_one(&b, &logging(home.path(), 2, &log, "waiting")).await;
    wait_status(&b, &running, RemoteStatus::Running).await;
    let runners = runners_of(home.path());
    assert_eq!(runners.len(), 1, "{runners:?}");
    kill(runners[0], libc::SIGKILL);
    eventually("the runner to be gone", || async {
        runners_of(home.path()).is_empty().then_some(())
    })
    .await;
    // The running unit runs on (its wrapper leads a session of its own) and ends well.
    assert_eq!(poll(&b, &running).await.status, RemoteStatus::Running);
    std::fs::write(&go, "").expect("go");
    wait_status(&b, &running, RemoteStatus::Succeeded).await;
    // The waiting unit is still queued, and a poll that finds it waiting with its slot
    // free starts a runner for it.
    wait_status(&b, &waiting, RemoteStatus::Succeeded).await;
    assert_eq!(lines(&log), ["running", "waiting"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_submitters_at_once_neither_lose_nor_double_run_a_unit() {
    let home = home();
    let log = home.path().join("log");
    let submitters = 4u64;
    let per = 60u64;
    let mut tasks = Vec::new();
    for s in 0..submitters {
        let (home, log) = (home.path().to_path_buf(), log.clone());
        tasks.push(tokio::spawn(async move {
            // Each submitter is another backend instance, as another ganga process is.
            let b = backend(&home, &[("max_parallel", Value::Integer(3))]);
            let specs: Vec<SubmitSpec> = (0..per)
                .map(|i| {
                    let name = format!("{s}.{i}");
                    SubmitSpec {
                        job: JobRef::subjob(100 + s, u32::try_from(i).expect("small")),
                        ..logging(&home, 0, &log, &name)
                    }
                })
                .map(|spec| {
                    let workspace = home
                        .join("workspace")
                        .join(spec.job.job.to_string())
                        .join(spec.job.subjob.expect("a subjob").to_string());
                    SubmitSpec {
                        output_dir: workspace.join("output"),
                        workspace,
                        ..spec
                    }
                })
                .collect();
            // In small batches, interleaved with the others.
            let mut refs = Vec::new();
            for chunk in specs.chunks(7) {
                for r in submit(&b, chunk).await {
                    refs.push(r.expect("submitted"));
                }
            }
            refs
        }));
    }
    let mut refs = Vec::new();
    for t in tasks {
        refs.extend(t.await.expect("submitter"));
    }
    let b = backend(home.path(), &[("max_parallel", Value::Integer(3))]);
    let ids: std::collections::BTreeSet<&str> = refs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), refs.len(), "two units got the same id");
    eventually("every unit to succeed", || async {
        let reports = b.poll_all(&refs).await.expect("poll_all");
        let done = reports
            .iter()
            .filter(|(_, r)| {
                r.as_ref()
                    .is_ok_and(|r| r.status == RemoteStatus::Succeeded)
            })
            .count();
        for (job, r) in &reports {
            let r = r.as_ref().expect("a report");
            assert!(
                !is_final(r.status) || r.status == RemoteStatus::Succeeded,
                "{job}: {r:?}"
            );
        }
        (done == refs.len()).then_some(())
    })
    .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines(&log) {
        *counts.entry(line).or_default() += 1;
    }
    assert_eq!(
        counts.len(),
        usize::try_from(submitters * per).expect("small")
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "a unit ran twice: {counts:?}"
    );
    // Never more runners than slots.
    assert!(runners_of(home.path()).len() <= 3);
}

#[tokio::test]
async fn processes_stay_proportional_to_max_parallel() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(2))]);
    let specs: Vec<SubmitSpec> = (0..300)
        .map(|i| spec_of(home.path(), JobRef::subjob(1, i), "sleep", &["0.01"]))
        .collect();
    let refs: Vec<BackendRef> = submit(&b, &specs)
        .await
        .into_iter()
        .map(|r| r.expect("submitted"))
        .collect();
    // Right after submit: at most the runners (and what each runs), not one per unit.
    let local = home.path().join("local");
    let mine = || processes_naming(local.to_str().expect("utf-8")).len();
    let mut most = mine();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        most = most.max(mine());
        let reports = b.poll_all(&refs).await.expect("poll_all");
        let done = reports.iter().all(|(_, r)| {
            r.as_ref()
                .is_ok_and(|r| r.status == RemoteStatus::Succeeded)
        });
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Per slot: a runner, its wrapper, and what the wrapper runs for a moment (`mv` of a
    // record, `rm` of the queue entry): six at most name the home's directory.
    assert!(most <= 3 * 2, "{most} processes for max_parallel 2");
    // And this process keeps no child.
    let children: Vec<i32> = all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    == Some(&std::process::id().to_string())
            })
        })
        .collect();
    assert_eq!(children, Vec::<i32>::new());
}
