//! `cargo xtask bench batch`: issue 9's figures of the Batch backend on the real Slurm
//! that `.ci/batch/slurm.sh` runs.
//!
//! A job of N subjobs (default 1,000) of `/bin/true` goes through the real CLI as a user
//! submits it, twice: as job arrays (the default: one `sbatch` per 1,000 units) and with
//! `array_size = 1` (one `sbatch` per subjob). Slurm's commands are given to the plugin as
//! small scripts that log each call and `exec` the real one, so the commands run are
//! counted, not inferred. Figures: the submission's wall time and `sbatch` calls; the
//! listings (`squeue`) per poll cycle of the background monitor (`ganga monitor status`
//! counts its polls); from the last program's exit (its exit record's modification time)
//! to all completed, beside the poll interval.
//!
//! The Slurm tests' lock (`/tmp/ganga-batch-tests-slurm.lock`) is held shared throughout,
//! as `tests/e2e/batch.rs` holds it: a test that stops the controller takes it
//! exclusively and so never runs meanwhile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Linking;
use super::report::{BenchResult, Figure, Limits, Run, Unit, median, num, process_figures, secs};
use super::scale::{self, Common, Harness};

pub(crate) const USAGE: &str = "\
cargo xtask bench batch [--subjobs N] [--interval SECS] [--runs N] [--dir DIR] [--json PATH]
                        [--no-build]

  --subjobs   subjobs of the job (default 1000)
  --interval  the monitor's poll interval for the batch backend (default 5)
  --runs      runs of each mode (default 1)

Needs Slurm running (`cargo xtask services start`, or `.ci/batch/slurm.sh start`).";

// Issue 9's targets.
const SUBMIT_S: f64 = 2.0;
const LISTINGS_PER_CYCLE: f64 = 1.0;

const COMMANDS: [&str; 3] = ["sbatch", "squeue", "scancel"];

pub(crate) fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let (common, rest) = Common::take(args, 1)?;
    let (mut subjobs, mut interval) = (1_000u64, 5.0f64);
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--subjobs" => subjobs = scale::parse_value(arg, it.next())?,
            "--interval" => interval = scale::parse_value(arg, it.next())?,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    let _lock = slurm_lock()?;
    let status = std::process::Command::new("bash")
        .arg(root.join(".ci/batch/slurm.sh"))
        .arg("status")
        .output()
        .context("cannot run .ci/batch/slurm.sh status")?;
    if !status.status.success() {
        bail!(
            "Slurm is not running, and this benchmark needs it: start it (as root) with `cargo xtask services start` or `.ci/batch/slurm.sh start`\n{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let plugins = [("ganga-backend-batch", "ganga_backend_batch")];
    let mut h = Harness::new(root, "batch", &common, &plugins)?;
    let wrappers = counting_wrappers(&h.dir)?;
    let mut results = Vec::new();
    for (mode, array_size) in [("arrays", 1_000u32), ("one sbatch per subjob", 1)] {
        let mut runs = Vec::new();
        let mut shown = String::new();
        for i in 0..common.runs {
            let (run, cmd) = once(&mut h, &wrappers, subjobs, array_size, interval)
                .with_context(|| format!("{subjobs} subjobs on Slurm, {mode}"))?;
            eprintln!(
                "bench batch {mode} {}/{}: {}",
                i + 1,
                common.runs,
                run.driver
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default()
            );
            shown = cmd;
            runs.push(run);
        }
        results.push(result(mode, shown, runs, subjobs, interval));
    }
    h.finish(
        args,
        common.json.as_deref(),
        &results,
        json!({"subjobs": subjobs, "interval_secs": interval}),
    )
}

/// The Slurm tests' lock, shared.
fn slurm_lock() -> anyhow::Result<std::fs::File> {
    let path = std::env::temp_dir().join("ganga-batch-tests-slurm.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.lock_shared()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

/// Scripts that log each call of a Slurm command (to `calls` beside them, one line
/// `NAME WHO`: `monitor` when the ganga process that ran it is a monitor, else `other`)
/// and run the real one.
struct Wrappers {
    dir: PathBuf,
    calls: PathBuf,
}

fn counting_wrappers(bench_dir: &Path) -> anyhow::Result<Wrappers> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = bench_dir.join("commands");
    std::fs::create_dir_all(&dir)?;
    let calls = dir.join("calls");
    for name in COMMANDS {
        let real = which(name)?;
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\ncase \" $(tr '\\0' ' ' </proc/$PPID/cmdline 2>/dev/null) \" in\n\
                 *' monitor '*) who=monitor ;;\n*) who=other ;;\nesac\n\
                 echo \"{name} $who\" >> '{}'\nexec '{}' \"$@\"\n",
                calls.display(),
                real.display()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(Wrappers { dir, calls })
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("`{name}` is not on PATH: is Slurm installed?"))
}

impl Wrappers {
    /// Calls of each command so far: all, and those a monitor made.
    fn counts(&self) -> anyhow::Result<[(u64, u64); 3]> {
        let text = match std::fs::read_to_string(&self.calls) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).context("cannot read the command log"),
        };
        let mut out = [(0u64, 0u64); 3];
        for line in text.lines() {
            let (name, who) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            if let Some(i) = COMMANDS.iter().position(|c| *c == name) {
                out[i].0 += 1;
                if who == "monitor" {
                    out[i].1 += 1;
                }
            }
        }
        Ok(out)
    }
}

