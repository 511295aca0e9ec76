//! `migrate`: `ganga migrate` of a Ganga fixture, unpacked once per results directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::disk::{apparent_bytes, disk_usage};
use super::mode::Mode;
use super::report::{self, BenchResult, Figure, Limits, Run, Unit, med, num, num_opt};

impl Mode<'_> {
    /// `ganga migrate GANGADIR --workspace none`, each run into a fresh home of its own:
    /// the store's side of a migration (outputs copied or linked cost what the
    /// filesystem makes them cost).
    pub(super) fn migrate(&mut self, g: &Gangadir) -> anyhow::Result<BenchResult> {
        let home = self.home.with_file_name("migrate-home");
        let mut cmd = self.command("ganga");
        cmd.env("GANGA_HOME", &home)
            .arg("migrate")
            .arg(&g.dir)
            .args(["--workspace", "none", "--json"]);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            if home.exists() {
                std::fs::remove_dir_all(&home)
                    .with_context(|| format!("cannot clear {}", home.display()))?;
            }
            let m = self.logs.measure("migrate", &mut cmd, true)?;
            let report: Value =
                serde_json::from_str(&m.output()?).context("the migration's report")?;
            let imported: u64 = report["registries"]
                .as_object()
                .map(|regs| {
                    regs.values()
                        .filter_map(|r| r["subjobs_imported"].as_u64())
                        .sum()
                })
                .unwrap_or(0);
            if imported != g.subjobs {
                bail!(
                    "`ganga migrate` imported {imported} subjobs; the fixture has {}",
                    g.subjobs
                );
            }
            let disk = disk_usage(&home.join("store"))?;
            self.progress(
                "migrate",
                i,
                self.runs,
                &m,
                &format!(
                    ", store {} B",
                    report::thousands(num(&disk, "/apparent_bytes") as u64)
                ),
            );
            runs.push(Run {
                process: m,
                driver: Some(report),
                disk: Some(disk),
            });
        }
        let wall = med(&runs, |r| r.process.wall_secs);
        let store = med(&runs, |r| num_opt(&r.disk, "/apparent_bytes"));
        let subjobs = g.subjobs as f64;
        let figures = vec![
            Figure::new("subjobs", subjobs, Unit::Count, "subjobs"),
            Figure::new("subjobs_migrated", subjobs / wall, Unit::PerSec, "subjobs"),
            Figure::new("store_bytes", store, Unit::Bytes, "in the store's files"),
            Figure::new(
                "gangadir_bytes",
                g.bytes as f64,
                Unit::Bytes,
                "in Ganga's gangadir",
            ),
            Figure::new(
                "repository_bytes",
                g.repository_bytes as f64,
                Unit::Bytes,
                "in its repository",
            ),
            Figure::new(
                "repository_to_store",
                g.repository_bytes as f64 / store,
                Unit::Ratio,
                "smaller than the repository",
            ),
        ];
        Ok(self.result("migrate", &cmd, runs, Limits::default(), figures))
    }
}

/// A Ganga fixture unpacked for `migrate`, once per harness run directory.
#[derive(Debug, Clone)]
pub(super) struct Gangadir {
    dir: PathBuf,
    subjobs: u64,
    /// Apparent bytes of the whole gangadir (repository and workspace).
    bytes: u64,
    /// Of its `repository` directory: what Ganga reads, as the store is what we read.
    repository_bytes: u64,
}

impl Gangadir {
    pub(super) fn unpack(fixture: &Path, dir: &Path, subjobs: u64) -> anyhow::Result<Gangadir> {
        let stem = fixture
            .file_name()
            .map_or_else(|| "fixture".into(), |n| n.to_string_lossy().into_owned());
        let stem = stem.trim_end_matches(".tar.gz");
        let into = dir.join(format!("unpacked-{stem}"));
        let done = into.join(".unpacked");
        if !done.exists() {
            if into.exists() {
                std::fs::remove_dir_all(&into)
                    .with_context(|| format!("cannot clear {}", into.display()))?;
            }
            std::fs::create_dir_all(&into)?;
            eprintln!("bench: unpacking {}", fixture.display());
            crate::run(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(fixture)
                    .arg("-C")
                    .arg(&into),
            )
            .with_context(|| format!("cannot unpack the Ganga fixture {}", fixture.display()))?;
            std::fs::write(&done, b"")?;
        }
        let gangadir = into.join("gangadir");
        let size = |d: &Path| apparent_bytes(d);
        Ok(Gangadir {
            bytes: size(&gangadir)?,
            repository_bytes: size(&gangadir.join("repository"))?,
            dir: gangadir,
            subjobs,
        })
    }
}
