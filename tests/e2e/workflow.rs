//! A job's life through the CLI: submit, monitor, kill, fail, resubmit, and a job that
//! outlives the ganga that started it.

use std::time::Duration;

use crate::util::{Ganga, alive, examples_dir, wait_for};

#[test]
fn the_example_split_job_runs_to_completion_with_outputs_collected() {
    let g = Ganga::new();
    let file = examples_dir().join("hello-split.toml");
    let out = g.run(&["submit", "--wait", file.to_str().unwrap()]);
    assert!(out.contains("job 0 (hello-split) ended completed"), "{out}");

    let job = g.job(0);
    assert_eq!(job["run"]["status"], "completed");
    assert_eq!(job["subjobs"]["completed"], 3);
    let subjobs = g.subjobs(0);
    assert_eq!(subjobs.len(), 3);
    for (sj, name) in subjobs.iter().zip(["alice", "bob", "carol"]) {
        assert_eq!(sj["run"]["status"], "completed", "{sj}");
        assert_eq!(sj["run"]["exit_code"], 0);
        let file = format!("hello-{name}.txt");
        let outputs: Vec<&str> = sj["run"]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(outputs.contains(&file.as_str()), "{outputs:?}");
        let text = std::fs::read_to_string(
            std::path::Path::new(sj["output_dir"].as_str().unwrap()).join(&file),
        )
        .unwrap();
        assert!(
            text.starts_with(&format!("Hello, {name}! (from ")),
            "{text}"
        );
        // The summary the table shows says the same.
    }
    let listed = g.json(&["jobs", "--json"]);
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["subjobs"]["completed"], 3);
}

