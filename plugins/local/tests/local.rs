//! The Local backend with real processes, in a temporary ganga home: the calls of the
//! contract, one behaviour at a time.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use common::*;
use ganga_backend_local::LocalBackend;
use ganga_core::{
    Backend, BackendRef, JobRef, Options, PeekFile, PollReport, RemoteStatus, SubmitSpec, Value,
};
use ganga_test_support::conformance;

#[tokio::test]
async fn describes_itself() {
    let home = home();
    let d = backend(home.path(), &[])
        .describe()
        .await
        .expect("describe");
    assert_eq!(d.name, "local");
    assert_eq!(d.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(d.poll_interval_secs, 2);
    assert_eq!(d.max_batch, 10_000);
    assert!(d.capabilities.poll_all && d.capabilities.watch && d.capabilities.find);
    assert_eq!(d.options, Some(Vec::new()));
}

#[tokio::test]
async fn a_successful_job_and_its_outputs() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(
        &b,
        &sh(
            home.path(),
            1,
            "echo hello; echo oops >&2; echo data > result.txt; mkdir sub; echo x > sub/a.txt",
        ),
    )
    .await;
    assert!(r.id.parse::<u64>().is_ok(), "id {}", r.id);

    let rep = wait_status(&b, &r, RemoteStatus::Succeeded).await;
    assert_eq!(rep.exit_code, Some(0));
    assert_eq!(rep.native_state, "exited 0");
    assert_eq!(rep.reason, None);
    let (started, ended) = (rep.started.expect("started"), rep.ended.expect("ended"));
    assert!(started <= ended, "{started} > {ended}");
    assert!(rep.actual_ce.is_some());

    let (collected, unmatched) = outputs(&b, &r, &["*.txt", "sub"]).await;
    assert_eq!(collected, ["result.txt", "stderr", "stdout", "sub/a.txt"]);
    assert!(unmatched.is_empty(), "{unmatched:?}");
    assert_eq!(read(&output_dir(&r).join("result.txt")), "data\n");
    assert_eq!(read(&output_dir(&r).join("stdout")), "hello\n");
    assert_eq!(read(&output_dir(&r).join("stderr")), "oops\n");
    assert_eq!(read(&output_dir(&r).join("sub/a.txt")), "x\n");

    // Idempotent: a second call (after a crash, say) gives the same answer.
    assert_eq!(
        outputs(&b, &r, &["*.txt", "sub"]).await,
        (collected, unmatched)
    );
    // The wrapper was its runner's child: it was waited for, not left a zombie.
    let pid = wrapper_pid(&r);
    eventually("the wrapper to be reaped", || async {
        proc_stat(pid).is_none().then_some(())
    })
    .await;
    // A job that has ended is not killed, and stays succeeded.
    let killed = b.kill(std::slice::from_ref(&r)).await.expect("kill call");
    assert_eq!(killed, [(r.job, Ok(()))]);
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Succeeded);
}

#[tokio::test]
async fn a_failing_job() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &sh(home.path(), 2, "echo bad >&2; exit 3")).await;
    let rep = wait_status(&b, &r, RemoteStatus::Failed).await;
    assert_eq!(rep.exit_code, Some(3));
    assert_eq!(rep.native_state, "exited 3");
    assert_eq!(rep.reason.as_deref(), Some("exit code 3"));
    assert!(rep.ended.is_some());
}

#[tokio::test]
async fn a_job_killed_by_a_signal() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &sh(home.path(), 2, "kill -9 $$")).await;
    let rep = wait_status(&b, &r, RemoteStatus::Failed).await;
    assert_eq!(rep.exit_code, Some(137));
    assert_eq!(
        rep.reason.as_deref(),
        Some("killed by signal 9 (exit code 137)")
    );
}

#[tokio::test]
async fn patterns_that_match_nothing_are_unmatched() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(
        &b,
        &sh(home.path(), 3, "echo y > found.txt; echo z > .hidden"),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let (collected, unmatched) = outputs(&b, &r, &["nothing-*.dat", "*.txt", "*hidden"]).await;
    assert_eq!(collected, ["found.txt", "stderr", "stdout"]);
    assert_eq!(unmatched, ["nothing-*.dat", "*hidden"]);
}

