//! `cargo xtask bench monitor`: issue 7's figures of the monitoring service.
//!
//! - `cycle`: `ganga-bench monitor-cycle` drives 100,000 active subjobs with the
//!   monitor and test-support's fake backend (which answers at once): one full cycle
//!   (read the index of active units, poll, decide, commit) turning every unit from
//!   `submitted` to `running`; then every unit to `completed` (two changes each). Wall,
//!   CPU per status change, peak RSS of the process.
//! - `churn`: the store benchmark of the same name on the `full` workload, again.
//! - `local N`: a job of N subjobs of `/bin/true` on the real Local backend through the
//!   real CLI, as a user runs it: `ganga submit` (which starts the background monitor),
//!   then `ganga wait`. The submit's wall time; the processes the home runs during it
//!   and after, beside `max_parallel`; from the submit to all completed; from the last
//!   program's exit to all completed; for every subjob, the delay between its exit record
//!   (its modification time) and the time the monitor recorded it `completed` (exit
//!   noticed, outputs collected, committed: an upper bound of the exit noticed, whose own
//!   time cannot be read back, since `completing` is stamped with the exit's time), read
//!   by `ganga-bench exits`; the
//!   CPU of the ganga processes (submit, wait, and the background monitor, read from
//!   `/proc` before it is stopped).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::mode::Mode;
use super::report::{BenchResult, Figure, Run, Unit, median, num, secs};
use super::scale::{self, Common, Harness, Sampler};
use super::workload::Named;
use super::{Bench, Linking};

pub(crate) const USAGE: &str = "\
cargo xtask bench monitor [--units N] [--local N,N...] [--max-parallel N] [--no-churn]
                          [--runs N] [--dir DIR] [--json PATH] [--no-build]

  --units         active subjobs of the fake backend's cycle (default 100000; 0: none)
  --local         sizes of the real Local jobs (default 1000,10000; 0: none)
  --max-parallel  the Local backend's max_parallel (default: the CPUs usable)
  --no-churn      leave out the store's churn benchmark (which populates the full
                  workload first, about a minute)
  --runs          runs of each (default 3; the Local jobs once each unless given)";

// Issue 7's targets.
const CYCLE_S: f64 = 1.0;
const CPU_US_PER_CHANGE: f64 = 5.0;
const PEAK_RSS_MB: f64 = 150.0;
const LOCAL_AFTER_LAST_EXIT_S: f64 = 5.0;
const NOTICED_P99_MS: f64 = 200.0;
const SUBMIT_10000_S: f64 = 2.0;

struct Options {
    units: u64,
    local: Vec<u64>,
    max_parallel: usize,
    churn: bool,
    local_runs: Option<u32>,
}

