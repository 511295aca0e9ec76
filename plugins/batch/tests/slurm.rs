//! The Batch backend on a real Slurm (single node, started by `.ci/batch/slurm.sh start`).
//! Every test fails, saying how to start it, when Slurm is not running.

mod common;

use std::time::{Duration, Instant};

use common::{
    Home, SlurmLock, collect_outputs, conformance_env, conforms, indexed_specs, logged_config,
    poll_all, poll_until, require, spec, submit, until_final,
};
use ganga_core::{Backend, BackendRef, JobRef, PeekFile, RemoteStatus, Value};
use ganga_test_support::conformance::{self, Check, ShellJob};

const SQUEUE: &str = "/usr/bin/squeue";
const SBATCH: &str = "/usr/bin/sbatch";
const SCANCEL: &str = "/usr/bin/scancel";

fn slurm_config(home: &Home) -> Vec<(&'static str, Value)> {
    logged_config(
        home,
        "slurm",
        &[("sbatch", SBATCH), ("squeue", SQUEUE), ("scancel", SCANCEL)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_slurm() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    conforms(&home.backend(&[("system", "slurm".into())])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_as_a_loaded_library_on_slurm() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let path = ganga_test_support::built_plugin("ganga-backend-batch");
    let mut catalog = ganga_plugin_host::Catalog::new();
    let info = catalog.load_file(&path).expect("the library is a plugin");
    assert_eq!(info.name, "batch");
    let context = ganga_plugin_sdk::PluginContext {
        home: home.path().to_owned(),
        config: [("system".to_owned(), Value::from("slurm"))]
            .into_iter()
            .collect(),
        home_id: home.id.clone(),
    };
    let backend = catalog
        .backend("batch", &context)
        .expect("the backend starts");
    let env = conformance_env();
    for check in [
        Check::Describe,
        Check::Succeeds,
        Check::Fails,
        Check::PollAll,
        Check::Find,
    ] {
        conformance::run_check(check, &*backend, &env)
            .await
            .unwrap_or_else(|f| panic!("{f}"));
    }
}

/// A split job of 50 subjobs goes as one array (one `sbatch`), every poll is one
/// `squeue` whatever the number of units, and all 50 complete with their outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_job_of_50_completes_with_outputs() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&slurm_config(&home));
    let specs = indexed_specs(
        &home,
        7,
        50,
        "echo \"item $1\" > \"out-$1.txt\"; echo done",
        "out-*.txt",
    );
    let refs = submit(&backend, &specs).await;
    assert_eq!(home.calls("sbatch"), 1, "50 units, one array, one sbatch");
    let bases: std::collections::BTreeSet<_> = refs
        .iter()
        .map(|r| r.id.split('_').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(bases.len(), 1, "one array: {bases:?}");

    let before = home.calls("squeue");
    poll_all(&backend, &refs).await.expect("a poll");
    assert_eq!(home.calls("squeue"), before + 1, "one squeue for 50 units");

    let reports = until_final(&backend, &refs, Duration::from_secs(180)).await;
    for (r, rep) in refs.iter().zip(&reports) {
        assert_eq!(rep.status, RemoteStatus::Succeeded, "{}: {rep:?}", r.job);
        assert_eq!(rep.exit_code, Some(0));
        assert!(rep.actual_ce.is_some(), "{}: where it ran", r.job);
        assert!(rep.started.is_some() && rep.ended.is_some());
    }
    let collected = collect_outputs(&backend, &refs, &specs).await;
    for (i, (report, spec)) in collected.iter().zip(&specs).enumerate() {
        assert_eq!(
            report.collected,
            [format!("out-{i}.txt"), "stderr".into(), "stdout".into()]
        );
        let text = std::fs::read_to_string(spec.output_dir.join(format!("out-{i}.txt")))
            .expect("collected");
        assert_eq!(text, format!("item {i}\n"));
    }
}

/// Exit code 3: failed with exit code 3, said in the native state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_3_fails_with_exit_code_3() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&slurm_config(&home));
    let refs = submit(
        &backend,
        &[spec(
            &home,
            JobRef::job(1),
            &ShellJob::new("echo oops >&2; exit 3"),
        )],
    )
    .await;
    let reports = until_final(&backend, &refs, Duration::from_secs(120)).await;
    assert_eq!(reports[0].status, RemoteStatus::Failed);
    assert_eq!(reports[0].exit_code, Some(3));
    assert_eq!(reports[0].native_state, "exited 3");
    let err = backend
        .peek(&refs[0], &PeekFile::Stderr, 100)
        .await
        .expect("peek");
    assert_eq!(err, b"oops\n");
}

/// Killing running units: one scancel for all of them, then Killed; a unit that had
/// ended keeps how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_running_units_in_one_command() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&slurm_config(&home));
    let mut specs: Vec<_> = (0..4u32)
        .map(|i| {
            spec(
                &home,
                JobRef::subjob(3, i),
                &ShellJob::new("echo started; sleep 120"),
            )
        })
        .collect();
    specs.push(spec(&home, JobRef::subjob(3, 4), &ShellJob::new("exit 0")));
    let refs = submit(&backend, &specs).await;
    poll_until(
        &backend,
        &refs,
        Duration::from_secs(120),
        "to run (or end)",
        |r| matches!(r.status, RemoteStatus::Running | RemoteStatus::Succeeded),
    )
    .await;
    let done = until_final(&backend, &refs[4..], Duration::from_secs(60)).await;
    assert_eq!(done[0].status, RemoteStatus::Succeeded);
    // Peek while it runs.
    let out = backend
        .peek(&refs[0], &PeekFile::Stdout, 100)
        .await
        .expect("peek");
    assert_eq!(out, b"started\n");

    let before = home.calls("scancel");
    let answers = backend.kill(&refs).await.expect("kill");
    assert_eq!(answers.len(), 5);
    assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
    assert_eq!(
        home.calls("scancel"),
        before + 1,
        "one scancel for the running units"
    );
    let reports = until_final(&backend, &refs, Duration::from_secs(60)).await;
    for rep in &reports[..4] {
        assert_eq!(rep.status, RemoteStatus::Killed, "{rep:?}");
    }
    assert_eq!(
        reports[4].status,
        RemoteStatus::Succeeded,
        "ended before the kill"
    );
    // The batch system stopped them: once Slurm says so, they are CANCELLED there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listing = std::process::Command::new(SQUEUE)
            .args([
                "-h",
                "-t",
                "all",
                "-r",
                "-o",
                "%i %T",
                &format!("--name={}", home.tag()),
            ])
            .output()
            .expect("squeue runs");
        let text = String::from_utf8_lossy(&listing.stdout).into_owned();
        let cancelled = refs[..4].iter().all(|r| {
            let native = r.id.trim_start_matches("slurm:");
            text.lines().any(|l| l == format!("{native} CANCELLED"))
        });
        if cancelled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Slurm never showed them cancelled:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stops slurmctld, and starts it again when dropped (also when a test fails).
struct Controller;

impl Controller {
    fn stop() -> Controller {
        let ok = std::process::Command::new("bash")
            .arg(common::ci_script("slurm.sh"))
            .arg("stop-controller")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "slurm.sh stop-controller failed");
        Controller
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let ok = std::process::Command::new("bash")
            .arg(common::ci_script("slurm.sh"))
            .arg("start-controller")
            .status()
            .is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            panic!("slurm.sh start-controller failed");
        }
    }
}