#[tokio::test]
async fn outputs_without_the_working_directory() {
    let home = home();
    let b = backend(home.path(), &[("keep_workdir", Value::Bool(false))]);
    let r = submit_one(&b, &sh(home.path(), 3, "echo y > found.txt; echo out")).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let first = outputs(&b, &r, &["*.txt"]).await;
    assert_eq!(first.0, ["found.txt", "stderr", "stdout"]);
    assert!(
        !r.workspace.join("work").exists(),
        "the working directory was kept"
    );
    // Repeated after the working directory is gone: the same answer, and polls still tell.
    assert_eq!(outputs(&b, &r, &["*.txt"]).await, first);
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Succeeded);
    // Peeking reads the collected copy then.
    assert_eq!(read(&output_dir(&r).join("stdout")), "out\n");
    assert_eq!(
        b.peek(&r, &PeekFile::Stdout, 2).await.expect("peek"),
        b"t\n"
    );
}

#[tokio::test]
async fn kill_stops_the_whole_process_group() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(
        &b,
        &sh(home.path(), 4, "sleep 600 & echo $! > child.pid; sleep 600"),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Running).await;
    let pgid = wrapper_pid(&r);
    let child_pid = r.workspace.join("work/child.pid");
    wait_file(&child_pid).await;
    let child: i32 = eventually("the child's pid", || async {
        read(&child_pid).trim().parse().ok()
    })
    .await;
    assert!(!is_dead(child), "the child {child} is not running");
    assert!(live_members(pgid).len() >= 3, "{:?}", live_members(pgid));

    let results = b.kill(std::slice::from_ref(&r)).await.expect("kill call");
    assert_eq!(results, [(r.job, Ok(()))]);
    let rep = poll(&b, &r).await;
    assert_eq!(rep.status, RemoteStatus::Killed, "{rep:?}");
    assert!(rep.ended.is_some());
    eventually("the process group to be gone", || async {
        (live_members(pgid).is_empty() && is_dead(child)).then_some(())
    })
    .await;
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Killed);
    // The kill record names the run.
    assert!(read(&r.workspace.join("local/killed-1")).contains("run=1\n"));
}

#[tokio::test]
async fn kill_falls_back_to_sigkill() {
    let home = home();
    let b = backend(home.path(), &[("kill_grace_secs", Value::Float(0.3))]);
    let r = submit_one(
        &b,
        &sh(
            home.path(),
            4,
            "trap '' TERM; touch ready; while :; do sleep 0.1; done",
        ),
    )
    .await;
    wait_file(&r.workspace.join("work/ready")).await;
    let pgid = wrapper_pid(&r);
    assert_eq!(
        b.kill(std::slice::from_ref(&r)).await.expect("kill"),
        [(r.job, Ok(()))]
    );
    eventually("the process group to be gone", || async {
        live_members(pgid).is_empty().then_some(())
    })
    .await;
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Killed);
}

#[tokio::test]
async fn a_job_outlives_the_backend_that_started_it() {
    let home = home();
    let go = home.path().join("go");
    let s = sh_args(
        home.path(),
        5,
        "while [ ! -e \"$1\" ]; do sleep 0.05; done; echo finished; exit 0",
        &[go.to_str().expect("utf-8 path")],
    );
    let first = backend(home.path(), &[]);
    let r = submit_one(&first, &s).await;
    wait_status(&first, &r, RemoteStatus::Running).await;
    drop(first);

    // Another process would do the same: a fresh instance, which only has the records.
    let second = backend(home.path(), &[]);
    assert_eq!(poll(&second, &r).await.status, RemoteStatus::Running);
    std::fs::write(&go, "").expect("go");
    let rep = wait_status(&second, &r, RemoteStatus::Succeeded).await;
    assert_eq!(rep.exit_code, Some(0));
    let (collected, _) = outputs(&second, &r, &[]).await;
    assert_eq!(collected, ["stderr", "stdout"]);
    assert_eq!(read(&output_dir(&r).join("stdout")), "finished\n");
}

