//! `ganga submit` and `ganga resubmit` killed with SIGKILL part-way, at moments spread
//! over their work, then a monitor, `kill`, `resubmit` or `remove`: no process left
//! running untracked, no unit finished by another run's record, every unit ends as its
//! program did.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{Ganga, alive, wait_for};

/// Subjob `I` sleeps a little and writes `out-I.txt`; subjob 0 fails on its first run.
fn job_file(g: &Ganga, n: usize) -> std::path::PathBuf {
    let values: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
    let mark = g.path("first-run-of-0");
    g.job_file(
        "many.toml",
        &format!(
            r#"
output_files = ["out-*.txt"]
[application]
exe = "/bin/sh"
args = ["-c", 'if [ "$I" = 0 ] && [ ! -e "{}" ]; then touch "{}"; exit 4; fi; sleep 0.0$(( I % 7 )); echo "$I" > "out-$I.txt"']
[splitter]
type = "generic"
attribute = "application.env.I"
values = [{}]
"#,
            mark.display(),
            mark.display(),
            values.join(", ")
        ),
    )
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Processes (other than ganga commands) still running for this home: runners, wrappers,
/// the jobs' programs.
fn leftovers(g: &Ganga) -> Vec<String> {
    let home = g.home().to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&home) && !text.contains("ganga") && alive(pid) {
            found.push(format!("{pid}: {text}"));
        }
    }
    found
}

fn no_leftovers(g: &Ganga) {
    wait_for("no process of this home to be left", 30, || {
        leftovers(g).is_empty()
    });
}