/// slurmctld stopped while units run: polls fail or say they are still going (never
/// Failed); started again, the units finish right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_survive_a_controller_outage() {
    let _lock = SlurmLock::exclusive();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&[
        ("system", "slurm".into()),
        ("status_timeout_secs", Value::Integer(30)),
    ]);
    let specs: Vec<_> = (0..3u32)
        .map(|i| {
            spec(
                &home,
                JobRef::subjob(5, i),
                &ShellJob::new("sleep 8; echo finished > done.txt").output("done.txt"),
            )
        })
        .collect();
    let refs = submit(&backend, &specs).await;
    let long = submit(
        &backend,
        &[spec(&home, JobRef::job(6), &ShellJob::new("sleep 120"))],
    )
    .await;
    let all: Vec<BackendRef> = refs.iter().chain(&long).cloned().collect();
    poll_until(&backend, &all, Duration::from_secs(120), "to run", |r| {
        r.status == RemoteStatus::Running
    })
    .await;

    let controller = Controller::stop();
    // A kill while it is down fails as a whole, and leaves no kill record behind.
    let killed = backend.kill(&long).await;
    assert!(killed.is_err(), "kill with slurmctld down: {killed:?}");
    // While it is down (the units end meanwhile): an error, or units still going.
    let down_until = Instant::now() + Duration::from_secs(12);
    let mut errors = 0;
    while Instant::now() < down_until || errors < 2 {
        match poll_all(&backend, &refs).await {
            Err(e) => {
                errors += 1;
                assert!(e.contains("squeue"), "the error names the command: {e}");
            }
            Ok(reports) => {
                for rep in reports {
                    assert!(
                        matches!(
                            rep.status,
                            RemoteStatus::Queued | RemoteStatus::Running | RemoteStatus::Unknown
                        ),
                        "with slurmctld down a unit was reported {rep:?}"
                    );
                }
            }
        }
    }
    drop(controller);
    let reports = until_final(&backend, &refs, Duration::from_secs(120)).await;
    for rep in &reports {
        assert_eq!(rep.status, RemoteStatus::Succeeded, "{rep:?}");
    }
    let still = poll_all(&backend, &long).await.expect("a poll");
    assert_eq!(
        still[0].status,
        RemoteStatus::Running,
        "the failed kill was not recorded"
    );
    let answers = backend
        .kill(&long)
        .await
        .expect("kill, now that it is back");
    assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
    let reports = until_final(&backend, &long, Duration::from_secs(60)).await;
    assert_eq!(reports[0].status, RemoteStatus::Killed);
}

