//! The DIRAC backend against a real DiracX server (`.ci/diracx.sh start`), at the level of
//! the Backend contract: what the monitor and the CLI see. The test plays DIRAC's pilots.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use common::{Server, TO_DONE, TO_FAILED, TO_RUNNING, as_ids, ids_of, reference, spec};
use futures_util::StreamExt as _;
use ganga_core::{
    Backend as _, BackendErrorKind, BackendRef, JobRef, OutputsRequest, PeekFile, PollReport,
    RemoteStatus, SubmitSpec, UnitRun,
};

fn reports(answers: ganga_core::Answers<PollReport>) -> BTreeMap<JobRef, PollReport> {
    answers
        .into_iter()
        .map(|(job, a)| {
            (
                job,
                a.unwrap_or_else(|e| panic!("no report for {job}: {e}")),
            )
        })
        .collect()
}

fn refs(specs: &[SubmitSpec], ids: &[String]) -> Vec<BackendRef> {
    specs
        .iter()
        .zip(ids)
        .map(|(s, id)| reference(s, id))
        .collect()
}

fn input_file(dir: &std::path::Path) -> PathBuf {
    let input = dir.join("input.txt");
    std::fs::write(&input, format!("input {}\n", fastrand::u64(..))).expect("input written");
    input
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_the_device_flow_keeps_owner_only_tokens() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    let output = server.login(&backend).await;
    assert!(output.contains("Logged in to DiracX"), "{output}");
    assert!(output.contains("as alice"), "{output}");
    let tokens = home.path().join("dirac").join("tokens.json");
    let mode = std::fs::metadata(&tokens)
        .expect("tokens stored")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let step = backend
        .command(&["whoami".to_owned()], None)
        .await
        .expect("whoami runs");
    assert_eq!(step.exit_code, 0, "{}", step.output);
    assert!(
        step.output.starts_with("alice (VO testvo, group user"),
        "{}",
        step.output
    );
    let step = backend
        .command(&["logout".to_owned()], None)
        .await
        .expect("logout runs");
    assert_eq!(step.exit_code, 0, "{}", step.output);
    assert!(!tokens.exists());
    let step = backend
        .command(&["whoami".to_owned()], None)
        .await
        .expect("whoami runs");
    assert_eq!(step.exit_code, 1);
    assert!(step.output.contains("ganga dirac login"), "{}", step.output);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_job_of_100_goes_in_bulk_and_ends_with_its_outputs() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let input = input_file(home.path());
    let specs: Vec<SubmitSpec> = (0..100)
        .map(|i| {
            spec(
                home.path(),
                JobRef::subjob(1, i),
                std::slice::from_ref(&input),
            )
        })
        .collect();

    let before = backend.requests_sent();
    let answers = backend.submit(&specs).await.expect("submitted");
    let sent = backend.requests_sent() - before;
    let ids = ids_of(&specs, &answers);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "every subjob has its own DIRAC job");
    // 5 submissions of 20, the sandbox asked for once and uploaded once at most.
    assert!(sent <= 8, "{sent} requests to submit 100 subjobs");

    let all = refs(&specs, &ids);
    let before = backend.requests_sent();
    let seen = reports(backend.poll_all(&all).await.expect("polled"));
    assert_eq!(backend.requests_sent() - before, 1, "one search for all");
    assert_eq!(seen.len(), 100);
    for r in seen.values() {
        assert_eq!(r.status, RemoteStatus::Queued, "{r:?}");
        assert_eq!(r.native_state, "Received (Job accepted)");
    }
    let rows = server.rows(&as_ids(&ids)).await;
    assert!(rows.values().all(|r| {
        r["JobName"]
            .as_str()
            .is_some_and(|n| n.starts_with("ganga:t"))
    }));

    let pilot = server.pilot().await;
    let dirac_ids = as_ids(&ids);
    pilot.walk(&dirac_ids, TO_RUNNING).await;
    let seen = reports(backend.poll_all(&all).await.expect("polled"));
    assert!(
        seen.values().all(|r| r.status == RemoteStatus::Running),
        "{seen:?}"
    );
    assert!(
        seen.values()
            .all(|r| r.native_state == "Running (Application)")
    );

    // Each job's JobWrapper uploads its own output sandbox, then the job is Done.
    let uploads: Vec<_> = dirac_ids
        .iter()
        .map(|id| {
            let pilot = &pilot;
            async move {
                let result = format!("result of DIRAC job {id}\n");
                let out = format!("hello from {id}\n");
                pilot
                    .upload_output(
                        *id,
                        &[
                            ("result.txt", result.as_bytes()),
                            ("std.out", out.as_bytes()),
                            ("std.err", b""),
                        ],
                    )
                    .await;
            }
        })
        .collect();
    // Workers finish over time, not all in the same instant.
    futures_util::stream::iter(uploads)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    pilot.walk(&dirac_ids, TO_DONE).await;

    let seen = reports(backend.poll_all(&all).await.expect("polled"));
    assert!(
        seen.values().all(|r| r.status == RemoteStatus::Succeeded),
        "{seen:?}"
    );

    let requests: Vec<OutputsRequest> = specs
        .iter()
        .zip(&all)
        .map(|(s, r)| OutputsRequest {
            job: r.clone(),
            output_dir: s.output_dir.clone(),
            patterns: s.output_patterns.clone(),
        })
        .collect();
    let collected = backend.outputs(&requests).await.expect("outputs");
    assert_eq!(collected.len(), 100);
    for (job, report) in &collected {
        let report = report.as_ref().unwrap_or_else(|e| panic!("{job}: {e}"));
        assert_eq!(
            report.collected,
            ["stdout", "stderr", "result.txt"],
            "{job}"
        );
        assert!(
            report.unmatched.is_empty() && report.skipped.is_empty(),
            "{job}: {report:?}"
        );
    }
    for (s, id) in specs.iter().zip(&ids) {
        let result =
            std::fs::read_to_string(s.output_dir.join("result.txt")).expect("result on disk");
        assert_eq!(result, format!("result of DIRAC job {id}\n"));
        let stdout = std::fs::read_to_string(s.output_dir.join("stdout")).expect("stdout on disk");
        assert_eq!(stdout, format!("hello from {id}\n"));
    }
    // Idempotent: again, the same answer and the same files.
    let again = backend
        .outputs(&requests[..3])
        .await
        .expect("outputs again");
    for (job, report) in again {
        assert_eq!(
            report.expect("collected").collected,
            ["stdout", "stderr", "result.txt"],
            "{job}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_fails_with_dirac_minor_status_as_its_reason() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let specs = vec![spec(home.path(), JobRef::job(7), &[])];
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let pilot = server.pilot().await;
    let dirac_ids = as_ids(&ids);
    pilot.walk(&dirac_ids, TO_RUNNING).await;
    pilot
        .upload_output(dirac_ids[0], &[("std.err", b"segfault\n")])
        .await;
    pilot.walk(&dirac_ids, TO_FAILED).await;
    let seen = reports(backend.poll(&refs(&specs, &ids)).await.expect("polled"));
    let r = &seen[&JobRef::job(7)];
    assert_eq!(r.status, RemoteStatus::Failed);
    assert_eq!(
        r.reason.as_deref(),
        Some("Application Finished With Errors")
    );
    assert_eq!(r.native_state, "Failed (Application Finished With Errors)");
    assert!(r.started.is_some(), "DIRAC's StartExecTime: {r:?}");
    assert!(r.ended.is_some(), "DIRAC's EndExecTime: {r:?}");

    // A failed job's outputs are collected too; its result is missing.
    let req = OutputsRequest {
        job: reference(&specs[0], &ids[0]),
        output_dir: specs[0].output_dir.clone(),
        patterns: specs[0].output_patterns.clone(),
    };
    let out = backend.outputs(&[req]).await.expect("outputs");
    let report = out[0].1.as_ref().expect("collected");
    assert_eq!(report.collected, ["stderr"]);
    assert_eq!(report.unmatched, ["result.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_stops_a_job_and_never_an_ended_one() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let specs: Vec<SubmitSpec> = (0..3)
        .map(|i| spec(home.path(), JobRef::subjob(3, i), &[]))
        .collect();
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let dirac_ids = as_ids(&ids);
    let pilot = server.pilot().await;
    pilot.walk(&dirac_ids[1..], TO_RUNNING).await;
    pilot.walk(&dirac_ids[2..], TO_DONE).await;

    let all = refs(&specs, &ids);
    // A DIRAC id DiracX no longer knows (purged long ago) must not block the others.
    let mut with_stale = all.clone();
    with_stale.push(BackendRef {
        job: JobRef::subjob(3, 9),
        id: "999999998".into(),
        run: 1,
        workspace: specs[0].workspace.clone(),
    });
    let killed: BTreeMap<JobRef, Result<(), String>> = backend
        .kill(&with_stale)
        .await
        .expect("kill answers")
        .into_iter()
        .collect();
    assert_eq!(
        killed[&JobRef::subjob(3, 0)],
        Ok(()),
        "a queued job is killed"
    );
    assert_eq!(
        killed[&JobRef::subjob(3, 1)],
        Ok(()),
        "a running job is killed"
    );
    let stale = killed[&JobRef::subjob(3, 9)]
        .as_ref()
        .expect_err("an unknown job is not killed");
    assert!(stale.contains("no longer known"), "{stale}");
    let done = killed[&JobRef::subjob(3, 2)]
        .as_ref()
        .expect_err("a done job is not killed");
    assert!(done.contains("it is Done"), "{done}");

    let seen = reports(backend.poll_all(&all).await.expect("polled"));
    assert_eq!(seen[&JobRef::subjob(3, 0)].status, RemoteStatus::Killed);
    assert_eq!(seen[&JobRef::subjob(3, 1)].status, RemoteStatus::Killed);
    assert_eq!(
        seen[&JobRef::subjob(3, 2)].status,
        RemoteStatus::Succeeded,
        "its end is not rewritten"
    );
    assert_eq!(
        seen[&JobRef::subjob(3, 0)].native_state,
        "Killed (Killed by ganga)"
    );

    // `ganga dirac delete`: through the same status endpoint, each answer read back.
    let mut args = vec!["delete".to_owned()];
    args.extend(ids.iter().cloned());
    args.push("999999999".to_owned());
    let step = backend.command(&args, None).await.expect("a command step");
    assert_eq!(
        step.exit_code, 1,
        "one of them does not exist: {}",
        step.output
    );
    assert!(
        step.output
            .contains(&format!("DIRAC job {}: deleted", ids[0])),
        "{}",
        step.output
    );
    assert!(
        step.output
            .contains(&format!("DIRAC job {}: deleted", ids[2])),
        "{}",
        step.output
    );
    assert!(
        step.output.contains("DIRAC job 999999999: not deleted"),
        "{}",
        step.output
    );
    let rows = server.rows(&dirac_ids).await;
    assert!(rows.values().all(|r| r["Status"] == "Deleted"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resubmit_reschedules_where_dirac_allows_and_submits_afresh_where_not() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let specs: Vec<SubmitSpec> = (0..3)
        .map(|i| spec(home.path(), JobRef::subjob(4, i), &[]))
        .collect();
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let dirac_ids = as_ids(&ids);
    let pilot = server.pilot().await;
    pilot.walk(&dirac_ids, TO_RUNNING).await;
    // Two fail; the third is still running (say its node went away): DIRAC can
    // reschedule that one.
    pilot.walk(&dirac_ids[..2], TO_FAILED).await;
    let seen = reports(backend.poll_all(&refs(&specs, &ids)).await.expect("polled"));
    assert_eq!(seen[&JobRef::subjob(4, 0)].status, RemoteStatus::Failed);

    let again: Vec<SubmitSpec> = specs
        .iter()
        .zip(&ids)
        .map(|(s, id)| SubmitSpec {
            run: 2,
            previous_id: Some(id.clone()),
            ..s.clone()
        })
        .collect();
    let new_ids = ids_of(&again, &backend.submit(&again).await.expect("resubmitted"));
    assert_ne!(
        new_ids[0], ids[0],
        "a failed DIRAC job is not rescheduled: a new one"
    );
    assert_ne!(new_ids[1], ids[1]);
    assert_eq!(
        new_ids[2], ids[2],
        "the running one runs again under its id"
    );
    let seen = reports(
        backend
            .poll_all(&refs(&again, &new_ids))
            .await
            .expect("polled"),
    );
    for r in seen.values() {
        assert_eq!(r.status, RemoteStatus::Queued, "{r:?}");
    }
    let rows = server.rows(&as_ids(&new_ids)).await;
    let name = |id: &str| {
        rows[&id.parse::<i64>().expect("id")]["JobName"]
            .as_str()
            .expect("name")
            .to_owned()
    };
    assert!(
        name(&new_ids[0]).ends_with(":4.0:r2"),
        "{}",
        name(&new_ids[0])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_renewed_without_the_user_noticing() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let tokens_path = home.path().join("dirac").join("tokens.json");
    let specs = vec![spec(home.path(), JobRef::job(5), &[])];

    // The access token expired (and the file says so): it is renewed before the call.
    let mut stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tokens_path).expect("tokens")).expect("json");
    let first_refresh = stored["refresh_token"].clone();
    stored["access_token"] = server
        .expired(stored["access_token"].as_str().expect("a token"))
        .into();
    stored["expires_at"] = (jiff::Timestamp::now().as_second() - 120).into();
    std::fs::write(&tokens_path, serde_json::to_vec(&stored).expect("json")).expect("written");
    let fresh = server.backend(home.path(), &server.url, &[]);
    let ids = ids_of(
        &specs,
        &fresh
            .submit(&specs)
            .await
            .expect("submitted with a renewed token"),
    );
    let renewed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tokens_path).expect("tokens")).expect("json");
    assert_ne!(renewed["access_token"], stored["access_token"]);
    assert_ne!(
        renewed["refresh_token"], first_refresh,
        "DiracX rotates refresh tokens"
    );

    // The file claims the token is good, the server says it expired (401): renewed once,
    // then the call goes through.
    let mut lying = renewed.clone();
    lying["access_token"] = server
        .expired(renewed["access_token"].as_str().expect("a token"))
        .into();
    lying["expires_at"] = (jiff::Timestamp::now().as_second() + 3600).into();
    std::fs::write(&tokens_path, serde_json::to_vec(&lying).expect("json")).expect("written");
    let fresh = server.backend(home.path(), &server.url, &[]);
    let seen = reports(
        fresh
            .poll(&refs(&specs, &ids))
            .await
            .expect("polled with a renewed token"),
    );
    assert_eq!(seen[&JobRef::job(5)].status, RemoteStatus::Queued);
    let renewed_again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tokens_path).expect("tokens")).expect("json");
    assert_ne!(renewed_again["access_token"], lying["access_token"]);
    let mode = std::fs::metadata(&tokens_path)
        .expect("tokens")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "still owner-only after renewing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_session_is_a_clear_error_that_changes_no_job() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let specs = vec![spec(home.path(), JobRef::job(6), &[])];
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));

    let tokens_path = home.path().join("dirac").join("tokens.json");
    let mut stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tokens_path).expect("tokens")).expect("json");
    let resp = server
        .http
        .post(format!("{}/api/auth/revoke", server.url))
        .form(&[
            ("token", stored["refresh_token"].as_str().expect("refresh")),
            ("client_id", "myDIRACClientID"),
        ])
        .send()
        .await
        .expect("revoke answers");
    assert!(resp.status().is_success());
    stored["access_token"] = server
        .expired(stored["access_token"].as_str().expect("a token"))
        .into();
    std::fs::write(&tokens_path, serde_json::to_vec(&stored).expect("json")).expect("written");

    let revoked = server.backend(home.path(), &server.url, &[]);
    let all = refs(&specs, &ids);
    let err = revoked
        .poll_all(&all)
        .await
        .expect_err("no valid credentials");
    assert_eq!(err.kind, BackendErrorKind::Unauthorized, "{err}");
    assert!(
        err.message.contains("log in again: ganga dirac login"),
        "{err}"
    );
    let err = revoked.kill(&all).await.expect_err("no valid credentials");
    assert_eq!(err.kind, BackendErrorKind::Unauthorized, "{err}");
    let err = revoked
        .submit(&specs)
        .await
        .expect_err("no valid credentials");
    assert_eq!(err.kind, BackendErrorKind::Unauthorized, "{err}");
    let rows = server.rows(&as_ids(&ids)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows.values().next().expect("the job")["Status"],
        "Received",
        "the kill changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_going_away_is_an_error_and_its_return_recovers() {
    let server = Server::get().await;
    // A server of this test's own, over the same databases, to stop and start again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let port_text = port.to_string();
    server.script(&["extra-start", &port_text]);
    let url = format!("http://127.0.0.1:{port}");
    struct Stop<'a>(&'a Server, String);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new(&self.0.script)
                .args(["extra-stop", &self.1])
                .status();
        }
    }
    let _stop = Stop(&server, port_text.clone());

    // A token from a file, as in CI.
    let home = tempfile::tempdir().expect("home");
    let token_file = home.path().join("ci-token.json");
    std::fs::write(&token_file, server.token("alice", "user").await.to_string())
        .expect("token written");
    let backend = server.backend(
        home.path(),
        &url,
        &[("GANGA_DIRAC_TOKEN_FILE", token_file.display().to_string())],
    );
    let specs = vec![spec(home.path(), JobRef::job(8), &[])];
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let all = refs(&specs, &ids);
    assert_eq!(
        reports(backend.poll_all(&all).await.expect("polled"))[&JobRef::job(8)].status,
        RemoteStatus::Queued
    );

    server.script(&["extra-stop", &port_text]);
    let err = backend
        .poll_all(&all)
        .await
        .expect_err("the server is gone");
    assert_eq!(err.kind, BackendErrorKind::Failed);
    assert!(err.message.contains("cannot be reached"), "{err}");
    let err = backend.kill(&all).await.expect_err("the server is gone");
    assert!(err.message.contains("cannot be reached"), "{err}");

    server.script(&["extra-start", &port_text]);
    let seen = reports(
        backend
            .poll_all(&all)
            .await
            .expect("polled after the server came back"),
    );
    assert_eq!(
        seen[&JobRef::job(8)].status,
        RemoteStatus::Queued,
        "the kill during the outage changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn find_recognises_a_submission_whose_answer_was_lost() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let specs: Vec<SubmitSpec> = (0..2)
        .map(|i| spec(home.path(), JobRef::subjob(9, i), &[]))
        .collect();
    let ids = ids_of(
        &specs[..1],
        &backend.submit(&specs[..1]).await.expect("submitted"),
    );
    let units: Vec<UnitRun> = specs
        .iter()
        .map(|s| UnitRun {
            job: s.job,
            run: 1,
            workspace: s.workspace.clone(),
        })
        .chain([UnitRun {
            job: specs[0].job,
            run: 2,
            workspace: specs[0].workspace.clone(),
        }])
        .collect();
    let found = backend.find(&units).await.expect("find answers");
    assert_eq!(found.len(), 3);
    assert_eq!(
        found[0],
        (
            JobRef::subjob(9, 0),
            Ok(Some(ganga_core::Submitted::id(ids[0].clone())))
        )
    );
    assert_eq!(
        found[1],
        (JobRef::subjob(9, 1), Ok(None)),
        "never handed over"
    );
    assert_eq!(
        found[2],
        (JobRef::subjob(9, 0), Ok(None)),
        "run 2 was never handed over"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peek_shows_stdout_once_the_sandbox_is_there() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let input = input_file(home.path());
    let specs = vec![spec(home.path(), JobRef::job(10), &[input])];
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let job = reference(&specs[0], &ids[0]);
    let err = backend
        .peek(&job, &PeekFile::Stdout, 100)
        .await
        .expect_err("nothing to see yet");
    assert!(err.message.contains("no output sandbox yet"), "{err}");

    let pilot = server.pilot().await;
    let id = as_ids(&ids)[0];
    pilot.walk(&[id], TO_RUNNING).await;
    pilot
        .upload_output(
            id,
            &[
                ("std.out", b"line 1\nline 2\n"),
                ("log/app.log", b"started\n"),
            ],
        )
        .await;
    pilot.walk(&[id], TO_DONE).await;
    assert_eq!(
        backend
            .peek(&job, &PeekFile::Stdout, 7)
            .await
            .expect("peeked"),
        b"line 2\n"
    );
    assert_eq!(
        backend
            .peek(&job, &PeekFile::Path("log/app.log".into()), 100)
            .await
            .expect("peeked"),
        b"started\n"
    );
    let err = backend
        .peek(&job, &PeekFile::Path("../x".into()), 10)
        .await
        .expect_err("outside");
    assert!(err.message.contains(".."), "{err}");
    let err = backend
        .peek(&job, &PeekFile::Stderr, 10)
        .await
        .expect_err("no stderr");
    assert!(err.message.contains("std.err"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_from_the_environment_says_which() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let expired = server.expired(&server.access_token("alice", "user").await);
    let backend = server.backend(home.path(), &server.url, &[("GANGA_DIRAC_TOKEN", expired)]);
    let specs = vec![spec(home.path(), JobRef::job(11), &[])];
    let err = backend.submit(&specs).await.expect_err("expired token");
    assert_eq!(err.kind, BackendErrorKind::Unauthorized);
    assert!(err.message.contains("GANGA_DIRAC_TOKEN"), "{err}");
    assert!(err.message.contains("expired at"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_jobs_fail_alone() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let backend = server.backend(home.path(), &server.url, &[]);
    server.login(&backend).await;
    let good = spec(home.path(), JobRef::subjob(12, 0), &[]);
    let missing = spec(
        home.path(),
        JobRef::subjob(12, 1),
        &[home.path().join("nope.dat")],
    );
    let mut bad_option = spec(home.path(), JobRef::subjob(12, 2), &[]);
    bad_option.options.insert("queue".into(), "long".into());
    let mut bad_pattern = spec(home.path(), JobRef::subjob(12, 3), &[]);
    bad_pattern.output_patterns = vec!["my results.txt".into()];
    let mut odd_args = spec(home.path(), JobRef::subjob(12, 4), &[]);
    odd_args.args = vec!["a;b".into(), "say \"hi\"".into(), "two\nlines".into()];
    let answers: BTreeMap<JobRef, _> = backend
        .submit(&[good, missing, bad_option, bad_pattern, odd_args])
        .await
        .expect("the call answers")
        .into_iter()
        .collect();
    assert!(answers[&JobRef::subjob(12, 0)].is_ok());
    let e = answers[&JobRef::subjob(12, 1)]
        .as_ref()
        .expect_err("missing input");
    assert!(e.contains("nope.dat"), "{e}");
    let e = answers[&JobRef::subjob(12, 2)]
        .as_ref()
        .expect_err("unknown option");
    assert!(e.contains("`queue`"), "{e}");
    let e = answers[&JobRef::subjob(12, 3)]
        .as_ref()
        .expect_err("a space in a pattern");
    assert!(e.contains("my results.txt"), "{e}");
    assert!(
        answers[&JobRef::subjob(12, 4)].is_ok(),
        "odd arguments travel wrapped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn it_works_as_a_loaded_plugin() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let token_file = home.path().join("token");
    std::fs::write(&token_file, server.access_token("alice", "user").await).expect("token written");
    let mut catalog = ganga_plugin_host::Catalog::new();
    let info = catalog
        .load_file(&ganga_test_support::built_plugin("ganga-backend-dirac"))
        .expect("the plugin loads");
    assert_eq!(info.name, "dirac");
    let mut config = server.config(&server.url);
    config.insert("token_file".into(), token_file.display().to_string().into());
    let context = ganga_plugin_sdk::PluginContext {
        home: home.path().to_path_buf(),
        config,
        home_id: format!("loaded{}", fastrand::u32(..)),
    };
    let backend = catalog.backend("dirac", &context).expect("created");
    let described = backend.describe().await.expect("described");
    assert!(described.capabilities.poll_all && described.capabilities.find);
    let specs = vec![spec(home.path(), JobRef::job(13), &[])];
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let seen = reports(backend.poll_all(&refs(&specs, &ids)).await.expect("polled"));
    assert_eq!(seen[&JobRef::job(13)].status, RemoteStatus::Queued);
    let step = backend
        .command(&["whoami".to_owned()], None)
        .await
        .expect("a command step");
    assert!(step.output.starts_with("alice"), "{}", step.output);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_search_spanning_pages_answers_for_every_job() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let token_file = home.path().join("token.json");
    std::fs::write(&token_file, server.token("alice", "user").await.to_string())
        .expect("token written");
    // Pages of 7 rows instead of 10,000: 23 jobs take 4 pages.
    let mut config = server.config(&server.url);
    config.insert("search_page_size".into(), ganga_core::Value::Integer(7));
    config.insert("token_file".into(), token_file.display().to_string().into());
    let backend = ganga_backend_dirac::DiracBackend::with_env(
        home.path(),
        "paged",
        config,
        std::sync::Arc::new(|_| None),
    )
    .expect("valid settings");
    let specs: Vec<SubmitSpec> = (0..23)
        .map(|i| spec(home.path(), JobRef::subjob(14, i), &[]))
        .collect();
    let ids = ids_of(&specs, &backend.submit(&specs).await.expect("submitted"));
    let pilot = server.pilot().await;
    let dirac_ids = as_ids(&ids);
    pilot.walk(&dirac_ids[20..], TO_RUNNING).await;
    let before = backend.requests_sent();
    let seen = reports(backend.poll_all(&refs(&specs, &ids)).await.expect("polled"));
    assert_eq!(backend.requests_sent() - before, 4, "four pages");
    assert_eq!(seen.len(), 23, "every job answered");
    for (i, s) in specs.iter().enumerate() {
        let want = if i >= 20 {
            RemoteStatus::Running
        } else {
            RemoteStatus::Queued
        };
        assert_eq!(seen[&s.job].status, want, "{}", s.job);
    }
}
