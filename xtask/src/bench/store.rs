//! The benchmarks of the store and the cache (issue 3): populating a home, listing jobs,
//! loading one big job, reading every subjob's status, churning statuses.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Linking;
use super::disk::disk_usage;
use super::mode::Mode;
use super::report::{
    self, BenchResult, Figure, Limits, Run, Unit, med, num, num_opt, reading_figures, secs,
};

impl Mode<'_> {
    pub(super) fn store(&mut self) -> anyhow::Result<BenchResult> {
        let n = self.workload().store_runs.max(1);
        let workload = self.named.path.display().to_string();
        let mut runs = Vec::new();
        let mut cmd = self.driver("populate", &["--workload".to_owned(), workload]);
        for i in 0..n {
            if self.home.exists() {
                std::fs::remove_dir_all(&self.home)
                    .with_context(|| format!("cannot clear {}", self.home.display()))?;
            }
            let m = self.logs.measure("store", &mut cmd, true)?;
            let driver: Value = serde_json::from_str(&m.output()?).context("populate's report")?;
            let disk = disk_usage(&self.home.join("store"))?;
            let subjobs = num(&driver, "/result/subjobs");
            let per = num(&disk, "/apparent_bytes") / subjobs.max(1.0);
            self.progress(
                "store",
                i,
                n,
                &m,
                &format!(
                    ", store {} for {} subjobs, {per:.0} B/subjob",
                    secs(num(&driver, "/result/store_secs")),
                    report::thousands(subjobs as u64)
                ),
            );
            runs.push(Run {
                process: m,
                driver: Some(driver),
                disk: Some(disk),
            });
        }
        let subjobs = med(&runs, |r| num_opt(&r.driver, "/result/subjobs"));
        let jobs = med(&runs, |r| num_opt(&r.driver, "/result/jobs"));
        let store_secs = med(&runs, |r| num_opt(&r.driver, "/result/store_secs"));
        let targets = &self.workload().targets;
        let figures = vec![
            Figure::new(
                "bytes_per_subjob",
                med(&runs, |r| num_opt(&r.disk, "/apparent_bytes")) / subjobs.max(1.0),
                Unit::Bytes,
                "per subjob",
            )
            .at_most(targets.store_bytes_per_subjob, |t| format!("{t} B")),
            Figure::new(
                "allocated_bytes_per_subjob",
                med(&runs, |r| num_opt(&r.disk, "/allocated_bytes")) / subjobs.max(1.0),
                Unit::Bytes,
                "allocated per subjob",
            ),
            Figure::new(
                "store_bytes",
                med(&runs, |r| num_opt(&r.disk, "/apparent_bytes")),
                Unit::Bytes,
                "in the store's files",
            ),
            Figure::new("subjobs", subjobs, Unit::Count, "subjobs"),
            Figure::new(
                "store_secs",
                store_secs,
                Unit::Secs,
                "in reserve_ids and commit",
            ),
            Figure::new(
                "subjobs_written",
                subjobs / store_secs,
                Unit::PerSec,
                "subjobs",
            ),
            Figure::new("jobs_written", jobs / store_secs, Unit::PerSec, "jobs"),
        ];
        Ok(self.result("store", &cmd, runs, Limits::default(), figures))
    }

    /// Checks, unmeasured, that the binaries use the store the mode says and that the
    /// home holds what the workload made; returns the big job's id. Also warms up.
    pub(super) fn check_store(&mut self) -> anyhow::Result<Option<u64>> {
        let plugins = self.json_of("check-plugins", self.ganga(&["plugins", "--json"]))?;
        let store = plugins["plugins"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["kind"] == "store" && p["name"] == "lmdb")
            })
            .cloned()
            .context("`ganga plugins` lists no lmdb store")?;
        let info = self.json_of("check-driver", self.driver("info", &[]))?;
        let cli_file = store["file"].as_str();
        let driver_file = info["store"]["plugin"].as_str();
        match self.linking {
            Linking::Dynamic if cli_file.is_none() || driver_file == Some("linked") => {
                bail!("dynamic linking, but the store is linked in: {store} / {info}")
            }
            Linking::Static if cli_file.is_some() || driver_file != Some("linked") => {
                bail!("static linking, but the store is loaded from a library: {store} / {info}")
            }
            _ => {}
        }
        let listed = self.array_len_of("check-jobs", self.ganga(&["jobs", "--json"]))? as u64;
        if listed != self.workload().jobs() {
            bail!(
                "`ganga jobs` listed {listed} jobs; the workload makes {}",
                self.workload().jobs()
            );
        }
        self.checks.insert("cli_store".to_owned(), store);
        self.checks
            .insert("driver_store".to_owned(), info["store"].clone());
        self.checks.insert("jobs_listed".to_owned(), json!(listed));
        Ok(self.big_job())
    }

    /// The big job's id: the last job, when the workload has one.
    pub(super) fn big_job(&self) -> Option<u64> {
        (self.workload().big_job_subjobs() > 0).then(|| self.workload().jobs() - 1)
    }

    pub(super) fn list(&mut self) -> anyhow::Result<BenchResult> {
        let (cmd, runs) = self.ganga_runs("list", &["jobs"])?;
        let t = &self.workload().targets;
        let limits = Limits {
            wall_secs: t.list_wall_ms.map(|ms| ms / 1000.0),
            peak_rss_mb: t.list_peak_rss_mb,
        };
        let figures = vec![Figure::new(
            "jobs",
            self.workload().jobs() as f64,
            Unit::Count,
            "jobs",
        )];
        Ok(self.result("list", &cmd, runs, limits, figures))
    }

    pub(super) fn load_one(&mut self, id: u64) -> anyhow::Result<Vec<BenchResult>> {
        let n = self.workload().big_job_subjobs();
        let one = format!("{id}.{}", n / 2);
        let id = id.to_string();
        let count =
            self.array_len_of("check-subjobs", self.ganga(&["subjobs", &id, "--json"]))? as u64;
        if count != n {
            bail!("`ganga subjobs {id}` showed {count} subjobs, not {n}");
        }
        self.json_of("check-show", self.ganga(&["show", &one, "--json"]))?;
        let t = self.workload().targets.clone();
        let mut out = Vec::new();
        for (label, args) in [
            (
                format!("load-one subjobs {id}"),
                vec!["subjobs", id.as_str()],
            ),
            (format!("load-one show {one}"), vec!["show", one.as_str()]),
        ] {
            let (cmd, runs) = self.ganga_runs(&label, &args)?;
            let limits = Limits {
                wall_secs: t.load_one_wall_ms.map(|ms| ms / 1000.0),
                peak_rss_mb: t.load_one_peak_rss_mb,
            };
            out.push(self.result(&label, &cmd, runs, limits, Vec::new()));
        }
        Ok(out)
    }

    /// `read`: `statuses` (the figure, held to its targets) or `subjobs`.
    pub(super) fn touch_all(&mut self, read: &str) -> anyhow::Result<BenchResult> {
        let (jobs, subjobs) = (self.workload().jobs(), self.workload().subjobs());
        let label = match read {
            "statuses" => "touch-all",
            _ => "touch-all-subjobs",
        };
        let args = ["--read".to_owned(), read.to_owned()];
        let (cmd, runs) = self.driver_runs(label, "touch-all", &args, |d| {
            let (j, s) = (
                num(d, "/result/jobs") as u64,
                num(d, "/result/subjobs") as u64,
            );
            if (j, s) != (jobs, subjobs) {
                bail!(
                    "touch-all read {j} jobs and {s} subjobs; the workload has {jobs} and {subjobs}"
                );
            }
            Ok(format!(", work {}", secs(num(d, "/result/work_secs"))))
        })?;
        // The targets are for statuses; reading whole subjobs is shown beside.
        let t = match read {
            "statuses" => self.workload().targets.clone(),
            _ => Default::default(),
        };
        let work = med(&runs, |r| num_opt(&r.driver, "/result/work_secs"));
        let figures = reading_figures(subjobs, work, "of work");
        let limits = Limits {
            wall_secs: t.touch_all_wall_s,
            peak_rss_mb: t.touch_all_peak_rss_mb,
        };
        Ok(self.result(label, &cmd, runs, limits, figures))
    }

    pub(super) fn churn(&mut self) -> anyhow::Result<BenchResult> {
        let c = self.workload().churn.clone();
        let args = [
            "--changes".to_owned(),
            c.changes.to_string(),
            "--batch".to_owned(),
            c.batch.to_string(),
            "--jobs-per-batch".to_owned(),
            c.jobs_per_batch.to_string(),
            "--failed-percent".to_owned(),
            c.failed_percent.to_string(),
        ];
        let (cmd, runs) = self.driver_runs("churn", "churn", &args, |d| {
            let changes = num(d, "/result/changes") as u64;
            if changes != c.changes {
                bail!("churn made {changes} changes, not {}", c.changes);
            }
            Ok(format!(
                ", work {} (commit {})",
                secs(num(d, "/result/work_secs")),
                secs(num(d, "/result/commit_secs"))
            ))
        })?;
        let t = &self.workload().targets;
        let work = med(&runs, |r| num_opt(&r.driver, "/result/work_secs"));
        let figures = vec![
            Figure::new("changes", c.changes as f64, Unit::Count, "changes"),
            Figure::new("work_secs", work, Unit::Secs, "of work").at_most(t.churn_wall_s, secs),
            Figure::new(
                "commit_secs",
                med(&runs, |r| num_opt(&r.driver, "/result/commit_secs")),
                Unit::Secs,
                "in Cache::update_units",
            ),
            Figure::new(
                "read_secs",
                med(&runs, |r| num_opt(&r.driver, "/result/read_secs")),
                Unit::Secs,
                "reading",
            ),
            Figure::new(
                "changes_committed",
                c.changes as f64 / work,
                Unit::PerSec,
                "changes",
            ),
        ];
        Ok(self.result("churn", &cmd, runs, Limits::default(), figures))
    }
}