/// The status of every subjob, and of the job.
fn statuses(g: &Ganga, id: u64) -> (String, Vec<String>) {
    let subjobs = g
        .subjobs(id)
        .iter()
        .map(|s| s["run"]["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    (g.status(&id.to_string()), subjobs)
}

/// Every subjob that completed wrote what its own run was given.
fn outputs_right(g: &Ganga, id: u64) {
    for (i, sj) in g.subjobs(id).iter().enumerate() {
        if sj["run"]["status"] == "completed" {
            let out = std::path::Path::new(sj["output_dir"].as_str().unwrap())
                .join(format!("out-{i}.txt"));
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            assert_eq!(text.trim(), i.to_string(), "{}", out.display());
        }
    }
}

/// Starts `ganga args`, and kills it with SIGKILL `after` the hand-over began (the
/// backend made the first unit's directory).
fn killed_during_hand_over(g: &Ganga, args: &[&str], after: Duration) {
    let mut child = g.spawn(args);
    let began = g.home().join("workspace/0/0/local");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !began.exists() && Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(after);
    kill9(&mut child);
}

/// How many units are `submitting` with no backend id: handed over (or not) by a
/// process that died before recording it.
fn cut_off(g: &Ganga, id: u64) -> usize {
    g.subjobs(id)
        .iter()
        .filter(|s| s["run"]["status"] == "submitting" && s["run"]["backend_id"].is_null())
        .count()
}

#[test]
fn a_submit_killed_part_way_is_finished_by_a_monitor_and_every_unit_ends_right() {
    let mut seen_cut_off = 0;
    for (k, ms) in [0u64, 10, 30].into_iter().enumerate() {
        let g = Ganga::new();
        let n = 600;
        let file = job_file(&g, n);
        let submit = ["submit", file.to_str().unwrap()];
        killed_during_hand_over(&g, &submit, Duration::from_millis(ms));
        // Whatever it had done, a monitor resolves it.
        if g.output(&["show", "0"]).status.success() {
            seen_cut_off += cut_off(&g, 0);
            g.run(&["monitor", "--until-idle", "--interval", "0.1"]);
            let (job, subjobs) = statuses(&g, 0);
            assert!(
                subjobs
                    .iter()
                    .all(|s| matches!(s.as_str(), "completed" | "failed")),
                "attempt {k}: {job}: {subjobs:?}"
            );
            outputs_right(&g, 0);
            // What failed as interrupted (and subjob 0's first run, wherever it came)
            // runs again.
            for _ in 0..2 {
                if g.status("0") == "failed" {
                    let _ = g.output(&["resubmit", "--wait", "0"]);
                }
            }
            let (job, subjobs) = statuses(&g, 0);
            assert_eq!(job, "completed", "attempt {k}: {subjobs:?}");
            outputs_right(&g, 0);
        }
        no_leftovers(&g);
    }
    assert!(
        seen_cut_off > 0,
        "no kill landed between hand-over and record: the test proves little"
    );
}

#[test]
fn a_submit_killed_part_way_can_be_killed_and_removed_and_leaves_no_process() {
    let mut seen_cut_off = 0;
    for (k, ms) in [0u64, 20].into_iter().enumerate() {
        let g = Ganga::new();
        let file = job_file(&g, 600);
        let submit = ["submit", file.to_str().unwrap()];
        killed_during_hand_over(&g, &submit, Duration::from_millis(ms));
        if !g.output(&["show", "0"]).status.success() {
            continue;
        }
        seen_cut_off += cut_off(&g, 0);
        // Kill reaches what was started, also what was started before ids were recorded;
        // what never reached the backend will not run either.
        let out = g.output(&["kill", "0"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("cannot kill"),
            "attempt {k}: {said}"
        );
        g.run(&["monitor", "--until-idle", "--interval", "0.1"]);
        let (_, subjobs) = statuses(&g, 0);
        assert!(
            subjobs
                .iter()
                .all(|s| matches!(s.as_str(), "completed" | "failed" | "killed")),
            "attempt {k}: {subjobs:?}"
        );
        outputs_right(&g, 0);
        g.run(&["remove", "--force", "0"]);
        assert!(!g.home().join("workspace/0").exists());
        no_leftovers(&g);
    }
    assert!(
        seen_cut_off > 0,
        "no kill landed between hand-over and record: the test proves little"
    );
}

#[test]
fn a_resubmit_killed_part_way_never_lets_an_old_run_finish_a_new_one() {
    let g = Ganga::new();
    let file = job_file(&g, 300);
    let id = g.submit(&file, &["--wait"]);
    // Subjob 0 failed on its first run; fail half of the others by hand, so that a
    // resubmission has much to hand over.
    for i in (1..300).step_by(2) {
        g.run(&["force-status", &format!("{id}.{i}"), "failed"]);
    }
    let started = g.home().join(format!("workspace/{id}/1/local/queued-2"));
    let mut child = g.spawn(&["resubmit", &id.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() && Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    kill9(&mut child);
    let cut = g
        .subjobs(id)
        .iter()
        .filter(|s| s["run"]["status"] == "submitting")
        .count();
    assert!(
        cut > 0,
        "the resubmission ended before it was killed: the test proves little"
    );
    g.run(&["monitor", "--until-idle", "--interval", "0.1"]);
    let (job, subjobs) = statuses(&g, id);
    assert!(
        subjobs
            .iter()
            .all(|s| matches!(s.as_str(), "completed" | "failed")),
        "{job}: {subjobs:?}"
    );
    outputs_right(&g, id);
    for _ in 0..2 {
        if g.status(&id.to_string()) == "failed" {
            let _ = g.output(&["resubmit", "--wait", &id.to_string()]);
        }
    }
    let _ = job;
    let (job, subjobs) = statuses(&g, id);
    assert_eq!(job, "completed", "{subjobs:?}");
    // A resubmitted unit is on a later run, and its outputs are that run's.
    for sj in g.subjobs(id).iter().skip(1).step_by(2) {
        assert!(sj["run"]["submit_count"].as_u64().unwrap_or(0) >= 2, "{sj}");
    }
    outputs_right(&g, id);
    no_leftovers(&g);
}
