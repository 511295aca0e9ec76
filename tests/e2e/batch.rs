//! The Batch backend through the `ganga` CLI and its monitor, on the real Slurm and Grid
//! Engine that `cargo xtask services start` runs: the examples a user submits as they
//! are, a failing job, a kill, and a controller outage the monitor rides out.

use std::path::Path;
use std::process::Command;

use crate::util::{Ganga, examples_dir, wait_for};

/// Fails (never skips) unless the system is up, naming the script that starts it.
fn require(system: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../.ci/batch/{system}.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .arg("status")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{system} is not running and this test needs it: start it (as root) with `cargo xtask services start` or `{} start`\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lock every test that uses Slurm shares (the Batch plugin's tests too), taken
/// exclusively by a test that stops its controller.
fn slurm_lock(exclusive: bool) -> std::fs::File {
    let path = std::env::temp_dir().join("ganga-batch-tests-slurm.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("the Slurm tests' lock file");
    if exclusive {
        f.lock().expect("an exclusive lock");
    } else {
        f.lock_shared().expect("a shared lock");
    }
    f
}

/// A home that polls the batch system every half second.
fn home() -> Ganga {
    let g = Ganga::new();
    std::fs::write(
        g.home().join("config.toml"),
        "[monitor]\nbackground = false\nlost_grace_secs = 20\n[monitor.backend.batch]\ninterval_secs = 0.5\n",
    )
    .expect("config");
    g
}

/// Runs an example of 20 subjobs; subjob `n - 1` writes `<word>-<n>.txt` saying
/// `"<n> <word>d is <n^power>"`.
fn run_example(system: &str, example: &str, word: &str, power: u32) {
    let _lock = (system == "slurm").then(|| slurm_lock(false));
    require(system);
    let g = home();
    let file = examples_dir().join(example);
    let out = g.output(&["submit", "--wait", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let subjobs = g.subjobs(0);
    assert_eq!(subjobs.len(), 20);
    for (i, sj) in subjobs.iter().enumerate() {
        assert_eq!(sj["run"]["status"], "completed", "{sj}");
        let n = i + 1;
        let out = Path::new(sj["output_dir"].as_str().unwrap()).join(format!("{word}-{n}.txt"));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            text.starts_with(&format!("{n} {word}d is {}", n.pow(power))),
            "{}: {text:?}",
            out.display()
        );
    }
}

#[test]
fn the_slurm_example_completes_with_its_outputs() {
    run_example("slurm", "slurm-split.toml", "square", 2);
}

#[test]
fn the_sge_example_completes_with_its_outputs() {
    run_example("sge", "sge-split.toml", "cube", 3);
}

#[test]
fn on_slurm_a_failing_job_fails_with_its_exit_code_and_a_kill_kills() {
    let _lock = slurm_lock(false);
    require("slurm");
    let g = home();
    let failing = g.job_file(
        "fail.toml",
        "[application]\nexe = \"/bin/sh\"\nargs = [\"-c\", \"exit 3\"]\n[backend]\ntype = \"batch\"\nsystem = \"slurm\"\n",
    );
    let out = g.output(&["submit", "--wait", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let job = g.job(0);
    assert_eq!(job["run"]["status"], "failed", "{job}");
    assert_eq!(job["run"]["exit_code"], 3, "{job}");

    let long = g.job_file(
        "long.toml",
        "[application]\nexe = \"/bin/sleep\"\nargs = [\"300\"]\n[backend]\ntype = \"batch\"\nsystem = \"slurm\"\n",
    );
    let id = g.submit(&long, &[]);
    let mut monitor = g.spawn(&["monitor"]);
    wait_for("the job to run", 60, || {
        g.status(&id.to_string()) == "running"
    });
    g.run(&["kill", &id.to_string()]);
    assert_eq!(g.status(&id.to_string()), "killed");
    let _ = Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status();
    let _ = monitor.wait();
}

/// Stops slurmctld, and starts it again when dropped (also when the test fails, so that
/// the tests after it find Slurm up).
struct ControllerOutage(std::path::PathBuf);

impl ControllerOutage {
    fn begin() -> ControllerOutage {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/batch/slurm.sh");
        let stopped = Command::new("bash")
            .arg(&script)
            .arg("stop-controller")
            .status()
            .expect("bash");
        assert!(stopped.success(), "slurm.sh stop-controller failed");
        ControllerOutage(script)
    }
}

impl Drop for ControllerOutage {
    fn drop(&mut self) {
        let started = Command::new("bash")
            .arg(&self.0)
            .arg("start-controller")
            .status()
            .is_ok_and(|s| s.success());
        if !started && !std::thread::panicking() {
            panic!("slurm.sh start-controller failed");
        }
    }
}

fn poll_errors(g: &Ganga) -> u64 {
    let status = g.json(&["monitor", "status", "--json"]);
    status["monitor"]["backends"][0]["errors"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn on_slurm_jobs_ride_out_a_controller_outage() {
    let _lock = slurm_lock(true);
    require("slurm");
    let g = home();
    // The jobs end when the test says, once the controller is down: each waits for the
    // release file, writes its output, and leaves a mark that it ended.
    let release = g.path("release");
    let ended = g.path("ended");
    std::fs::create_dir_all(&ended).unwrap();
    let script = format!(
        "while [ ! -e {r} ]; do sleep 0.2; done; echo done > done.txt; touch {e}/$0",
        r = release.display(),
        e = ended.display()
    );
    let job = g.job_file(
        "outage.toml",
        &format!(
            r#"
output_files = ["done.txt"]
[application]
exe = "/bin/sh"
args = ["-c", {script:?}]
[backend]
type = "batch"
system = "slurm"
[splitter]
type = "args"
append = true
args = [["a"], ["b"], ["c"]]
"#
        ),
    );
    let id = g.submit(&job, &[]);
    let mut monitor = g.spawn(&["monitor"]);
    wait_for("the subjobs to run", 60, || {
        g.status(&id.to_string()) == "running"
    });
    let outage = ControllerOutage::begin();
    std::fs::write(&release, "").unwrap();
    // The jobs end while nobody can ask Slurm: the monitor's polls fail, and nothing
    // changes, however many times it asks.
    wait_for("the jobs to end", 60, || {
        std::fs::read_dir(&ended).map_or(0, |d| d.count()) == 3
    });
    let before = poll_errors(&g);
    wait_for("two more failed polls", 120, || {
        poll_errors(&g) >= before + 2
    });
    for sj in &g.subjobs(id) {
        let s = sj["run"]["status"].as_str().unwrap_or_default();
        assert!(
            matches!(s, "submitted" | "running"),
            "changed during the outage: {sj}"
        );
    }
    drop(outage);
    wait_for("the job to complete after the outage", 180, || {
        g.status(&id.to_string()) == "completed"
    });
    for sj in &g.subjobs(id) {
        let out = Path::new(sj["output_dir"].as_str().unwrap()).join("done.txt");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap_or_default(),
            "done\n",
            "{sj}"
        );
    }
    let _ = Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status();
    let _ = monitor.wait();
}