/// A unit whose wrapper died without an exit record: Slurm says FAILED while it lists
/// it; once Slurm has forgotten it (MinJobAge), it is Absent, never Succeeded. A unit
/// with an id Slurm never gave is Absent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_the_scheduler_lost_is_absent() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&[("system", "slurm".into())]);
    // The program kills the wrapper that would record its end.
    let refs = submit(
        &backend,
        &[spec(
            &home,
            JobRef::job(9),
            &ShellJob::new("kill -9 $PPID; sleep 1"),
        )],
    )
    .await;
    let seen = poll_until(
        &backend,
        &refs,
        Duration::from_secs(120),
        "to end without a record",
        |r| r.status != RemoteStatus::Queued && r.status != RemoteStatus::Running,
    )
    .await;
    assert_eq!(
        seen[0].status,
        RemoteStatus::Failed,
        "Slurm lists it FAILED: {:?}",
        seen[0]
    );
    assert!(seen[0].native_state.starts_with("FAILED"), "{:?}", seen[0]);
    let gone = poll_until(
        &backend,
        &refs,
        Duration::from_secs(240),
        "for Slurm to forget it",
        |r| r.status != RemoteStatus::Failed,
    )
    .await;
    assert_eq!(gone[0].status, RemoteStatus::Absent, "{:?}", gone[0]);
    assert!(
        gone[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no exit record"))
    );

    common::a_unit_never_given_is_absent(&home, &backend, "slurm:999999_0").await;
}

/// A submission cut off before ganga recorded its id is found by its chunk's key in the
/// listing; a run never handed over is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_submission_is_found() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&[("system", "slurm".into())]);
    common::a_cut_off_submission_is_found(&home, &backend, "--hold").await;
}

/// A thousand units go as one array, in one sbatch; one scancel per 500 ids kills them.
/// The time taken is printed (measured, not asserted: see docs/backends/batch.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_units_in_one_submission() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&slurm_config(&home));
    let held = ShellJob::new("exit 0").option("extra_options", Value::List(vec!["--hold".into()]));
    let specs: Vec<_> = (0..1000u32)
        .map(|i| spec(&home, JobRef::subjob(11, i), &held))
        .collect();
    let started = Instant::now();
    let refs = submit(&backend, &specs).await;
    let took = started.elapsed();
    println!(
        "submitting 1000 units to Slurm took {} ms",
        took.as_millis()
    );
    assert_eq!(home.calls("sbatch"), 1);
    let reports = poll_all(&backend, &refs).await.expect("a poll");
    assert!(
        reports.iter().all(|r| r.status == RemoteStatus::Queued),
        "held: queued"
    );
    assert_eq!(reports[0].native_state, "PENDING (JobHeldUser)");
    let answers = backend.kill(&refs).await.expect("kill");
    assert!(answers.iter().all(|(_, a)| a.is_ok()));
    assert_eq!(home.calls("scancel"), 2, "1000 ids, 500 per scancel");
    let reports = poll_all(&backend, &refs).await.expect("a poll");
    assert!(reports.iter().all(|r| r.status == RemoteStatus::Killed));
}

/// Bad per-job options fail that job alone, naming the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_their_job_alone() {
    let _lock = SlurmLock::shared();
    require("slurm");
    let home = Home::new();
    let backend = home.backend(&[("system", "slurm".into())]);
    let good = spec(&home, JobRef::job(1), &ShellJob::new("exit 0"));
    let typo = spec(
        &home,
        JobRef::job(2),
        &ShellJob::new("exit 0").option("queu", "debug"),
    );
    let partition = spec(
        &home,
        JobRef::job(3),
        &ShellJob::new("exit 0").option("queue", "nosuchpartition"),
    );
    let answers = backend
        .submit(&[good.clone(), typo, partition])
        .await
        .expect("submit");
    let answer = |j: u64| {
        answers
            .iter()
            .find(|(job, _)| *job == JobRef::job(j))
            .map(|(_, a)| a.clone())
    };
    assert!(answer(1).is_some_and(|a| a.is_ok()));
    assert!(
        answer(2).is_some_and(|a| a.is_err_and(|e| e.contains("unknown backend option `queu`")))
    );
    assert!(
        answer(3)
            .is_some_and(|a| a.is_err_and(|e| e.contains("sbatch") && e.contains("partition"))),
        "{:?}",
        answer(3)
    );
    let refs: Vec<BackendRef> = answers
        .iter()
        .filter_map(|(j, a)| a.as_ref().ok().map(|s| (j, s)))
        .map(|(j, s)| BackendRef {
            job: *j,
            id: s.id.clone(),
            run: 1,
            workspace: good.workspace.clone(),
        })
        .collect();
    until_final(&backend, &refs, Duration::from_secs(120)).await;
}