pub(crate) fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let runs_given = args.iter().any(|a| a == "--runs");
    let (common, rest) = Common::take(args, 3)?;
    let mut o = Options {
        units: 100_000,
        local: vec![1_000, 10_000],
        max_parallel: std::thread::available_parallelism().map_or(1, usize::from),
        churn: true,
        local_runs: runs_given.then_some(common.runs),
    };
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--units" => o.units = scale::parse_value(arg, it.next())?,
            "--max-parallel" => o.max_parallel = scale::parse_value(arg, it.next())?,
            "--local" => {
                let v: String = scale::parse_value(arg, it.next())?;
                o.local = v
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<u64>()
                            .with_context(|| format!("--local {v}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|&n| n > 0)
                    .collect();
            }
            "--no-churn" => o.churn = false,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    let plugins = [("ganga-backend-local", "ganga_backend_local")];
    let mut h = Harness::new(root, "monitor", &common, &plugins)?;
    let mut results = Vec::new();
    if o.units > 0 {
        results.push(cycle(&mut h, &o, common.runs)?);
    }
    if o.churn {
        results.extend(churn(&h, common.runs)?);
    }
    for &n in &o.local {
        results.push(local(&mut h, &o, n)?);
    }
    h.finish(
        args,
        common.json.as_deref(),
        &results,
        json!({"max_parallel": o.max_parallel}),
    )
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(runs.iter().map(f).collect())
}

fn driver(r: &Run, pointer: &str) -> f64 {
    r.driver.as_ref().map_or(f64::NAN, |d| num(d, pointer))
}

/// The fake backend's cycle over `units` subjobs, each run in a fresh home.
fn cycle(h: &mut Harness, o: &Options, runs: u32) -> anyhow::Result<BenchResult> {
    let mut all = Vec::new();
    let mut shown = String::new();
    for i in 0..runs {
        let home = h.fresh_home("cycle-home")?;
        let mut cmd = h.command("ganga-bench", &home);
        cmd.arg("monitor-cycle")
            .arg("--home")
            .arg(&home)
            .args(["--units", &o.units.to_string()]);
        shown = crate::shown(&cmd);
        let m = h.logs.measure("monitor-cycle", &mut cmd, true)?;
        let d: Value = serde_json::from_str(&m.output()?).context("monitor-cycle's report")?;
        // A cycle that did not move every unit fails in the driver; check it here too.
        let (units, collected) = (
            num(&d, "/result/units"),
            num(&d, "/result/outputs_collected"),
        );
        if units as u64 != o.units || collected as u64 != o.units {
            bail!(
                "monitor-cycle drove {units} units and collected {collected}; asked for {}",
                o.units
            );
        }
        eprintln!(
            "bench monitor-cycle {}/{runs}: cycle {}, {:.2} µs CPU/change; to the end {}; peak RSS {:.1} MiB",
            i + 1,
            secs(num(&d, "/result/cycle_secs")),
            num(&d, "/result/cycle_cpu_us_per_change"),
            secs(num(&d, "/result/finish_secs")),
            m.peak_rss_mib()
        );
        all.push(Run {
            process: m,
            driver: Some(d),
            disk: None,
        });
    }
    let rss_mib = PEAK_RSS_MB * 1e6 / 1_048_576.0;
    let figures = vec![
        Figure::new("units", o.units as f64, Unit::Count, "active subjobs"),
        Figure::new(
            "cycle_secs",
            med(&all, |r| driver(r, "/result/cycle_secs")),
            Unit::Secs,
            "a full cycle",
        )
        .at_most(Some(CYCLE_S), secs),
        Figure::new(
            "cycle_cpu_us_per_change",
            med(&all, |r| driver(r, "/result/cycle_cpu_us_per_change")),
            Unit::Micros,
            "CPU per change",
        )
        .at_most(Some(CPU_US_PER_CHANGE), |t| format!("{t} µs")),
        Figure::new(
            "cycle_peak_rss_mib",
            med(&all, |r| driver(r, "/result/cycle_peak_rss_kib")) / 1024.0,
            Unit::Mib,
            "peak RSS at the end of that cycle",
        )
        .at_most(Some(rss_mib), |t| {
            format!("{:.0} MB", t * 1_048_576.0 / 1e6)
        }),
        Figure::new(
            "finish_secs",
            med(&all, |r| driver(r, "/result/finish_secs")),
            Unit::Secs,
            "all completed (2 changes each, outputs collected)",
        ),
        Figure::new(
            "finish_cpu_us_per_change",
            med(&all, |r| driver(r, "/result/finish_cpu_us_per_change")),
            Unit::Micros,
            "CPU per change to the end",
        ),
        Figure::new(
            "submit_secs",
            med(&all, |r| driver(r, "/result/submit_secs")),
            Unit::Secs,
            "submitting them (in-process)",
        ),
    ];
    let mut result = BenchResult {
        benchmark: format!("monitor-cycle {}", o.units),
        linking: Linking::Dynamic.name().to_owned(),
        command: shown,
        runs: Vec::new(),
        figures: Vec::new(),
    };
    result.figures.push(Figure::new(
        "wall_secs",
        med(&all, |r| r.process.wall_secs),
        Unit::Secs,
        "",
    ));
    result.figures.push(
        Figure::new(
            "peak_rss_mib",
            med(&all, |r| r.process.peak_rss_mib()),
            Unit::Mib,
            "",
        )
        .at_most(Some(rss_mib), |t| {
            format!("{:.0} MB", t * 1_048_576.0 / 1e6)
        }),
    );
    result.figures.extend(figures);
    result.runs = all;
    Ok(result)
}

/// The store's `churn` on the `full` workload (populated first), plugins loaded.
fn churn(h: &Harness, runs: u32) -> anyhow::Result<Vec<BenchResult>> {
    let named = Named::load(&h.root, "full")?;
    let mut mode = Mode::new(Linking::Dynamic, h.bin.clone(), &h.dir, &named, Some(runs))?;
    let results = mode.run(&[Bench::Store, Bench::Churn])?;
    Ok(results
        .into_iter()
        .filter(|r| r.benchmark == "churn")
        .collect())
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// A job of `n` subjobs of `/bin/true` on the Local backend, from `ganga submit` to all
/// completed.
fn local(h: &mut Harness, o: &Options, n: u64) -> anyhow::Result<BenchResult> {
    let runs = o.local_runs.unwrap_or(1);
    let mut all = Vec::new();
    let mut shown = String::new();
    for i in 0..runs {
        let home = h.fresh_home(&format!("local-{n}-home"))?;
        let (run, cmd) = local_once(h, o, n, &home)
            .with_context(|| format!("the Local job of {n} subjobs (home {})", home.display()))?;
        shown = cmd;
        let d = run
            .driver
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default();
        eprintln!("bench local {n} {}/{runs}: {d}", i + 1);
        all.push(run);
    }
    let figure = |name: &str, unit: Unit, label: &'static str| {
        Figure::new(
            name,
            med(&all, |r| driver(r, &format!("/{name}"))),
            unit,
            label,
        )
    };
    let submit_target = (n == 10_000).then_some(SUBMIT_10000_S);
    let mut figures = vec![
        Figure::new(
            "wall_secs",
            med(&all, |r| r.process.wall_secs),
            Unit::Secs,
            "",
        )
        .at_most(submit_target, secs),
        Figure::new(
            "peak_rss_mib",
            med(&all, |r| r.process.peak_rss_mib()),
            Unit::Mib,
            "",
        ),
        Figure::new("subjobs", n as f64, Unit::Count, "subjobs"),
        figure("all_completed_secs", Unit::Secs, "submit to all completed"),
        figure(
            "after_last_exit_secs",
            Unit::Secs,
            "last exit to all completed",
        )
        .at_most((n == 1_000).then_some(LOCAL_AFTER_LAST_EXIT_S), secs),
        figure("completed_p50_ms", Unit::Millis, "exit to completed p50"),
        figure(
            "completed_p99_ms",
            Unit::Millis,
            "exit to completed p99 (bounds exit noticed)",
        )
        .at_most(Some(NOTICED_P99_MS), |t| format!("{t} ms")),
        figure("ganga_cpu_secs", Unit::Secs, "CPU of ganga processes"),
        figure("monitor_cpu_secs", Unit::Secs, "of it the monitor's"),
        figure(
            "peak_processes_submit",
            Unit::Count,
            "processes at most during submit",
        ),
        figure("peak_processes_after", Unit::Count, "after it"),
    ];
    figures.push(Figure::new(
        "max_parallel",
        o.max_parallel as f64,
        Unit::Count,
        "max_parallel",
    ));
    Ok(BenchResult {
        benchmark: format!("local {n}"),
        linking: Linking::Dynamic.name().to_owned(),
        command: shown,
        runs: all,
        figures,
    })
}

fn local_once(h: &mut Harness, o: &Options, n: u64, home: &Path) -> anyhow::Result<(Run, String)> {
    let job_file =
        scale::write_true_job(home, &format!("bench-true-{n}"), "type = \"local\"\n", n)?;
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!("[plugin.local]\nmax_parallel = {}\n", o.max_parallel),
    )?;
    let with_config = |cmd: &mut std::process::Command| {
        cmd.arg("--config").arg(&config);
    };
    let sampler = Sampler::start(home);
    let started = unix_ms(SystemTime::now());
    let mut submit = h.command("ganga", home);
    with_config(&mut submit);
    submit.arg("submit").arg(&job_file);
    let shown = crate::shown(&submit);
    let submitted = h
        .logs
        .measure(&format!("local-{n}-submit"), &mut submit, true)?;
    let peak_submit = sampler.take_peak();
    // The background monitor `ganga submit` started; `ganga wait` only watches it (were
    // it started first, it would drive the job itself).
    let monitor = h.running_monitor(home, &config)?;
    let mut wait = h.command("ganga", home);
    with_config(&mut wait);
    wait.args(["wait", "0", "--timeout", "3600"]);
    let waited = h
        .logs
        .measure(&format!("local-{n}-wait"), &mut wait, false)?;
    let peak_after = sampler.take_peak();
    drop(sampler);
    let monitor_cpu = scale::process_cpu_secs(monitor).with_context(|| {
        format!("the background monitor (pid {monitor}) was gone before its CPU time was read")
    })?;
    // It stays for its idle time: stop it, and wait until it is gone.
    let mut stop = h.command("ganga", home);
    with_config(&mut stop);
    stop.args(["monitor", "stop"]);
    h.logs
        .measure(&format!("local-{n}-monitor-stop"), &mut stop, false)?;
    let gone = scale::wait_until(Duration::from_secs(30), || {
        !Path::new(&format!("/proc/{monitor}")).exists()
    });
    if !gone {
        bail!("the background monitor {monitor} did not stop when asked");
    }

    let mut exits = h.command("ganga-bench", home);
    exits
        .arg("exits")
        .arg("--home")
        .arg(home)
        .args(["--job", "0"]);
    let e = h.json_of(&format!("local-{n}-exits"), &mut exits)?;
    let r = &e["result"];
    let (completed, unmeasured) = (num(r, "/completed") as u64, num(r, "/unmeasured") as u64);
    if completed != n || unmeasured != 0 {
        bail!(
            "{completed} of {n} subjobs completed, {unmeasured} without an exit record or times: {e}"
        );
    }
    let last_completed = num(r, "/last_completed_ms");
    let cpu = |m: &super::child::Measured| m.user_secs + m.sys_secs;
    let figures = json!({
        "all_completed_secs": (last_completed - started) / 1000.0,
        "after_last_exit_secs": (last_completed - num(r, "/last_exit_ms")) / 1000.0,
        "completed_p50_ms": num(r, "/completed_ms/p50"),
        "completed_p99_ms": num(r, "/completed_ms/p99"),
        "ganga_cpu_secs": cpu(&submitted) + cpu(&waited) + monitor_cpu,
        "monitor_cpu_secs": monitor_cpu,
        "submit_cpu_secs": cpu(&submitted),
        "wait_wall_secs": waited.wall_secs,
        "peak_processes_submit": peak_submit,
        "peak_processes_after": peak_after,
        "exits": r,
    });
    Ok((Run::with_driver(submitted, figures), shown))
}