#[tokio::test]
async fn a_job_that_vanished_is_absent() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &spec(home.path(), 6, "sleep", &["600"])).await;
    wait_status(&b, &r, RemoteStatus::Running).await;
    // Killed behind the backend's back: no exit record, no kill record.
    kill(-wrapper_pid(&r), libc::SIGKILL);
    // Gone without an exit record: the monitor fails it as lost if that lasts.
    let rep = wait_status(&b, &r, RemoteStatus::Absent).await;
    assert!(
        rep.reason
            .as_deref()
            .is_some_and(|r| r.contains("without recording an exit code")),
        "{rep:?}"
    );
    assert_eq!(rep.exit_code, None);
}

#[tokio::test]
async fn a_job_id_taken_by_another_process_is_absent() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &sh(home.path(), 6, "exit 0")).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    // Pretend the exit record is gone and the wrapper's pid now belongs to this test
    // process, which is alive but is not the wrapper (another start time).
    std::fs::remove_file(r.workspace.join("local/exit-1")).expect("remove exit record");
    let started = r.workspace.join("local/started-1");
    let text = read(&started);
    let me = std::process::id();
    let forged: String = text
        .lines()
        .map(|l| {
            if l.starts_with("pgid=") {
                format!("pgid={me}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&started, forged).expect("forge");
    let rep = poll(&b, &r).await;
    assert_eq!(rep.status, RemoteStatus::Absent, "{rep:?}");
}

#[tokio::test]
async fn arguments_and_environment_arrive_intact() {
    let home = home();
    let b = backend(home.path(), &[]);
    let args = [
        "plain",
        "two words",
        "it's",
        "\"double\"",
        "$HOME $(id) `id`",
        "line1\nline2\n",
        "ünïcødé ✓",
        "*",
        "",
        "-n",
        "back\\slash",
        ";&|<>",
    ];
    let env: BTreeMap<String, String> = [
        ("WEIRD", "x'y\"z $PATH\n`ls` \\ ü"),
        ("EMPTY", ""),
        ("IFS", "z"),
        ("dotted.name", "dots"),
        ("PATH", "/usr/bin:/bin"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let mut all = vec![
        "-c",
        "printf '%s\\0' \"$@\" > args.bin; printf '%s' \"$WEIRD\" > weird.txt; printf '[%s]' \"$EMPTY\" > empty.txt; env > env.txt",
        "sh",
    ];
    all.extend(args);
    let s = SubmitSpec {
        env,
        ..spec(home.path(), 7, "sh", &all)
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let work = r.workspace.join("work");
    let got = std::fs::read(work.join("args.bin")).expect("args.bin");
    let got: Vec<&[u8]> = got.split(|&b| b == 0).collect();
    let mut expected: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    expected.push(b""); // after the last NUL
    assert_eq!(got, expected);
    assert_eq!(read(&work.join("weird.txt")), "x'y\"z $PATH\n`ls` \\ ü");
    assert_eq!(read(&work.join("empty.txt")), "[]");
    let envs = read(&work.join("env.txt"));
    assert!(envs.lines().any(|l| l == "PATH=/usr/bin:/bin"), "{envs}");
    // ganga's own environment is passed on too.
    assert!(envs.lines().any(|l| l.starts_with("HOME=")), "{envs}");

    // A name sh would not pass on reaches a program that is not sh.
    let s = SubmitSpec {
        env: s.env.clone(),
        ..spec(home.path(), 8, "env", &[])
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let envs = read(&r.workspace.join("work/stdout"));
    assert!(envs.lines().any(|l| l == "dotted.name=dots"), "{envs}");
    assert!(envs.lines().any(|l| l == "IFS=z"), "{envs}");
}

#[tokio::test]
async fn an_executable_with_unusual_characters() {
    let home = home();
    let b = backend(home.path(), &[]);
    let dir = home.path().join("bin dir $x");
    std::fs::create_dir_all(&dir).expect("dir");
    let exe = dir.join("prog=1 'q'");
    std::fs::write(&exe, "#!/bin/sh\necho \"ran $V ${W}\"\n").expect("script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let s = SubmitSpec {
        env: [
            ("V".to_owned(), "ok".to_owned()),
            ("W.x".to_owned(), "odd".to_owned()),
        ]
        .into(),
        ..spec(home.path(), 7, exe.to_str().expect("utf-8"), &[])
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    assert_eq!(read(&r.workspace.join("work/stdout")), "ran ok \n");
}

#[tokio::test]
async fn input_files_are_copied() {
    let home = home();
    let b = backend(home.path(), &[]);
    let inputs = home.path().join("inputs");
    std::fs::create_dir_all(inputs.join("dir/deeper")).expect("inputs");
    std::fs::write(inputs.join("one.txt"), "one\n").expect("one");
    std::fs::write(inputs.join("two words.txt"), "two\n").expect("two");
    std::fs::write(inputs.join("dir/deeper/three.txt"), "three\n").expect("three");
    let s = SubmitSpec {
        input_files: vec![
            inputs.join("one.txt"),
            inputs.join("two words.txt"),
            inputs.join("dir"),
        ],
        ..sh(
            home.path(),
            8,
            "cat one.txt 'two words.txt' dir/deeper/three.txt > all.txt",
        )
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let (collected, unmatched) = outputs(&b, &r, &["all.txt"]).await;
    assert!(unmatched.is_empty());
    assert!(collected.contains(&"all.txt".to_owned()));
    assert_eq!(read(&output_dir(&r).join("all.txt")), "one\ntwo\nthree\n");
}

#[tokio::test]
async fn a_bad_job_does_not_stop_the_others() {
    let home = home();
    let b = backend(home.path(), &[]);
    let missing = home.path().join("no-such-input.dat");
    let bad = SubmitSpec {
        input_files: vec![missing.clone()],
        ..sh(home.path(), 9, "exit 0")
    };
    let bad_env = SubmitSpec {
        env: [("A=B".to_owned(), "x".to_owned())].into(),
        ..sh(home.path(), 11, "exit 0")
    };
    let bad_pattern = SubmitSpec {
        output_patterns: vec!["../escape".to_owned()],
        ..sh(home.path(), 12, "exit 0")
    };
    let good = spec_of(
        home.path(),
        JobRef::subjob(10, 3),
        "sh",
        &["-c", "echo fine"],
    );
    let results = submit(&b, &[bad, good, bad_env, bad_pattern]).await;

    let err = results[0].as_ref().expect_err("missing input is an error");
    assert!(err.starts_with("job 9:"), "{err}");
    assert!(err.contains(missing.to_str().expect("utf-8")), "{err}");
    let err = results[2].as_ref().expect_err("bad env name");
    assert!(err.starts_with("job 11:") && err.contains("A=B"), "{err}");
    let err = results[3].as_ref().expect_err("bad pattern");
    assert!(
        err.starts_with("job 12:") && err.contains("../escape"),
        "{err}"
    );

    let r = results[1].as_ref().expect("the good job was submitted");
    assert_eq!(r.job.to_string(), "10.3");
    wait_status(&b, r, RemoteStatus::Succeeded).await;
}

#[tokio::test]
async fn max_parallel_is_respected_and_waiting_jobs_are_queued() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let log = home.path().join("intervals.log");
    let log_arg = log.to_str().expect("utf-8 path");
    let script =
        "echo \"start $(date +%s%N)\" >> \"$1\"; sleep 1; echo \"end $(date +%s%N)\" >> \"$1\"";
    let specs: Vec<SubmitSpec> = (0..3)
        .map(|i| sh_args(home.path(), 20 + i, script, &[log_arg]))
        .collect();
    let refs: Vec<BackendRef> = submit(&b, &specs)
        .await
        .into_iter()
        .map(|r| r.expect("submitted"))
        .collect();

    let mut saw_queued_while_running = false;
    let start = Instant::now();
    loop {
        let reports: Vec<PollReport> = b
            .poll(&refs)
            .await
            .expect("poll")
            .into_iter()
            .map(|(_, r)| r.expect("a report"))
            .collect();
        let count = |s| reports.iter().filter(|r| r.status == s).count();
        let running = count(RemoteStatus::Running);
        assert!(running <= 1, "{running} jobs run at once: {reports:?}");
        if running == 1 && count(RemoteStatus::Queued) >= 1 {
            saw_queued_while_running = true;
            let queued = reports
                .iter()
                .find(|r| r.status == RemoteStatus::Queued)
                .expect("a queued job");
            assert_eq!(queued.started, None);
        }
        if count(RemoteStatus::Succeeded) == 3 {
            break;
        }
        for r in &reports {
            assert!(
                matches!(
                    r.status,
                    RemoteStatus::Queued | RemoteStatus::Running | RemoteStatus::Succeeded
                ),
                "{r:?}"
            );
        }
        assert!(start.elapsed() < TIMEOUT * 2, "timed out: {reports:?}");
        tokio::time::sleep(TICK).await;
    }
    assert!(saw_queued_while_running);

    // The jobs' own records: start, end, start, end, ... never two starts in a row.
    let text = read(&log);
    let events: Vec<(&str, u128)> = text
        .lines()
        .map(|l| {
            let (what, t) = l.split_once(' ').expect("event line");
            (what, t.parse().expect("time"))
        })
        .collect();
    assert_eq!(events.len(), 6, "{text}");
    for (i, pair) in events.windows(2).enumerate() {
        let expected = if i % 2 == 0 {
            ("start", "end")
        } else {
            ("end", "start")
        };
        assert_eq!((pair[0].0, pair[1].0), expected, "overlap in {text}");
        assert!(pair[0].1 <= pair[1].1, "{text}");
    }
    // Their runner ended with the queue.
    eventually("the runner to end", || async {
        runners_of(home.path()).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn peek_while_running() {
    let home = home();
    let b = backend(home.path(), &[]);
    let go = home.path().join("go");
    let r = submit_one(
        &b,
        &sh_args(
            home.path(),
            30,
            "echo first; echo second; echo err >&2; echo note > note.txt; while [ ! -e \"$1\" ]; do sleep 0.05; done",
            &[go.to_str().expect("utf-8")],
        ),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Running).await;
    let all = eventually("stdout to have two lines", || async {
        let out = b.peek(&r, &PeekFile::Stdout, 1000).await.expect("peek");
        (out == b"first\nsecond\n").then_some(out)
    })
    .await;
    assert_eq!(all, b"first\nsecond\n");
    assert_eq!(
        b.peek(&r, &PeekFile::Stdout, 7).await.expect("peek"),
        b"second\n"
    );
    assert_eq!(
        b.peek(&r, &PeekFile::Stderr, 1000).await.expect("peek"),
        b"err\n"
    );
    let note = eventually("note.txt", || async {
        b.peek(&r, &PeekFile::Path("note.txt".into()), 1000)
            .await
            .ok()
    })
    .await;
    assert_eq!(note, b"note\n");
    let missing = b.peek(&r, &PeekFile::Path("nope.txt".into()), 10).await;
    assert!(missing.is_err_and(|e| e.message.contains("nope.txt")));
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Running);
    std::fs::write(&go, "").expect("go");
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
}

#[tokio::test]
async fn peek_refuses_paths_outside_the_working_directory() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &sh(home.path(), 31, "echo hi")).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    for path in [
        "../local/exit-1",
        "/etc/passwd",
        "sub/../../local/exit-1",
        "",
    ] {
        let e = b
            .peek(&r, &PeekFile::Path(path.to_owned()), 100)
            .await
            .expect_err(path);
        assert!(e.message.contains("job 31"), "{e}");
    }
    assert_eq!(
        b.peek(&r, &PeekFile::Stdout, 100).await.expect("peek"),
        b"hi\n"
    );
}

#[tokio::test]
async fn a_resubmitted_job_starts_afresh() {
    let home = home();
    let b = backend(home.path(), &[]);
    let s = sh(home.path(), 40, "echo one > first.txt; exit 3");
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Failed).await;
    let again = SubmitSpec {
        run: 2,
        args: vec!["-c".into(), "echo again".into()],
        ..s
    };
    let r2 = submit_one(&b, &again).await;
    assert_ne!(r2.id, r.id);
    let rep = wait_status(&b, &r2, RemoteStatus::Succeeded).await;
    assert_eq!(rep.exit_code, Some(0));
    // Nothing of run 1 is left, and run 2's records name run 2.
    let control = r.workspace.join("local");
    assert!(!control.join("exit-1").exists());
    assert!(!r.workspace.join("work/first.txt").exists());
    assert!(read(&control.join("exit-2")).contains("run=2\n"));
    // Asked about run 1 again, the backend has no evidence of it.
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Absent);
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let home = home();
    for (k, v, says) in [
        ("max_parallel", Value::Integer(0), "`max_parallel`"),
        ("keep_workdir", Value::String("no".into()), "`keep_workdir`"),
        (
            "max_paralel",
            Value::Integer(2),
            "unknown setting `max_paralel` (the known ones: max_parallel, keep_workdir, kill_grace_secs)",
        ),
    ] {
        let options: Options = [(k.to_owned(), v)].into();
        let e = LocalBackend::new(home.path().to_path_buf(), &options).expect_err(k);
        assert!(e.message.contains(says), "{e}");
        assert!(e.message.starts_with("[plugin.local]"), "{e}");
    }
}

#[tokio::test]
async fn many_jobs_in_one_poll() {
    let home = home();
    let b = backend(home.path(), &[]);
    let r = submit_one(&b, &sh(home.path(), 50, "exit 0")).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    // The job, as many other units that point at its workspace, plus ones the backend
    // never saw: one report each, keyed, and no error for the strangers.
    let mut refs: Vec<BackendRef> = (0..500)
        .map(|i| BackendRef {
            job: JobRef::subjob(50, i),
            ..r.clone()
        })
        .collect();
    let stranger = |job: u64, id: &str, ws: PathBuf| BackendRef {
        job: JobRef::job(job),
        id: id.to_owned(),
        run: 1,
        workspace: ws,
    };
    refs.push(stranger(99, "not-a-number", home.path().join("nowhere")));
    refs.push(stranger(100, "1", home.path().join("nowhere")));
    let asked: Vec<JobRef> = refs.iter().map(|r| r.job).collect();
    let reports = b.poll_all(&refs).await.expect("poll_all");
    let reports = conformance::keyed("poll_all", &asked, reports).expect("keyed answers");
    for (job, p) in asked.iter().zip(&reports) {
        let p = p.as_ref().expect("a report");
        if job.job == 50 {
            assert_eq!(p.status, RemoteStatus::Succeeded, "{job}: {p:?}");
        } else {
            assert_eq!(p.status, RemoteStatus::Absent, "{job}: {p:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_as_a_loaded_plugin() {
    let home = home();
    let mut catalog = ganga_plugin_host::Catalog::new();
    let info = catalog
        .load_file(&ganga_test_support::built_plugin("ganga-backend-local"))
        .expect("the plugin loads");
    assert_eq!(info.name, "local");
    let context = ganga_plugin_sdk::PluginContext {
        home: home.path().to_path_buf(),
        config: [("max_parallel".to_owned(), Value::Integer(2))].into(),
        home_id: "test".into(),
    };
    let b = catalog.backend("local", &context).expect("created");
    assert_eq!(b.describe().await.expect("describe").name, "local");

    let r = submit_one(
        b.as_ref(),
        &sh(home.path(), 60, "echo via plugin > out.txt"),
    )
    .await;
    let rep = wait_status(b.as_ref(), &r, RemoteStatus::Succeeded).await;
    assert_eq!(rep.exit_code, Some(0));
    let (collected, _) = outputs(b.as_ref(), &r, &["out.txt"]).await;
    assert_eq!(collected, ["out.txt", "stderr", "stdout"]);

    // And across the plugin boundary it keeps the contract every backend keeps.
    let env = conformance::ConformanceEnv::new().expect("conformance env");
    conformance::run(b.as_ref(), &env).await.expect("conforms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_backend_contract() {
    let home = home();
    let b = backend(home.path(), &[]);
    let env = conformance::ConformanceEnv::new().expect("conformance env");
    conformance::run(&b, &env).await.expect("conforms");
}

#[tokio::test]
async fn a_daemon_left_behind_does_not_keep_the_slot() {
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(1))]);
    let a = submit_one(
        &b,
        &sh(
            home.path(),
            70,
            "sleep 600 >/dev/null 2>&1 & echo $! > daemon.pid",
        ),
    )
    .await;
    wait_status(&b, &a, RemoteStatus::Succeeded).await;
    let daemon: i32 = read(&a.workspace.join("work/daemon.pid"))
        .trim()
        .parse()
        .expect("daemon pid");
    let next = submit_one(&b, &sh(home.path(), 71, "echo next")).await;
    let outcome =
        tokio::time::timeout(TIMEOUT, wait_status(&b, &next, RemoteStatus::Succeeded)).await;
    // The daemon is the test's to clean up (it is in job 70's process group).
    assert!(
        !is_dead(daemon),
        "the daemon {daemon} should still be running"
    );
    kill(daemon, libc::SIGKILL);
    outcome.expect("the next job ran while the daemon lived");
}
