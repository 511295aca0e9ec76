//! One linking mode of the store benchmarks: its install, its home, and its measured
//! processes (each run's figures, the medians held to the workload's targets).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde_json::Value;

use super::child::{self, Logs, Measured};
use super::install::fresh_dir;
use super::migrate::Gangadir;
use super::report::{BenchResult, Figure, Limits, Run, process_figures, secs};
use super::workload::{Named, Workload};
use super::{Bench, Linking};

/// One linking mode: its install, its home, and the benchmarks run against them.
pub(super) struct Mode<'a> {
    pub(super) linking: Linking,
    pub(super) bin: PathBuf,
    pub(super) home: PathBuf,
    /// An empty XDG config directory: no user config or plugin dir leaks in.
    pub(super) xdg: PathBuf,
    /// Where each measured process leaves its output.
    pub(super) logs: Logs,
    pub(super) named: &'a Named,
    pub(super) runs: u32,
    pub(super) checks: serde_json::Map<String, Value>,
    /// What `migrate` migrates (none: the workload has no fixture).
    pub(super) gangadir: Option<Gangadir>,
}

impl<'a> Mode<'a> {
    pub(super) fn new(
        linking: Linking,
        bin: PathBuf,
        dir: &Path,
        named: &'a Named,
        runs: Option<u32>,
    ) -> anyhow::Result<Mode<'a>> {
        let base = dir.join(linking.name());
        let logs = base.join("logs");
        let xdg = base.join("xdg-config");
        fresh_dir(&logs)?;
        fresh_dir(&xdg)?;
        Ok(Mode {
            linking,
            bin,
            home: base.join("home"),
            xdg,
            logs: Logs::new(logs),
            named,
            runs: runs.unwrap_or(named.workload.runs).max(1),
            checks: serde_json::Map::new(),
            gangadir: None,
        })
    }

    pub(super) fn workload(&self) -> &Workload {
        &self.named.workload
    }

    pub(super) fn command(&self, program: &str) -> Command {
        let mut cmd = child::isolated(&self.bin.join(program), &self.xdg);
        cmd.env("GANGA_HOME", &self.home).current_dir(&self.bin);
        cmd
    }

    pub(super) fn ganga(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("ganga");
        cmd.args(args);
        cmd
    }

    pub(super) fn driver(&self, subcommand: &str, args: &[String]) -> Command {
        let mut cmd = self.command("ganga-bench");
        cmd.arg(subcommand).arg("--home").arg(&self.home).args(args);
        cmd
    }

    /// Runs a command once, unmeasured, and returns its stdout parsed as JSON.
    pub(super) fn json_of(&mut self, label: &str, mut cmd: Command) -> anyhow::Result<Value> {
        let m = self.logs.measure(label, &mut cmd, true)?;
        let text = m.output()?;
        serde_json::from_str(&text).with_context(|| format!("{label}: stdout is not JSON"))
    }

    /// Runs a command once, unmeasured, and returns the length of the JSON array it prints.
    pub(super) fn array_len_of(&mut self, label: &str, mut cmd: Command) -> anyhow::Result<usize> {
        self.logs.measure(label, &mut cmd, true)?.json_array_len()
    }

    pub(super) fn progress(&self, bench: &str, i: u32, n: u32, m: &Measured, extra: &str) {
        if m.peak_rss_kib <= m.parent_peak_rss_kib {
            eprintln!(
                "bench: warning: the peak RSS of {bench} ({} KiB) is not above the harness's \
                 own ({} KiB), which Linux carries over into its children: the figure is the \
                 harness's",
                m.peak_rss_kib, m.parent_peak_rss_kib
            );
        }
        eprintln!(
            "bench [{}] {bench} {}/{n}: wall {}, peak RSS {:.1} MiB{extra}",
            self.linking.name(),
            i + 1,
            secs(m.wall_secs),
            m.peak_rss_mib()
        );
    }

    pub(super) fn run(&mut self, benches: &[Bench]) -> anyhow::Result<Vec<BenchResult>> {
        let mut results = vec![self.store()?];
        let big_job = self.check_store()?;
        if benches.contains(&Bench::List) {
            results.push(self.list()?);
        }
        if benches.contains(&Bench::LoadOne) {
            // `chosen` runs load-one only on a workload with a big job.
            let id = big_job.context("load-one needs a workload with a big job")?;
            results.extend(self.load_one(id)?);
        }
        if benches.contains(&Bench::TouchAll) {
            results.push(self.touch_all("statuses")?);
        }
        if benches.contains(&Bench::TouchAllSubjobs) {
            results.push(self.touch_all("subjobs")?);
        }
        if benches.contains(&Bench::Churn) {
            results.push(self.churn()?);
        }
        if benches.contains(&Bench::Migrate) {
            // `chosen` runs migrate only on a workload with a fixture, unpacked by `bench`.
            let g = self
                .gangadir
                .clone()
                .context("migrate needs a workload with a Ganga fixture")?;
            results.push(self.migrate(&g)?);
        }
        Ok(results)
    }

    /// A benchmark's result: the medians of its processes' wall time and peak RSS, held
    /// to `limits`, then its own `figures`.
    pub(super) fn result(
        &self,
        benchmark: &str,
        cmd: &Command,
        runs: Vec<Run>,
        limits: Limits,
        figures: Vec<Figure>,
    ) -> BenchResult {
        let mut all = process_figures(&runs, limits);
        all.extend(figures);
        BenchResult {
            benchmark: benchmark.to_owned(),
            linking: self.linking.name().to_owned(),
            command: crate::shown(cmd),
            runs,
            figures: all,
        }
    }

    /// Runs a `ganga` command `self.runs` times.
    pub(super) fn ganga_runs(
        &mut self,
        label: &str,
        args: &[&str],
    ) -> anyhow::Result<(Command, Vec<Run>)> {
        let mut cmd = self.ganga(args);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            let m = self.logs.measure(label, &mut cmd, false)?;
            self.progress(label, i, self.runs, &m, "");
            runs.push(Run {
                process: m,
                driver: None,
                disk: None,
            });
        }
        Ok((cmd, runs))
    }

    /// Runs the driver `self.runs` times; each run's report must pass `check`.
    pub(super) fn driver_runs(
        &mut self,
        label: &str,
        subcommand: &str,
        args: &[String],
        check: impl Fn(&Value) -> anyhow::Result<String>,
    ) -> anyhow::Result<(Command, Vec<Run>)> {
        let mut cmd = self.driver(subcommand, args);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            let m = self.logs.measure(label, &mut cmd, true)?;
            let driver: Value =
                serde_json::from_str(&m.output()?).with_context(|| format!("{label}'s report"))?;
            let extra = check(&driver)?;
            self.progress(label, i, self.runs, &m, &extra);
            runs.push(Run::with_driver(m, driver));
        }
        Ok((cmd, runs))
    }
}