fn once(
    h: &mut Harness,
    w: &Wrappers,
    n: u64,
    array_size: u32,
    interval: f64,
) -> anyhow::Result<(Run, String)> {
    let home = h.fresh_home("batch-home")?;
    let config = home.join("config.toml");
    let commands: Vec<String> = COMMANDS
        .iter()
        .map(|c| format!("{c} = \"{}\"", w.dir.join(c).display()))
        .collect();
    std::fs::write(
        &config,
        format!(
            "[monitor.backend.batch]\ninterval_secs = {interval}\n[plugin.batch]\narray_size = {array_size}\n\
             commands = {{ {} }}\n",
            commands.join(", ")
        ),
    )?;
    let job_file = scale::write_true_job(
        &home,
        &format!("bench-slurm-{n}"),
        "type = \"batch\"\nsystem = \"slurm\"\nqueue = \"debug\"\n\
         extra_options = [\"--time=10\", \"--mem=10M\"]\n",
        n,
    )?;
    let before = w.counts()?;
    let mut submit = h.command("ganga", &home);
    submit
        .arg("--config")
        .arg(&config)
        .arg("submit")
        .arg(&job_file);
    let shown = crate::shown(&submit);
    let submitted = h.logs.measure("batch-submit", &mut submit, true)?;
    let after_submit = w.counts()?;
    let monitor = h.running_monitor(&home, &config)?;
    let mut wait = h.command("ganga", &home);
    wait.arg("--config")
        .arg(&config)
        .args(["wait", "0", "--timeout", "3600"]);
    let waited = h.logs.measure("batch-wait", &mut wait, false);
    let status = h.ganga_json(&home, Some(&config), &["monitor", "status", "--json"])?;
    let after = w.counts()?;
    let mut stop = h.command("ganga", &home);
    stop.arg("--config").arg(&config).args(["monitor", "stop"]);
    h.logs.measure("batch-monitor-stop", &mut stop, false)?;
    scale::wait_until(Duration::from_secs(30), || {
        !Path::new(&format!("/proc/{monitor}")).exists()
    });
    // `ganga wait` exits non-zero when a subjob did not complete: the benchmark fails.
    let waited = waited.context("not every subjob completed")?;
    let polls = num(&status, "/monitor/polls");
    let mut exits = h.command("ganga-bench", &home);
    exits
        .arg("exits")
        .arg("--home")
        .arg(&home)
        .args(["--job", "0", "--backend", "batch"]);
    let e = h.json_of("batch-exits", &mut exits)?;
    let r = &e["result"];
    let (completed, unmeasured) = (num(r, "/completed") as u64, num(r, "/unmeasured") as u64);
    if completed != n || unmeasured != 0 {
        bail!(
            "{completed} of {n} subjobs completed, {unmeasured} without an exit record or times: {e}"
        );
    }
    // The background monitor starts (and may poll) before `ganga submit` returns: the
    // calls are told apart by the process that made them.
    let sbatch = after_submit[0].0 - before[0].0;
    let squeue = after[1].1 - before[1].1;
    let figures = json!({
        "sbatch_calls": sbatch,
        "squeue_calls_other": (after[1].0 - before[1].0) - squeue,
        "squeue_calls_monitor": squeue,
        "scancel_calls": after[2].0 - before[2].0,
        "polls": polls,
        "squeue_per_poll": squeue as f64 / polls.max(1.0),
        "after_last_exit_secs": (num(r, "/last_completed_ms") - num(r, "/last_exit_ms")) / 1000.0,
        "completed_p50_ms": num(r, "/completed_ms/p50"),
        "completed_p99_ms": num(r, "/completed_ms/p99"),
        "wait_wall_secs": waited.wall_secs,
        "exits": r,
    });
    Ok((Run::with_driver(submitted, figures), shown))
}

fn result(mode: &str, command: String, runs: Vec<Run>, n: u64, interval: f64) -> BenchResult {
    let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let d = |name: &str| {
        let pointer = format!("/{name}");
        med(&|r: &Run| r.driver.as_ref().map_or(f64::NAN, |d| num(d, &pointer)))
    };
    let limits = Limits {
        wall_secs: Some(SUBMIT_S),
        peak_rss_mb: None,
    };
    let mut figures = process_figures(&runs, limits);
    figures.extend([
        Figure::new("subjobs", n as f64, Unit::Count, "subjobs"),
        Figure::new(
            "sbatch_calls",
            d("sbatch_calls"),
            Unit::Count,
            "sbatch calls",
        ),
        Figure::new("polls", d("polls"), Unit::Count, "poll cycles"),
        Figure::new(
            "squeue_per_poll",
            d("squeue_per_poll"),
            Unit::Number,
            "squeue per poll cycle",
        )
        .at_most(Some(LISTINGS_PER_CYCLE), |t| format!("{t}")),
        Figure::new(
            "after_last_exit_secs",
            d("after_last_exit_secs"),
            Unit::Secs,
            "last exit to all completed",
        )
        .at_most(Some(interval), secs),
        Figure::new(
            "completed_p50_ms",
            d("completed_p50_ms"),
            Unit::Millis,
            "exit to completed p50",
        ),
        Figure::new(
            "completed_p99_ms",
            d("completed_p99_ms"),
            Unit::Millis,
            "exit to completed p99",
        ),
    ]);
    BenchResult {
        benchmark: format!("batch slurm {n}, {mode}"),
        linking: Linking::Dynamic.name().to_owned(),
        command,
        runs,
        figures,
    }
}
