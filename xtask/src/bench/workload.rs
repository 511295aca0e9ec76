//! Workload files (`xtask/workloads/*.toml`): the shape of the store the benchmarks run
//! on, the churn, how many runs, and the targets that shape is held to.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workload {
    pub(crate) description: String,
    /// Runs of every benchmark but `store`.
    pub(crate) runs: u32,
    /// Runs of `store`, each into a fresh home.
    #[serde(default = "one")]
    pub(crate) store_runs: u32,
    /// Read by `ganga-bench populate` itself, which checks every key; here only what the
    /// harness needs to know.
    pub(crate) store: toml::Table,
    pub(crate) churn: Churn,
    /// The `migrate` benchmark: absent, it is not run.
    #[serde(default)]
    pub(crate) migrate: Option<Migrate>,
    #[serde(default)]
    pub(crate) targets: Targets,
}

/// A gangadir written by Ganga, migrated with `ganga migrate` (issue 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Migrate {
    /// A `.tar.gz` holding a `gangadir/` directory, relative to the workspace root.
    pub(crate) fixture: PathBuf,
    /// The subjobs it holds (checked against what the migration imported).
    pub(crate) subjobs: u64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Churn {
    pub(crate) changes: u64,
    pub(crate) batch: u32,
    #[serde(default = "fifty")]
    pub(crate) jobs_per_batch: u32,
    #[serde(default = "five")]
    pub(crate) failed_percent: u32,
}

fn fifty() -> u32 {
    50
}

fn five() -> u32 {
    5
}

/// The targets for a shape; any may be absent. MB are 10^6 bytes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Targets {
    pub(crate) store_bytes_per_subjob: Option<f64>,
    pub(crate) list_wall_ms: Option<f64>,
    pub(crate) list_peak_rss_mb: Option<f64>,
    pub(crate) load_one_wall_ms: Option<f64>,
    pub(crate) load_one_peak_rss_mb: Option<f64>,
    pub(crate) touch_all_wall_s: Option<f64>,
    pub(crate) touch_all_peak_rss_mb: Option<f64>,
    pub(crate) churn_wall_s: Option<f64>,
}

/// A workload named on the command line: `tiny`, `small`, `full` (the files in
/// `xtask/workloads/`) or a path.
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) workload: Workload,
    /// The file as read, for the results.
    pub(crate) raw: toml::Table,
}

impl Named {
    pub(crate) fn load(root: &Path, arg: &str) -> anyhow::Result<Named> {
        let builtin = root
            .join("xtask")
            .join("workloads")
            .join(format!("{arg}.toml"));
        let path = if !arg.contains('/') && !arg.ends_with(".toml") {
            if !builtin.is_file() {
                bail!(
                    "no workload `{arg}`: expected tiny, small, full (files in xtask/workloads/) \
                     or the path of a workload file"
                );
            }
            builtin
        } else {
            PathBuf::from(arg)
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read workload file {}", path.display()))?;
        let workload: Workload =
            toml::from_str(&text).with_context(|| format!("workload file {}", path.display()))?;
        let raw: toml::Table =
            toml::from_str(&text).with_context(|| format!("workload file {}", path.display()))?;
        let name = path.file_stem().map_or_else(
            || "workload".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        let path = std::path::absolute(&path).unwrap_or(path);
        Ok(Named {
            name,
            path,
            workload,
            raw,
        })
    }
}

impl Workload {
    fn store_u64(&self, key: &str) -> u64 {
        self.store
            .get(key)
            .and_then(toml::Value::as_integer)
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or(0)
    }

    /// How many subjobs the big job of `load-one` has (0: none).
    pub(crate) fn big_job_subjobs(&self) -> u64 {
        self.store_u64("big_job_subjobs")
    }

    /// Every job the store will hold.
    pub(crate) fn jobs(&self) -> u64 {
        self.store_u64("masters")
            + self.store_u64("plain_jobs")
            + u64::from(self.big_job_subjobs() > 0)
    }

    /// Every subjob the store will hold.
    pub(crate) fn subjobs(&self) -> u64 {
        self.store_u64("masters") * self.store_u64("subjobs_per_master") + self.big_job_subjobs()
    }
}
