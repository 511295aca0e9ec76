//! The PBS flavour for real, through Debian's `slurm-wlm-torque` wrappers (Torque-style
//! `qsub`, `qstat -f`, `qdel` on top of Slurm), installed and started by
//! `.ci/batch/pbs.sh start`. Every test fails, saying how to start them, when they are
//! not there.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Home, SlurmLock, commands, conforms, poll_all, poll_until, require, spec, submit, until_final,
};
use ganga_core::{Backend, JobRef, RemoteStatus, Value};
use ganga_test_support::conformance::ShellJob;

/// Where `pbs.sh` puts the wrappers (its PBS_PREFIX).
fn wrappers() -> PathBuf {
    PathBuf::from(std::env::var("PBS_PREFIX").unwrap_or_else(|_| "/opt/ganga-ci/torque".into()))
        .join("bin")
}

fn pbs_config(home: &Home, logged: bool) -> Vec<(&'static str, Value)> {
    let bin = wrappers();
    let path = |name: &str| -> PathBuf {
        let real = bin.join(name);
        if logged {
            home.logged(name, &real.display().to_string())
        } else {
            real
        }
    };
    let (qsub, qstat, qdel) = (path("qsub"), path("qstat"), path("qdel"));
    vec![
        ("system", "pbs".into()),
        // Torque's `qstat -x` is XML, not "finished jobs too".
        ("pbs_history", Value::Bool(false)),
        (
            "commands",
            commands(&[("qsub", &qsub as &Path), ("qstat", &qstat), ("qdel", &qdel)]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_through_the_torque_wrappers() {
    let _lock = SlurmLock::shared();
    require("pbs");
    let home = Home::new();
    conforms(&home.backend(&pbs_config(&home, false))).await;
}

/// Submit, status and kill through `qsub`, `qstat -f` and `qdel`: one `qsub` per unit
/// (no arrays in this flavour), one `qstat` per poll, one `qdel` for the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_status_and_kill_through_the_torque_wrappers() {
    let _lock = SlurmLock::shared();
    require("pbs");
    let home = Home::new();
    let backend = home.backend(&pbs_config(&home, true));
    let specs = [
        spec(
            &home,
            JobRef::subjob(1, 0),
            &ShellJob::new("echo hello > hello.txt").output("hello.txt"),
        ),
        spec(&home, JobRef::subjob(1, 1), &ShellJob::new("exit 3")),
        spec(&home, JobRef::subjob(1, 2), &ShellJob::new("sleep 120")),
    ];
    let refs = submit(&backend, &specs).await;
    assert_eq!(home.calls("qsub"), 3, "one qsub per unit");
    assert!(refs.iter().all(|r| r.id.starts_with("pbs:")), "{refs:?}");

    let before = home.calls("qstat");
    poll_all(&backend, &refs).await.expect("a poll");
    assert_eq!(home.calls("qstat"), before + 1, "one qstat for all units");

    let ended = until_final(&backend, &refs[..2], Duration::from_secs(120)).await;
    assert_eq!(ended[0].status, RemoteStatus::Succeeded, "{:?}", ended[0]);
    assert_eq!(
        (ended[1].status, ended[1].exit_code),
        (RemoteStatus::Failed, Some(3))
    );
    poll_until(
        &backend,
        &refs[2..],
        Duration::from_secs(120),
        "to run",
        |r| r.status == RemoteStatus::Running,
    )
    .await;
    // The wrapper shows Torque's letters, kept as the native state.
    let running = poll_all(&backend, &refs[2..]).await.expect("a poll");
    assert_eq!(running[0].native_state, "R");

    let before = home.calls("qdel");
    let answers = backend.kill(&refs).await.expect("kill");
    assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
    assert_eq!(
        home.calls("qdel"),
        before + 1,
        "one qdel for the unit still running"
    );
    let reports = until_final(&backend, &refs, Duration::from_secs(60)).await;
    assert_eq!(reports[2].status, RemoteStatus::Killed);
    assert_eq!(
        reports[0].status,
        RemoteStatus::Succeeded,
        "ended before the kill"
    );

    common::a_unit_never_given_is_absent(&home, &backend, "pbs:999999").await;
}
