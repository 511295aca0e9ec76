//! The hardening items with real jobs: a job's environment on no command line, private
//! files, a missing program's reason, outputs and `peek` that never leave the working
//! directory or block, a collection killed while it removed the working directory, and
//! `peek` of a huge file.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ganga_core::{Backend, PeekFile, RemoteStatus, SubmitSpec, Value};

#[tokio::test]
async fn environment_values_are_on_no_command_line() {
    let home = home();
    let b = backend(home.path(), &[]);
    let secret = format!("s3cr3t-{}-value", std::process::id());
    let odd_secret = format!("odd-{}-value", std::process::id());
    let go = home.path().join("go");
    let s = SubmitSpec {
        env: [
            ("API_TOKEN".to_owned(), secret.clone()),
            ("odd.name".to_owned(), odd_secret.clone()),
        ]
        .into(),
        ..sh_args(
            home.path(),
            1,
            "while [ ! -e \"$1\" ]; do sleep 0.05; done; printf '%s' \"$API_TOKEN\" > token.txt; env > env.txt",
            &[go.to_str().expect("utf-8")],
        )
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Running).await;
    // While it runs, no process shows the values in its command line (a name sh cannot
    // export passes through env(1), whose command line has it only until it starts the
    // program)...
    assert_eq!(processes_naming(&secret), Vec::<i32>::new());
    assert_eq!(processes_naming(&odd_secret), Vec::<i32>::new());
    // ...while the program has them in its environment.
    let environ_has = |pid: &i32, text: &str| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|e| e.windows(text.len()).any(|w| w == text.as_bytes()))
    };
    let program = live_members(wrapper_pid(&r))
        .into_iter()
        .find(|pid| environ_has(pid, &secret));
    let program = program.expect("a process of the job has API_TOKEN");
    assert!(environ_has(&program, &format!("odd.name={odd_secret}")));
    std::fs::write(&go, "").expect("go");
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    assert_eq!(read(&r.workspace.join("work/token.txt")), secret);
    // The record that holds the values is the owner's alone.
    assert_eq!(mode_of(&r.workspace.join("local/queued-1")), 0o600);
}

#[tokio::test]
async fn files_and_directories_are_private() {
    // ganga runs with the user's `[home] umask`, 077 unless configured otherwise. (nextest
    // runs each test in a process of its own, so this touches no other test.)
    // SAFETY: umask(2) cannot fail and touches no memory.
    unsafe { libc::umask(0o077) };
    let home = home();
    let b = backend(home.path(), &[]);
    let inputs = home.path().join("inputs");
    std::fs::create_dir_all(&inputs).expect("inputs");
    std::fs::write(inputs.join("in.txt"), "in").expect("input");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            inputs.join("in.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
    }
    let s = SubmitSpec {
        input_files: vec![inputs.join("in.txt")],
        ..sh(home.path(), 1, "echo out > out.txt")
    };
    let r = submit_one(&b, &s).await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    outputs(&b, &r, &["out.txt"]).await;
    let ws = &r.workspace;
    for dir in [
        ws.clone(),
        ws.join("local"),
        ws.join("work"),
        ws.join("output"),
        home.path().join("local"),
        home.path().join("local/queue"),
        home.path().join("local/events"),
    ] {
        assert_eq!(mode_of(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        ws.join("local/queued-1"),
        ws.join("local/started-1"),
        ws.join("local/exit-1"),
        ws.join("local/outputs-1.json"),
        ws.join("work/in.txt"),
        ws.join("output/out.txt"),
        ws.join("output/stdout"),
    ] {
        assert_eq!(mode_of(&file), 0o600, "{}", file.display());
    }
    // What the job writes is private too (the runner's umask).
    assert_eq!(mode_of(&ws.join("work/out.txt")), 0o600);
    assert_eq!(mode_of(&ws.join("work/stdout")), 0o600);
}

#[tokio::test]
async fn a_program_that_cannot_be_run_says_why() {
    let home = home();
    let b = backend(home.path(), &[]);
    let not_executable = home.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("file");
    let dir = home.path().join("a-directory");
    std::fs::create_dir(&dir).expect("dir");
    let cases = [
        (
            "/no/such/program".to_owned(),
            "cannot execute /no/such/program: No such file or directory".to_owned(),
        ),
        (
            "no-such-command-anywhere".to_owned(),
            "cannot execute no-such-command-anywhere: command not found".to_owned(),
        ),
        (
            not_executable.display().to_string(),
            format!(
                "cannot execute {}: Permission denied",
                not_executable.display()
            ),
        ),
        (
            dir.display().to_string(),
            format!("cannot execute {}: Is a directory", dir.display()),
        ),
    ];
    for (i, (exe, why)) in cases.iter().enumerate() {
        let r = submit_one(&b, &spec(home.path(), 10 + i as u64, exe, &[])).await;
        let rep = wait_status(&b, &r, RemoteStatus::Failed).await;
        assert_eq!(rep.exit_code, Some(127), "{exe}");
        assert_eq!(
            rep.reason.as_deref(),
            Some(format!("{why} (exit code 127)").as_str()),
            "{exe}"
        );
    }
}

#[tokio::test]
async fn outputs_never_leave_the_working_directory_nor_block() {
    let home = home();
    let b = backend(home.path(), &[]);
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "SECRET\n").expect("secret");
    let r = submit_one(
        &b,
        &sh_args(
            home.path(),
            1,
            "ln -s /etc link; ln -s \"$1\" s; ln -s /etc/shadow shadow; mkfifo data.dat; \
             ln -s nowhere dangling.root; mkdir d; echo in > d/f.txt; ln -s .. d/up; \
             echo good > good.dat",
            &[secret.to_str().expect("utf-8")],
        ),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        outputs_report(&b, &r, &["link/*", "s", "shadow", "*.dat", "*.root", "d"]),
    )
    .await
    .expect("collection returned: it did not block on the FIFO");
    assert_eq!(
        report.collected,
        ["d/f.txt", "good.dat", "stderr", "stdout"],
        "{report:?}"
    );
    assert_eq!(report.unmatched, ["link/*", "s", "shadow", "*.root"]);
    for (name, why) in [
        ("link", "leading out of the working directory"),
        ("s", "leading out of the working directory"),
        ("shadow", "leading out of the working directory"),
        ("data.dat", "a FIFO"),
        ("dangling.root", "a dangling symbolic link"),
        ("d/up", "a link to a directory"),
    ] {
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.starts_with(&format!("{name}: ")) && s.contains(why)),
            "{name}: {:?}",
            report.skipped
        );
    }
    // Nothing from outside was copied.
    let out = output_dir(&r);
    assert!(!out.join("link").exists());
    assert!(!out.join("s").exists());
    // peek does not follow the links either.
    for name in ["s", "shadow", "link/passwd"] {
        let e = b
            .peek(&r, &PeekFile::Path(name.to_owned()), 100)
            .await
            .expect_err(name);
        assert!(e.message.contains("leads out"), "{name}: {e}");
    }
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        b.peek(&r, &PeekFile::Path("data.dat".to_owned()), 100),
    )
    .await
    .expect("peek returned")
    .expect_err("a FIFO");
    assert!(e.message.contains("a FIFO"), "{e}");
}

