//! A unit's files after (and while) it runs: collecting outputs with the SDK's hardened
//! collector, recording that before the working directory is removed, and peeking.

use std::fs;
use std::path::{Path, PathBuf};

use ganga_core::{Answers, BackendRef, OutputsReport, OutputsRequest, PeekFile};
use ganga_plugin_sdk::files::{self, FilesError};
use serde::{Deserialize, Serialize};

use crate::layout::{STDERR, STDOUT, UnitDirs};
use crate::records;

/// `peek` never returns more than this, whatever it is asked for.
const PEEK_CAP: u64 = 64 * 1024 * 1024;

/// What one collection of a run found, kept in the control directory (written before the
/// working directory is removed) so that a repeated call answers the same without it.
#[derive(Debug, Serialize, Deserialize)]
struct Collection {
    patterns: Vec<String>,
    output_dir: PathBuf,
    collected: Vec<String>,
    unmatched: Vec<String>,
    #[serde(default)]
    skipped: Vec<String>,
}

impl Collection {
    fn report(self) -> OutputsReport {
        OutputsReport {
            collected: self.collected,
            unmatched: self.unmatched,
            skipped: self.skipped,
        }
    }
}

pub(crate) fn collect_batch(jobs: &[OutputsRequest], keep_workdir: bool) -> Answers<OutputsReport> {
    jobs.iter()
        .map(|req| {
            let job = req.job.job;
            (
                job,
                collect_one(req, keep_workdir).map_err(|e| format!("job {job}: {e}")),
            )
        })
        .collect()
}

fn collect_one(req: &OutputsRequest, keep_workdir: bool) -> Result<OutputsReport, String> {
    let dirs = UnitDirs::new(&req.job.workspace);
    let record = dirs.outputs_record(req.job.run);
    if let Some(done) = read_collection(&record)
        .filter(|c| c.patterns == req.patterns && c.output_dir == req.output_dir)
    {
        // Collected before. With `keep_workdir = false`, a crash may have cut the removal
        // short: finish it (the collection never reads a half-removed directory).
        if !keep_workdir {
            files::remove_tree(&dirs.work).map_err(|e| e.to_string())?;
        }
        return Ok(done.report());
    }
    if !dirs.work.is_dir() {
        return Err(format!(
            "its working directory {} does not exist",
            dirs.work.display()
        ));
    }
    let mut patterns = req.patterns.clone();
    for std in [STDOUT, STDERR] {
        if !patterns.iter().any(|p| p == std) {
            patterns.push(std.to_owned());
        }
    }
    let mut report =
        files::collect(&dirs.work, &patterns, &req.output_dir).map_err(|e| e.to_string())?;
    // stdout and stderr are collected when they are there, never missed.
    report.unmatched.retain(|p| req.patterns.contains(p));
    let collection = Collection {
        patterns: req.patterns.clone(),
        output_dir: req.output_dir.clone(),
        collected: report.collected,
        unmatched: report.unmatched,
        skipped: report.skipped,
    };
    let written = serde_json::to_string_pretty(&collection)
        .map_err(std::io::Error::other)
        .and_then(|text| records::write_atomic(&record, &text))
        .map_err(|e| format!("cannot record the collection: {e}"));
    if keep_workdir {
        // Only a note then: a repeated call collects again from the working directory.
        if let Err(e) = written {
            tracing::warn!("local backend: job {}: {e}", req.job.job);
        }
    } else {
        // Recorded first: a repeated call must answer from the record, never from what
        // is left of a directory being removed.
        written?;
        files::remove_tree(&dirs.work).map_err(|e| e.to_string())?;
    }
    Ok(collection.report())
}

fn read_collection(path: &Path) -> Option<Collection> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The last `max_bytes` of a unit's file, read from its working directory, or, once that
/// was removed, from the copy collected into its output directory. Before the unit
/// started, stdout and stderr are empty.
pub(crate) fn peek(job: &BackendRef, file: &PeekFile, max_bytes: u64) -> Result<Vec<u8>, String> {
    let (rel, missing_is_empty) = match file {
        PeekFile::Stdout => (STDOUT, true),
        PeekFile::Stderr => (STDERR, true),
        PeekFile::Path(p) => (p.as_str(), false),
    };
    let dirs = UnitDirs::new(&job.workspace);
    let max = max_bytes.min(PEEK_CAP);
    let dir = if dirs.work.is_dir() {
        dirs.work.clone()
    } else {
        match read_collection(&dirs.outputs_record(job.run)) {
            Some(c) => c.output_dir,
            None => dirs.work.clone(),
        }
    };
    match files::tail(&dir, rel, max) {
        Ok(bytes) => Ok(bytes),
        Err(FilesError::NotFound { .. } | FilesError::Workdir { .. }) if missing_is_empty => {
            Ok(Vec::new())
        }
        Err(e @ FilesError::Outside { .. }) => Err(format!(
            "cannot peek at it: {e}; only files inside the working directory can be read"
        )),
        Err(e) => Err(e.to_string()),
    }
}