#[test]
fn a_failing_exe_ends_failed_with_its_exit_code() {
    let g = Ganga::new();
    let file = g.job_file(
        "fail.toml",
        r#"
name = "fails"
[application]
exe = "/bin/sh"
args = ["-c", "echo about to fail >&2; exit 3"]
"#,
    );
    let out = g.output(&["submit", "--wait", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--wait says the job did not complete"
    );
    let job = g.job(0);
    assert_eq!(job["run"]["status"], "failed");
    assert_eq!(job["run"]["exit_code"], 3);
    assert!(
        job["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{job}"
    );
    // stderr was collected, and peek shows it from the output directory.
    assert_eq!(g.run(&["peek", "0", "stderr"]), "about to fail\n");
}

#[test]
fn an_output_pattern_that_matches_nothing_fails_the_job() {
    let g = Ganga::new();
    let file = g.job_file(
        "nomatch.toml",
        r#"
output_files = ["*.root"]
[application]
exe = "/bin/true"
"#,
    );
    g.output(&["submit", "--wait", file.to_str().unwrap()]);
    let job = g.job(0);
    assert_eq!(job["run"]["status"], "failed");
    assert_eq!(job["run"]["exit_code"], 0);
    assert_eq!(
        job["run"]["reason"],
        "output pattern `*.root` matched nothing"
    );
}

#[test]
fn kill_of_a_running_job_ends_it_and_its_processes() {
    let g = Ganga::new();
    let pidfile = g.path("pid");
    let file = g.job_file(
        "sleep.toml",
        &format!(
            r#"
[application]
exe = "/bin/sh"
args = ["-c", "echo $$ > {}; sleep 60 & wait"]
"#,
            pidfile.display()
        ),
    );
    let id = g.submit(&file, &[]);
    wait_for("the job to start", 30, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let out = g.run(&["kill", &id.to_string()]);
    assert!(out.contains("1 unit killed"), "{out}");
    assert_eq!(g.status("0"), "killed");
    wait_for("the job's processes to end", 10, || !alive(pid));
    // The monitor has nothing left to do, and does not undo the kill.
    g.run(&["monitor", "--until-idle"]);
    assert_eq!(g.status("0"), "killed");
    // A killed job cannot be killed again.
    let err = g.fail(&["kill", "0"]);
    assert!(err.contains("cannot kill a job that is killed"), "{err}");
}

#[test]
fn resubmit_runs_again_only_the_failed_subjobs() {
    let g = Ganga::new();
    let flag = g.path("bob-failed-once");
    let file = g.job_file(
        "flaky.toml",
        &format!(
            r#"
name = "flaky"
output_files = ["out.txt"]
[application]
exe = "/bin/sh"
args = ["-c", 'if [ "$0" = bob ] && [ ! -e {flag} ]; then touch {flag}; exit 4; fi; echo "$0" > out.txt']
[splitter]
type = "args"
append = true
args = [["alice"], ["bob"], ["carol"]]
"#,
            flag = flag.display()
        ),
    );
    let out = g.output(&["submit", "--wait", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let first = g.subjobs(0);
    let statuses: Vec<_> = first
        .iter()
        .map(|s| s["run"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["completed", "failed", "completed"]);
    assert_eq!(first[1]["run"]["exit_code"], 4);
    assert_eq!(g.status("0"), "failed");

    let out = g.run(&["resubmit", "--wait", "0"]);
    assert!(out.contains("job 0: 1 unit submitted"), "{out}");
    assert!(out.contains("ended completed"), "{out}");
    let second = g.subjobs(0);
    for (i, (before, after)) in first.iter().zip(&second).enumerate() {
        assert_eq!(after["run"]["status"], "completed", "subjob {i}");
        if i == 1 {
            assert_eq!(after["run"]["submit_count"], 2, "the failed one ran again");
            assert_ne!(after["run"]["backend_id"], before["run"]["backend_id"]);
        } else {
            assert_eq!(
                after["run"]["submit_count"], 1,
                "subjob {i} did not run again"
            );
            assert_eq!(after["run"]["backend_id"], before["run"]["backend_id"]);
            assert_eq!(after["run"]["times"], before["run"]["times"]);
        }
    }
    assert_eq!(g.job(0)["run"]["submit_count"], 2);
}

#[test]
fn a_job_that_outlives_the_ganga_that_submitted_it_is_finalised_by_the_next_monitor() {
    let g = Ganga::new();
    let flag = g.path("finished");
    let file = g.job_file(
        "later.toml",
        &format!(
            r#"
output_files = ["late.txt"]
[application]
exe = "/bin/sh"
args = ["-c", "sleep 1; echo late > late.txt; touch {}"]
"#,
            flag.display()
        ),
    );
    // `submit` without --wait: this ganga exits at once.
    let id = g.submit(&file, &[]);
    assert_eq!(g.status("0"), "submitted");
    // The job runs and ends with no ganga running at all.
    wait_for("the job to end on its own", 30, || flag.exists());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(g.status("0"), "submitted", "nothing monitored it meanwhile");
    // The next monitor recognises that it ended, and how.
    g.run(&["monitor", "--until-idle"]);
    let job = g.job(id);
    assert_eq!(job["run"]["status"], "completed", "{job}");
    assert_eq!(job["run"]["outputs"][0], "late.txt");
}

#[test]
fn a_second_process_reads_while_the_monitor_writes() {
    let g = Ganga::new();
    let file = g.job_file(
        "many.toml",
        r#"
[application]
exe = "/bin/sh"
args = ["-c", "sleep 0.3"]
[splitter]
type = "generic"
attribute = "comment"
values = ["a", "b", "c", "d", "e", "f"]
"#,
    );
    g.submit(&file, &[]);
    let mut monitor = g.spawn(&["monitor", "--until-idle", "--interval", "0.1"]);
    // Read the store over and over while the monitor commits.
    let mut reads = 0;
    while monitor.try_wait().unwrap().is_none() {
        let jobs = g.json(&["jobs", "--json"]);
        assert_eq!(jobs.as_array().unwrap().len(), 1);
        reads += 1;
    }
    assert!(monitor.wait().unwrap().success());
    assert!(reads > 0);
    assert_eq!(g.status("0"), "completed");
}

#[test]
fn a_job_can_be_copied_and_the_copy_submitted_by_id() {
    let g = Ganga::new();
    let file = examples_dir().join("hello.toml");
    g.run(&["submit", "--wait", file.to_str().unwrap()]);
    let out = g.run(&["copy", "0"]);
    assert_eq!(out.trim(), "job 1: copy of job 0");
    assert_eq!(g.status("1"), "new");
    g.run(&["submit", "--wait", "1"]);
    assert_eq!(g.status("1"), "completed");
    let out = g.run(&["remove", "0"]);
    assert_eq!(out.trim(), "job 0: removed");
    assert!(g.fail(&["show", "0"]).contains("job 0 does not exist"));
    assert!(
        !g.home().join("workspace/0").exists(),
        "its workspace went with it"
    );
    // Ids are never reused.
    g.run(&["copy", "1"]);
    assert_eq!(g.status("2"), "new");
}

#[test]
fn the_example_plugin_from_the_guide_runs_a_job() {
    let g = Ganga::new();
    let file = g.job_file(
        "example.toml",
        r#"
output_files = ["x.txt"]
[application]
exe = "/bin/sh"
args = ["-c", "echo x > x.txt"]
[backend]
type = "example"
"#,
    );
    g.run(&["submit", "--wait", file.to_str().unwrap()]);
    assert_eq!(g.status("0"), "completed");
}

#[test]
fn monitor_runs_in_the_foreground_until_ctrl_c_and_only_one_at_a_time() {
    let g = Ganga::new();
    let mut monitor = g.spawn(&["monitor", "--interval", "0.1"]);
    wait_for("the monitor to take its lock", 30, || {
        std::fs::read_to_string(g.home().join("monitor.lock"))
            .is_ok_and(|s| s.trim() == monitor.id().to_string())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        monitor.try_wait().unwrap().is_none(),
        "it keeps running with nothing to do"
    );

    let err = g.fail(&["monitor", "--until-idle"]);
    assert!(
        err.contains(&format!(
            "another `ganga monitor` (pid {}) is already running",
            monitor.id()
        )),
        "{err}"
    );

    // `submit --wait` leaves the driving to the running monitor and still sees the end.
    let file = examples_dir().join("hello.toml");
    let out = g.output(&["submit", "--wait", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("watching the store"));
    assert_eq!(g.status("0"), "completed");

    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut status = None;
    wait_for("the monitor to stop on Ctrl-C", 10, || {
        status = monitor.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "Ctrl-C is a clean stop");
}