/// Bytes this process has read so far (`rchar` of `/proc/self/io`).
fn bytes_read_by_this_process() -> u64 {
    read(Path::new("/proc/self/io"))
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar")
}

#[tokio::test]
async fn peek_of_a_huge_file_reads_only_its_end() {
    let home = home();
    let b = backend(home.path(), &[("keep_workdir", Value::Bool(false))]);
    // 800 MB of stdout (sparse, so cheap to make), and its last line.
    let r = submit_one(
        &b,
        &sh(
            home.path(),
            1,
            "truncate -s 800M stdout.big && cat stdout.big && echo 'the end'",
        ),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;
    let before = bytes_read_by_this_process();
    let end = b.peek(&r, &PeekFile::Stdout, 4).await.expect("peek");
    assert_eq!(end, b"end\n");
    // After collection, from the collected copy (the working directory is gone).
    outputs(&b, &r, &[]).await;
    let after_collect = bytes_read_by_this_process();
    assert!(!r.workspace.join("work").exists());
    let end = b.peek(&r, &PeekFile::Stdout, 4).await.expect("peek");
    assert_eq!(end, b"end\n");
    let peeks = (bytes_read_by_this_process() - after_collect)
        + (after_collect - before).saturating_sub(800 * 1024 * 1024 + 8);
    // Other tests of this process read little meanwhile; a whole read would be 800 MB.
    assert!(peeks < 64 * 1024 * 1024, "{peeks} bytes read to peek at 4");
}

#[tokio::test]
async fn a_collection_killed_while_removing_the_working_directory_is_finished_later() {
    let home = home();
    let b = backend(home.path(), &[("keep_workdir", Value::Bool(false))]);
    // Many files, so that removing them takes a while; one output.
    let r = submit_one(
        &b,
        &sh(
            home.path(),
            1,
            "echo result > result.txt; i=0; while [ $i -lt 300 ]; do mkdir d$i; j=0; \
             while [ $j -lt 100 ]; do : > d$i/f$j; j=$((j+1)); done; i=$((i+1)); done; echo done",
        ),
    )
    .await;
    wait_status(&b, &r, RemoteStatus::Succeeded).await;

    // The collection runs in a process of its own, killed as soon as it started removing.
    let helper = ganga_test_support::built_example("ganga-backend-local", "collect_once");
    let out = output_dir(&r);
    let mut child = Command::new(helper)
        .arg(home.path())
        .arg(&r.workspace)
        .arg(r.run.to_string())
        .arg(&r.id)
        .arg(&out)
        .arg("result.txt")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the helper starts");
    let aside = r.workspace.join(".work.removing");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !aside.exists() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the helper ended ({status}) before it started removing work/");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never removed work/"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("SIGKILL the helper");
    child.wait().expect("reaped");
    assert!(aside.exists(), "the removal was over before the kill");

    // Collected again: the same answer, from the record, never from the remains.
    let (collected, unmatched) = outputs(&b, &r, &["result.txt"]).await;
    assert_eq!(collected, ["result.txt", "stderr", "stdout"]);
    assert!(unmatched.is_empty(), "{unmatched:?}");
    assert_eq!(read(&out.join("result.txt")), "result\n");
    assert_eq!(read(&out.join("stdout")), "done\n");
    assert!(!aside.exists() && !r.workspace.join("work").exists());
    assert_eq!(poll(&b, &r).await.status, RemoteStatus::Succeeded);
}
