//! Reading a job's files: collecting outputs after it ended, peeking while it runs.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use ganga_core::{Answers, BackendRef, OutputsReport, OutputsRequest, PeekFile};
use serde::{Deserialize, Serialize};

use crate::layout::{JobDirs, OUTPUTS, STDERR, STDOUT};
use crate::records;
use ganga_core::check_inside_workdir as check_inside;

/// `peek` never returns more than this, whatever it is asked for.
const PEEK_CAP: u64 = 64 * 1024 * 1024;

/// What one collection found, kept in the control directory so that a repeated call can
/// answer the same after the working directory was removed.
#[derive(Debug, Serialize, Deserialize)]
struct Collection {
    patterns: Vec<String>,
    collected: Vec<String>,
    unmatched: Vec<String>,
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
    let job = req.job.job;
    let dirs = JobDirs::new(&req.job.workspace);
    let record = dirs.control_file(OUTPUTS);
    if !dirs.work.is_dir() {
        // Collected before, and the working directory removed afterwards?
        let done = fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Collection>(&bytes).ok())
            .filter(|c| c.patterns == req.patterns);
        return match done {
            Some(c) => Ok(OutputsReport {
                collected: c.collected,
                unmatched: c.unmatched,
                skipped: Vec::new(),
            }),
            None => Err(format!(
                "its working directory {} does not exist",
                dirs.work.display()
            )),
        };
    }

    let out = &req.output_dir;
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut collected = BTreeSet::new();
    let mut unmatched = Vec::new();
    for pattern in &req.patterns {
        let found = matches(&dirs.work, pattern).unwrap_or_else(|e| {
            tracing::warn!("local backend: job {job}: output pattern `{pattern}`: {e}");
            Vec::new()
        });
        if found.is_empty() {
            unmatched.push(pattern.clone());
        }
        for rel in found {
            copy_out(&dirs.work, &rel, out, &mut collected)?;
        }
    }
    for name in [STDOUT, STDERR] {
        if dirs.work.join(name).is_file() {
            copy_out(&dirs.work, Path::new(name), out, &mut collected)?;
        }
    }

    let collection = Collection {
        patterns: req.patterns.clone(),
        collected: collected.into_iter().collect(),
        unmatched,
    };
    let written = serde_json::to_string_pretty(&collection)
        .map_err(io::Error::other)
        .and_then(|text| records::write_atomic(&record, &text))
        .map_err(|e| format!("cannot write {}: {e}", record.display()));
    if keep_workdir {
        // Only a note then: a repeated call collects again from the working directory.
        if let Err(e) = written {
            tracing::warn!("local backend: job {job}: {e}");
        }
    } else {
        // The record must exist first: without it, a repeated call could not answer.
        written?;
        fs::remove_dir_all(&dirs.work)
            .map_err(|e| format!("cannot remove {}: {e}", dirs.work.display()))?;
    }
    Ok(OutputsReport {
        collected: collection.collected,
        unmatched: collection.unmatched,
        skipped: Vec::new(),
    })
}

/// The paths, relative to `work`, that `pattern` matches there. Like the shell, `*` does
/// not match `/` or a leading `.`.
fn matches(work: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    check_inside(pattern)?;
    let base = work
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", work.display()))?;
    let full = format!("{}/{pattern}", glob::Pattern::escape(base));
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut found = Vec::new();
    for entry in glob::glob_with(&full, options).map_err(|e| e.to_string())? {
        match entry {
            Ok(path) => {
                if let Ok(rel) = path.strip_prefix(work) {
                    let rel: PathBuf = rel
                        .components()
                        .filter(|c| matches!(c, Component::Normal(_)))
                        .collect();
                    if !rel.as_os_str().is_empty() {
                        found.push(rel);
                    }
                }
            }
            Err(e) => tracing::warn!("local backend: cannot read {}: {e}", e.path().display()),
        }
    }
    Ok(found)
}

/// Copies `work/rel` (a file, or a directory with everything in it) to `out/rel` and adds
/// the names of the files copied to `names`.
fn copy_out(
    work: &Path,
    rel: &Path,
    out: &Path,
    names: &mut BTreeSet<String>,
) -> Result<(), String> {
    let from = work.join(rel);
    let to = out.join(rel);
    let fail = |e: io::Error| format!("cannot copy {} to {}: {e}", from.display(), to.display());
    let meta = fs::metadata(&from).map_err(fail)?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    if meta.is_dir() {
        if fs::symlink_metadata(&from).is_ok_and(|m| m.file_type().is_symlink()) {
            tracing::warn!(
                "local backend: not collecting {}: a link to a directory",
                from.display()
            );
            return Ok(());
        }
        copy_tree(&from, &to, &mut |file| {
            names.insert(name_of(&rel.join(file)));
        })
        .map_err(fail)
    } else {
        fs::copy(&from, &to).map_err(fail)?;
        names.insert(name_of(rel));
        Ok(())
    }
}

/// Copies a directory tree; `on_file` gets each copied file's path relative to `from`.
/// Links to directories are not followed (they could loop); links to files are copied as
/// files.
pub(crate) fn copy_tree(from: &Path, to: &Path, on_file: &mut dyn FnMut(&Path)) -> io::Result<()> {
    fn walk(root: &Path, rel: &Path, to: &Path, on_file: &mut dyn FnMut(&Path)) -> io::Result<()> {
        fs::create_dir_all(to.join(rel))?;
        for entry in fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(root, &rel, to, on_file)?;
            } else if kind.is_symlink() && fs::metadata(root.join(&rel))?.is_dir() {
                tracing::warn!(
                    "local backend: not copying {}: a link to a directory",
                    root.join(&rel).display()
                );
            } else {
                fs::copy(root.join(&rel), to.join(&rel))?;
                on_file(&rel);
            }
        }
        Ok(())
    }
    walk(from, Path::new(""), to, on_file)
}

fn name_of(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The last `max_bytes` of a job's file. Before the job started, stdout and stderr are
/// empty. (Once its working directory was removed, the collected copy is in the output
/// directory, which the caller reads itself.)
pub(crate) fn peek(job: &BackendRef, file: &PeekFile, max_bytes: u64) -> Result<Vec<u8>, String> {
    let (rel, missing_is_empty) = match file {
        PeekFile::Stdout => (STDOUT, true),
        PeekFile::Stderr => (STDERR, true),
        PeekFile::Path(p) => {
            check_inside(p).map_err(|e| {
                format!("cannot peek at {e}: only files inside the working directory can be read")
            })?;
            (p.as_str(), false)
        }
    };
    let dirs = JobDirs::new(&job.workspace);
    let base = &dirs.work;
    let path = base.join(rel);
    match tail(&path, max_bytes.min(PEEK_CAP)) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound && missing_is_empty => Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("{rel} does not exist in {}", base.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn tail(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::other("it is a directory"));
    }
    let len = meta.len();
    let n = len.min(max_bytes);
    f.seek(SeekFrom::Start(len - n))?;
    let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    f.take(n).read_to_end(&mut buf)?;
    Ok(buf)
}
