//! `cargo xtask bench python`: issue 12's benchmark of the Python module. A Python
//! process iterates every job of a store and every subjob's status through `ganga_rs`
//! (`for j in jobs: for sj in j.subjobs: sj.status`), measured from outside as the other
//! benchmarks are (wall clock, peak RSS from `wait4`).
//!
//! It reuses the rest of the harness: the workload files, the dynamic install (the
//! `ganga` binary, `ganga-bench` and the plugin libraries copied into a directory of
//! their own) and the populated home of `store`. The module is built once as a release
//! wheel with maturin into a virtual environment under the results directory, and finds
//! the plugins beside the installed `ganga` on `PATH`, as a user's does.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::child;
use super::install::{install, results_dir};
use super::mode::Mode;
use super::report::{self, Limits, Run, med, num, num_opt, reading_figures, secs};
use super::workload::Named;
use super::{Linking, Profile};

/// Issue 12's targets for a store of a million subjobs.
const WALL_SECS: f64 = 3.0;
/// MB = 10^6 bytes, as the issue states it.
const PEAK_RSS_MB: f64 = 150.0;

/// What the measured Python process runs: every job, every subjob's status, then one
/// line of JSON with what it saw and how long the iteration took (after the import).
const SCRIPT: &str = r#"
import json, sys, time
import ganga_rs
start = time.perf_counter()
jobs = subjobs = 0
statuses = {}
for j in ganga_rs.jobs:
    jobs += 1
    for sj in j.subjobs:
        s = sj.status
        statuses[s] = statuses.get(s, 0) + 1
        subjobs += 1
work = time.perf_counter() - start
print(json.dumps({"jobs": jobs, "subjobs": subjobs, "statuses": statuses, "work_secs": work}))
"#;

pub(crate) const USAGE: &str = "\
cargo xtask bench python [--workload tiny|small|full|PATH] [--runs N] [--json PATH]
                         [--dir DIR] [--no-build]

  Iterates every subjob's status of the workload's store from Python (ganga_rs),
  held to issue 12's targets (3 s, 150 MB). Default workload: full (a million subjobs).";

pub(crate) fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let mut args = args.to_vec();
    if !args.iter().any(|a| a == "--workload") {
        args.extend(["--workload".to_owned(), "full".to_owned()]);
    }
    // The other benchmarks' options, but one linking: the module loads the plugins as
    // libraries.
    let super::Request::Run(opts) = super::parse(&args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    if !opts.benches.is_empty() {
        bail!("`bench python` runs only itself\n\n{USAGE}");
    }
    let named = Named::load(root, &opts.workload)?;
    let target = crate::target_dir(root);
    let dir = results_dir(&target, opts.dir.as_deref(), &named.name)?;
    let venv = dir.join("python-venv");
    if opts.build {
        build(root, &venv)?;
    }
    let bin = install(&target, Linking::Dynamic, Profile::Release, &dir)?;
    let python = venv.join("bin").join("python");

    let mut mode = Mode::new(Linking::Dynamic, bin, &dir, &named, opts.runs)?;
    let mut results = vec![mode.store()?];
    mode.check_store()?;
    results.push(iterate(&mut mode, &python)?);

    let json_path = opts
        .json
        .clone()
        .unwrap_or_else(|| dir.join("python-results.json"));
    let report = json!({
        "harness": "cargo xtask bench python",
        "arguments": args,
        "machine": super::machine::describe(root, &dir),
        "workload": {"name": named.name, "path": named.path},
        "results": results,
    });
    let heading = format!(
        "workload {}: {}; release profile",
        named.name, named.workload.description
    );
    report::publish(&json_path, &report, &heading, &results)
}

/// The release binaries the install copies, and the module as a release wheel
/// installed into `venv` (made if missing, with maturin from PyPI).
fn build(root: &Path, venv: &Path) -> anyhow::Result<()> {
    crate::run(crate::cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "ganga-cli",
        "-p",
        "ganga-bench",
        "-p",
        "ganga-store-lmdb",
        "-p",
        "ganga-backend-local",
    ]))?;
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        crate::run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    }
    crate::run(Command::new(bin.join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "maturin>=1.9,<2",
    ]))?;
    let wheels = venv.join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels)?;
    }
    crate::run(
        Command::new(bin.join("maturin"))
            .current_dir(root)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(root.join("crates/ganga-python/Cargo.toml"))
            .arg("--interpreter")
            .arg(bin.join("python"))
            .arg("--out")
            .arg(&wheels),
    )?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| format!("maturin left no wheel in {}", wheels.display()))?;
    crate::run(
        Command::new(bin.join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel),
    )
}

/// Runs the script `mode.runs` times against the mode's home; each run must have seen
/// every job and subjob of the workload.
fn iterate(mode: &mut Mode<'_>, python: &Path) -> anyhow::Result<report::BenchResult> {
    let (jobs, subjobs) = (mode.workload().jobs(), mode.workload().subjobs());
    // The environment `ganga` gets from the harness (this home, no user config), and
    // the installed `ganga` first on PATH: the module finds the plugins beside it.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![mode.bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = child::isolated(python, &mode.xdg);
    cmd.env("GANGA_HOME", &mode.home)
        .env("PATH", std::env::join_paths(dirs)?)
        .current_dir(&mode.bin)
        .args(["-c", SCRIPT]);
    let label = "python-iterate";
    let mut runs = Vec::new();
    for i in 0..mode.runs {
        let m = mode.logs.measure(label, &mut cmd, true)?;
        let seen: Value =
            serde_json::from_str(m.output()?.trim()).context("the Python script's report")?;
        let (j, s) = (num(&seen, "/jobs") as u64, num(&seen, "/subjobs") as u64);
        if (j, s) != (jobs, subjobs) {
            bail!("Python saw {j} jobs and {s} subjobs; the workload has {jobs} and {subjobs}");
        }
        mode.progress(
            label,
            i,
            mode.runs,
            &m,
            &format!(", iteration {}", secs(num(&seen, "/work_secs"))),
        );
        runs.push(Run::with_driver(m, seen));
    }
    let work = med(&runs, |r| num_opt(&r.driver, "/work_secs"));
    let figures = reading_figures(subjobs, work, "iterating");
    let limits = Limits {
        wall_secs: Some(WALL_SECS),
        peak_rss_mb: Some(PEAK_RSS_MB),
    };
    Ok(mode.result(label, &cmd, runs, limits, figures))
}
