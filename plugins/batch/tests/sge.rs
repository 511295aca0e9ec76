//! The Batch backend on a real Son of Grid Engine (single node, started by
//! `.ci/batch/sge.sh start`). Every test fails, saying how to start it, when it is not
//! running.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Home, collect_outputs, conforms, indexed_specs, logged_config, poll_all, poll_until, require,
    spec, submit, until_final,
};
use ganga_core::{JobRef, RemoteStatus, Value};
use ganga_test_support::conformance::ShellJob;

const QSUB: &str = "/usr/bin/qsub";
const QSTAT: &str = "/usr/bin/qstat";
const QDEL: &str = "/usr/bin/qdel";

fn sge_config(home: &Home) -> Vec<(&'static str, Value)> {
    logged_config(
        home,
        "sge",
        &[("qsub", QSUB), ("qstat", QSTAT), ("qdel", QDEL)],
    )
}

/// The Grid Engine job number of a unit id (`sge:45.2` → `45`) and its task.
fn job_and_task(id: &str) -> (String, String) {
    let native = id.trim_start_matches("sge:");
    let (job, task) = native.split_once('.').expect("JOB.TASK");
    (job.to_owned(), task.to_owned())
}

/// Deletes a task behind the backend's back, as an administrator would.
fn qdel_as_admin(id: &str) {
    let (job, task) = job_and_task(id);
    let out = Command::new(QDEL)
        .args([&job, "-t", &task])
        .output()
        .expect("qdel runs");
    assert!(
        out.status.success(),
        "qdel: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_sge() {
    require("sge");
    let home = Home::new();
    conforms(&home.backend(&[("system", "sge".into())])).await;
}

/// A split job goes as one array (one `qsub -t`), each poll is one `qstat`, and every
/// subjob completes with its outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_job_completes_from_one_qsub() {
    require("sge");
    let home = Home::new();
    let backend = home.backend(&sge_config(&home));
    let specs = indexed_specs(&home, 4, 20, "echo \"item $1\" > out.txt", "out.txt");
    let refs = submit(&backend, &specs).await;
    assert_eq!(home.calls("qsub"), 1, "20 units, one qsub -t 1-20");
    let before = home.calls("qstat");
    poll_all(&backend, &refs).await.expect("a poll");
    assert_eq!(home.calls("qstat"), before + 1, "one qstat for 20 units");
    let reports = until_final(&backend, &refs, Duration::from_secs(180)).await;
    for rep in &reports {
        assert_eq!(rep.status, RemoteStatus::Succeeded, "{rep:?}");
    }
    collect_outputs(&backend, &refs, &specs).await;
    for (i, s) in specs.iter().enumerate() {
        let text = std::fs::read_to_string(s.output_dir.join("out.txt")).expect("collected");
        assert_eq!(text, format!("item {i}\n"));
    }
}

/// Units deleted behind the backend's back: one that never started leaves nothing, and
/// is Absent; one that was running is Killed, from Grid Engine's accounting file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_deleted_by_an_administrator() {
    require("sge");
    let home = Home::new();
    let backend = home.backend(&[("system", "sge".into())]);
    let held = ShellJob::new("exit 0").option("extra_options", Value::List(vec!["-h".into()]));
    let running = ShellJob::new("sleep 120");
    let refs = submit(
        &backend,
        &[
            spec(&home, JobRef::job(1), &held),
            spec(&home, JobRef::job(2), &running),
        ],
    )
    .await;
    let seen = poll_until(
        &backend,
        &refs,
        Duration::from_secs(120),
        "to be held and running",
        |r| matches!(r.status, RemoteStatus::Queued | RemoteStatus::Running),
    )
    .await;
    assert_eq!(seen[0].native_state, "hqw");
    poll_until(
        &backend,
        &refs[1..],
        Duration::from_secs(120),
        "to run",
        |r| r.status == RemoteStatus::Running,
    )
    .await;
    qdel_as_admin(&refs[0].id);
    qdel_as_admin(&refs[1].id);
    let reports = poll_until(
        &backend,
        &refs,
        Duration::from_secs(120),
        "to be gone",
        |r| !matches!(r.status, RemoteStatus::Queued | RemoteStatus::Running),
    )
    .await;
    assert_eq!(
        reports[0].status,
        RemoteStatus::Absent,
        "never ran, no record: {:?}",
        reports[0]
    );
    assert_eq!(
        reports[1].status,
        RemoteStatus::Killed,
        "the accounting says failed 100: {:?}",
        reports[1]
    );
    assert!(
        reports[1].native_state.contains("failed 100"),
        "{:?}",
        reports[1]
    );
}

/// A job Grid Engine cannot start stays in `Eqw`: the unit is Failed, and the backend
/// deletes the job so that it does not stay queued for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_start_fails_and_is_deleted() {
    require("sge");
    let home = Home::new();
    let backend = home.backend(&[("system", "sge".into())]);
    // Its own output file cannot be written: Grid Engine cannot start it.
    let broken = ShellJob::new("exit 0").option(
        "extra_options",
        Value::List(vec!["-o".into(), "/nonexistent/dir/out".into()]),
    );
    let refs = submit(&backend, &[spec(&home, JobRef::job(1), &broken)]).await;
    let reports = poll_until(&backend, &refs, Duration::from_secs(120), "to fail", |r| {
        r.status == RemoteStatus::Failed
    })
    .await;
    assert!(reports[0].native_state.contains('E'), "{:?}", reports[0]);
    let (job, _) = job_and_task(&refs[0].id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(QSTAT)
            .args(["-j", &job])
            .output()
            .expect("qstat runs");
        if !out.status.success() {
            break; // "Following jobs do not exist"
        }
        assert!(Instant::now() < deadline, "job {job} was never deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A submission cut off before ganga recorded its id is found by its key, which Grid
/// Engine shows in the job's name; a run never handed over is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_submission_is_found() {
    require("sge");
    let home = Home::new();
    let backend = home.backend(&[("system", "sge".into())]);
    common::a_cut_off_submission_is_found(&home, &backend, "-h").await;
}
