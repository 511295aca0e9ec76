//! The monitor as users meet it: started in the background by `submit`, waited for by
//! `wait`, asked for its status, stopped, taken over, killed at any moment.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{Ganga, alive, wait_for};

/// A home whose `submit` starts a background monitor that leaves after 1 s of idleness.
fn with_background(g: &Ganga) {
    std::fs::write(
        g.home().join("config.toml"),
        "[monitor]\ninterval_secs = 0.2\nbackground = true\nidle_exit_secs = 1\n",
    )
    .expect("config");
}

fn split_job(g: &Ganga, name: &str, n: usize, script: &str) -> std::path::PathBuf {
    let values: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
    g.job_file(
        name,
        &format!(
            r#"
output_files = ["out-*.txt"]
[application]
exe = "/bin/sh"
args = ["-c", '{script}']
[splitter]
type = "generic"
attribute = "application.env.I"
values = [{}]
"#,
            values.join(", ")
        ),
    )
}

fn kill9(child: &Child) {
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn monitor_pid(g: &Ganga) -> Option<u32> {
    std::fs::read_to_string(g.home().join("monitor.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn submit_starts_a_monitor_in_the_background_and_the_job_ends_without_any_other_command() {
    let g = Ganga::new();
    with_background(&g);
    let file = split_job(&g, "split.toml", 4, r#"echo "$I" > "out-$I.txt""#);
    let id = g.submit(&file, &[]);
    // Nobody runs `ganga monitor`: the one `submit` started drives the job to the end.
    wait_for("the job to complete on its own", 60, || {
        g.status(&id.to_string()) == "completed"
    });
    for sj in g.subjobs(id) {
        let outputs = sj["run"]["outputs"].as_array().expect("outputs");
        assert!(
            outputs
                .iter()
                .any(|o| o.as_str().is_some_and(|o| o.starts_with("out-"))),
            "{sj}"
        );
    }
    // It says what it did, and leaves when there is nothing more to do.
    let log = std::fs::read_to_string(g.home().join("monitor.log")).expect("its log");
    assert!(log.contains("monitor started"), "{log}");
    wait_for("the background monitor to leave when idle", 30, || {
        monitor_pid(&g).is_none_or(|p| !alive(p))
    });
}

#[test]
fn wait_returns_zero_when_every_job_completed_and_non_zero_otherwise() {
    let g = Ganga::new();
    let good = g.job_file(
        "good.toml",
        "[application]\nexe = \"/bin/sh\"\nargs = [\"-c\", \"exit 0\"]\n",
    );
    let bad = g.job_file(
        "bad.toml",
        "[application]\nexe = \"/bin/sh\"\nargs = [\"-c\", \"exit 3\"]\n",
    );
    let a = g.submit(&good, &[]);
    let b = g.submit(&bad, &[]);
    // No monitor runs: `wait` drives them itself.
    let out = g.output(&["wait", &a.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = g.output(&["wait", &a.to_string(), &b.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("job {b} (")) && text.contains("failed"),
        "{text}"
    );
    assert!(text.contains("exit 3"), "{text}");
    // A job that does not exist is an error, not a wait.
    let err = g.fail(&["wait", "99"]);
    assert!(err.contains("job 99 does not exist"), "{err}");
}

#[test]
fn wait_gives_up_after_its_timeout() {
    let g = Ganga::new();
    let slow = g.job_file(
        "slow.toml",
        "[application]\nexe = \"/bin/sleep\"\nargs = [\"30\"]\n",
    );
    let id = g.submit(&slow, &[]);
    let started = Instant::now();
    let out = g.output(&["wait", &id.to_string(), "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    g.run(&["kill", &id.to_string()]);
}

#[test]
fn monitor_status_says_what_runs_and_stop_stops_it() {
    let g = Ganga::new();
    let out = g.run(&["monitor", "status"]);
    assert!(out.contains("no monitor runs"), "{out}");
    let mut monitor = g.spawn(&["monitor", "--interval", "0.1"]);
    wait_for("the monitor to listen", 30, || {
        g.output(&["monitor", "status"])
            .stdout
            .starts_with(b"monitor running")
    });
    let slow = g.job_file(
        "slow.toml",
        "[application]\nexe = \"/bin/sleep\"\nargs = [\"30\"]\n",
    );
    let id = g.submit(&slow, &[]);
    wait_for("the monitor to see the job", 30, || {
        let s = g.json(&["monitor", "status", "--json"]);
        s["monitor"]["backends"].as_array().is_some_and(|b| {
            b.iter()
                .any(|b| b["name"] == "local" && b["active_units"] == 1)
        })
    });
    let text = g.run(&["monitor", "status"]);
    assert!(text.contains(&format!("(pid {})", monitor.id())), "{text}");
    assert!(text.contains("local: 1 active units"), "{text}");
    g.run(&["kill", &id.to_string()]);
    let out = g.run(&["monitor", "stop"]);
    assert!(out.contains("monitor stopped"), "{out}");
    let status = monitor.wait().expect("it ends");
    assert!(status.success(), "a clean stop: {status}");
}

#[test]
fn a_waiting_ganga_takes_over_when_the_monitor_it_relied_on_dies() {
    let g = Ganga::new();
    let mut monitor = g.spawn(&["monitor", "--interval", "0.1"]);
    wait_for("the monitor to take its lock", 30, || {
        monitor_pid(&g) == Some(monitor.id())
    });
    let job = g.job_file(
        "job.toml",
        "output_files = [\"x.txt\"]\n[application]\nexe = \"/bin/sh\"\nargs = [\"-c\", \"sleep 2; echo x > x.txt\"]\n",
    );
    let id = g.submit(&job, &[]);
    let waiter = g.spawn(&["wait", &id.to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    kill9(&monitor);
    let _ = monitor.wait();
    let out = waiter.wait_with_output().expect("wait ends");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(g.status(&id.to_string()), "completed");
}

#[test]
fn a_job_that_fails_once_is_resubmitted_automatically_and_completes() {
    let g = Ganga::new();
    let mark = g.path("tried-once");
    let job = g.job_file(
        "flaky.toml",
        &format!(
            r#"
auto_resubmit = true
[application]
exe = "/bin/sh"
args = ["-c", 'if [ -e "{0}" ]; then exit 0; fi; touch "{0}"; exit 1']
"#,
            mark.display()
        ),
    );
    let id = g.submit(&job, &["--wait"]);
    let j = g.job(id);
    assert_eq!(j["run"]["status"], "completed", "{j}");
    assert_eq!(j["run"]["submit_count"], 2, "{j}");
    assert_eq!(j["run"]["auto_resubmits"], 1, "{j}");
}

/// Subjob `i` fails with exit code 3 when `i % 7 == 0`; the others write one output.
const WORK: &str =
    r#"sleep 0.$(( I % 5 )); if [ $(( I % 7 )) -eq 0 ]; then exit 3; fi; echo "$I" > "out-$I.txt""#;

#[test]
fn a_monitor_killed_at_any_moment_loses_no_job_and_finishes_none_wrongly() {
    let g = Ganga::new();
    let n = 40;
    let file = split_job(&g, "many.toml", n, WORK);
    let id = g.submit(&file, &[]);
    // Kill the monitor again and again, at moments spread over its work, then let one
    // finish: every subjob must end as its program did.
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for k in 0u64.. {
        let status = g.status(&id.to_string());
        if !matches!(status.as_str(), "submitted" | "running" | "completing") {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ended");
        let monitor = g.spawn(&["monitor", "--until-idle", "--interval", "0.05"]);
        std::thread::sleep(Duration::from_millis(60 + (k * 37) % 300));
        kill9(&monitor);
        let mut monitor = monitor;
        let _ = monitor.wait();
        kills += 1;
    }
    g.run(&["monitor", "--until-idle", "--interval", "0.05"]);
    assert!(kills >= 3, "only {kills} kills: the test proves little");
    let subjobs = g.subjobs(id);
    assert_eq!(subjobs.len(), n);
    for (i, sj) in subjobs.iter().enumerate() {
        let run = &sj["run"];
        if i % 7 == 0 {
            assert_eq!(run["status"], "failed", "subjob {i}: {sj}");
            assert_eq!(run["exit_code"], 3, "subjob {i}: {sj}");
        } else {
            assert_eq!(run["status"], "completed", "subjob {i}: {sj}");
            let out = std::path::Path::new(sj["output_dir"].as_str().unwrap())
                .join(format!("out-{i}.txt"));
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            assert_eq!(text.trim(), i.to_string(), "subjob {i}: {}", out.display());
        }
    }
    let job = g.job(id);
    assert_eq!(
        job["subjobs"]["failed"],
        (0..n).filter(|i| i % 7 == 0).count()
    );
}
