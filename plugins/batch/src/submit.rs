//! Handing units over. Each unit's directories are cleaned (a resubmitted unit starts
//! afresh) and its input files copied; the units, grouped by what they ask of the batch
//! system (flavour, queue, options), then go in chunks: one array per chunk where the
//! system has arrays, one job per unit elsewhere. The wrapper makes the rest of a unit's
//! directories when it starts, so a large submission costs the submit host's file system
//! a few files, not a few per unit.
//!
//! A chunk's outcome is one of three. Accepted: each unit gets its id, and the chunk's
//! submission record says it. Refused (the command said no): each unit fails with the
//! command's words, and the record is removed (it was certainly not handed over).
//! Uncertain (no answer in time, an answer that cannot be read): nobody can tell whether
//! the jobs exist, so the whole call fails; the record stays and [`crate::find`] settles
//! its units later.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use ganga_core::{Answers, BackendError, BackendErrorKind, JobRef, SubmitSpec, Submitted};

use ganga_plugin_sdk::blocking;

use crate::backend::{Inner, code_of, unit_id};
use crate::command::{self, CommandError, Locale};
use crate::config::JobSettings;
use crate::flavour::{self, Flavour, SubmitRequest};
use crate::layout::UnitDirs;
use crate::records;
use crate::script::{self, Task};
use crate::submissions::{self, Submission};

/// Submit commands running at once, for flavours without arrays (one command per unit).
const PARALLEL_SUBMITS: usize = 8;
/// Kept wrappers (HTCondor's) older than this are removed at the next submission.
const KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Submission files (used only while the submit command runs) older than this are left
/// over from a `ganga` that died meanwhile.
const TEMP_FOR: Duration = Duration::from_secs(24 * 3600);

/// A unit ready to go: its old directories are gone, its input files in place.
#[derive(Debug, Clone)]
struct Unit {
    job: JobRef,
    run: u32,
    workspace: PathBuf,
    /// Its program as shell words, for the wrapper's table.
    words: String,
}

enum Outcome {
    Accepted(Vec<(JobRef, Submitted)>),
    Refused(Vec<JobRef>, String),
    Uncertain(String),
}

pub(crate) async fn submit(
    inner: &Arc<Inner>,
    specs: &[SubmitSpec],
) -> Result<Answers<Submitted>, BackendError> {
    let mut answers: Answers<Submitted> = Vec::with_capacity(specs.len());
    // What each asks for; a job's bad options fail that job alone.
    let mut wanted = Vec::new();
    for spec in specs {
        match inner.config.job_settings(&spec.options) {
            Ok(settings) => wanted.push((spec.clone(), settings)),
            Err(e) => answers.push((spec.job, Err(format!("job {}: {e}", spec.job)))),
        }
    }
    let prepared: Vec<(SubmitSpec, JobSettings, Result<String, String>)> =
        blocking("batch backend: preparing", move || {
            wanted
                .into_iter()
                .map(|(spec, settings)| {
                    let r = prepare(&spec);
                    (spec, settings, r)
                })
                .collect()
        })
        .await?;

    let mut groups: BTreeMap<JobSettings, Vec<Unit>> = BTreeMap::new();
    for (spec, settings, ready) in prepared {
        match ready {
            Ok(words) => groups.entry(settings).or_default().push(Unit {
                job: spec.job,
                run: spec.run,
                workspace: spec.workspace,
                words,
            }),
            Err(e) => answers.push((spec.job, Err(format!("job {}: {e}", spec.job)))),
        }
    }

    let mut uncertain = Vec::new();
    for (settings, units) in groups {
        let Some(flavour) = flavour::by_name(settings.flavour) else {
            continue;
        };
        let size = match flavour.array {
            Some(rule) => inner.config.array_size.min(rule.max_tasks).max(1) as usize,
            None => 1,
        };
        let parallel = if flavour.array.is_some() {
            1
        } else {
            PARALLEL_SUBMITS
        };
        let chunks: Vec<Vec<Unit>> = units.chunks(size).map(<[Unit]>::to_vec).collect();
        let mut outcomes = futures_util::stream::iter(chunks)
            .map(|chunk| submit_chunk(inner, flavour, &settings, chunk))
            .buffer_unordered(parallel);
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Outcome::Accepted(ids) => answers.extend(ids.into_iter().map(|(j, s)| (j, Ok(s)))),
                Outcome::Refused(jobs, why) => {
                    answers.extend(
                        jobs.into_iter()
                            .map(|j| (j, Err(format!("job {j}: {why}")))),
                    );
                }
                Outcome::Uncertain(why) => uncertain.push(why),
            }
        }
        if !uncertain.is_empty() {
            break;
        }
    }
    if !uncertain.is_empty() {
        return Err(BackendError::new(
            BackendErrorKind::Failed,
            format!(
                "batch backend: cannot tell whether some jobs were submitted ({}); \
                 their units keep what they need for `find`",
                uncertain.join("; ")
            ),
        ));
    }
    Ok(answers)
}

async fn submit_chunk(
    inner: &Arc<Inner>,
    flavour: &'static Flavour,
    settings: &JobSettings,
    units: Vec<Unit>,
) -> Outcome {
    let jobs: Vec<JobRef> = units.iter().map(|u| u.job).collect();
    match try_chunk(inner, flavour, settings, &units).await {
        Ok(outcome) => outcome,
        Err(why) => Outcome::Refused(jobs, why),
    }
}

/// Submits one chunk. `Err`: it was not handed over (nothing was asked of the system, or
/// it said no).
async fn try_chunk(
    inner: &Arc<Inner>,
    flavour: &'static Flavour,
    settings: &JobSettings,
    units: &[Unit],
) -> Result<Outcome, String> {
    let first = flavour.array.map_or(0, |rule| rule.first_index);
    let key = inner.new_key();
    let tasks: Vec<Task<'_>> = units
        .iter()
        .zip(first..)
        .map(|(u, index)| Task {
            index,
            workspace: &u.workspace,
            run: u.run,
            words: &u.words,
        })
        .collect();
    let wrapper = script::wrapper_script(flavour, &key, &tasks)?;
    let count = u32::try_from(units.len()).map_err(|_| "too many units in one chunk".to_owned())?;
    let dirs = inner.dirs.clone();
    let plan = (flavour.submit_plan)(&SubmitRequest {
        tag: &inner.tag,
        key: &key,
        tasks: count,
        queue: settings.queue.as_deref(),
        extra: &settings.extra,
        script: &wrapper,
        temp_dir: &dirs.temp,
        keep_dir: &dirs.keep,
    })?;

    // The chunk's record, per job, before anything is asked of the system: a `ganga`
    // killed from here on leaves what `find` needs.
    let mut records = ChunkRecords::new(&key, flavour, units, first);
    let files = plan.temp_files.clone();
    let kept = plan.kept_files.clone();
    let keep_dir = dirs.keep.clone();
    let temp_dir = dirs.temp.clone();
    let before = records.clone();
    blocking(
        "batch backend: writing submission files",
        move || -> Result<(), String> {
            before.write()?;
            if !kept.is_empty() {
                prune_old(&keep_dir, KEEP_FOR);
            }
            // What a `ganga` killed during a submit command left behind.
            prune_old(&temp_dir, TEMP_FOR);
            for dir in [&temp_dir, &keep_dir] {
                fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            for (path, text) in files.iter().chain(&kept) {
                write_script(path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            Ok(())
        },
    )
    .await
    .map_err(|e| e.to_string())??;

    let program = inner.config.command(flavour.submit_command);
    let result = command::run(
        &program,
        &plan.args,
        plan.stdin.as_deref(),
        inner.config.submit_timeout,
        Locale::Inherit,
    )
    .await;
    let temp: Vec<PathBuf> = plan.temp_files.iter().map(|(p, _)| p.clone()).collect();
    let _ = blocking("batch backend: removing submission files", move || {
        for path in temp {
            let _ = fs::remove_file(path);
        }
    })
    .await;

    let refused = |why: String| {
        let records = records.clone();
        async move {
            let _ = blocking("batch backend: removing submission records", move || {
                records.remove()
            })
            .await;
            Err(why)
        }
    };
    let out = match result {
        Ok(out) => out,
        Err(e @ CommandError::Timeout { .. }) => return Ok(Outcome::Uncertain(e.to_string())),
        Err(e) => return refused(e.to_string()).await,
    };
    if !out.success() {
        let text = out.text();
        return refused(format!(
            "{} refused the submission{}: {}",
            program.display(),
            code_of(&out),
            if text.is_empty() {
                "(no message)".to_owned()
            } else {
                text
            }
        ))
        .await;
    }
    let base = match (flavour.parse_submit)(&out.stdout) {
        Ok(base) => base,
        Err(e) => return Ok(Outcome::Uncertain(format!("{}: {e}", program.display()))),
    };

    records.set_id(&base);
    let after = records.clone();
    let written = blocking("batch backend: writing submission records", move || {
        after.write()
    })
    .await;
    if let Err(e) | Ok(Err(e)) = written.map_err(|e| e.to_string()) {
        // The ids are answered anyway; without the record, `find` asks the listing.
        tracing::warn!("batch backend: {e}");
    }
    tracing::debug!(
        "batch backend: submitted {} unit(s) to {} as {base}",
        units.len(),
        flavour.title
    );
    Ok(Outcome::Accepted(
        units
            .iter()
            .zip(first..)
            .map(|(u, index)| {
                let id = unit_id(flavour, &flavour.unit_id(&base, index));
                (u.job, Submitted::id(id))
            })
            .collect(),
    ))
}

/// A chunk's submission records: one per job whose units it holds.
#[derive(Debug, Clone)]
struct ChunkRecords {
    records: Vec<(PathBuf, Submission)>,
}

impl ChunkRecords {
    fn new(key: &str, flavour: &Flavour, units: &[Unit], first: u32) -> ChunkRecords {
        let mut by_dir: BTreeMap<PathBuf, Submission> = BTreeMap::new();
        for (u, index) in units.iter().zip(first..) {
            by_dir
                .entry(submissions::dir_of(u.job, &u.workspace))
                .or_insert_with(|| Submission {
                    key: key.to_owned(),
                    system: flavour.name.to_owned(),
                    id: None,
                    units: Vec::new(),
                })
                .units
                .push((u.job, u.run, index));
        }
        ChunkRecords {
            records: by_dir.into_iter().collect(),
        }
    }

    fn set_id(&mut self, id: &str) {
        for (_, sub) in &mut self.records {
            sub.id = Some(id.to_owned());
        }
    }

    fn write(&self) -> Result<(), String> {
        for (dir, sub) in &self.records {
            submissions::write(dir, sub).map_err(|e| {
                format!("cannot write a submission record in {}: {e}", dir.display())
            })?;
        }
        Ok(())
    }

    fn remove(&self) {
        for (dir, sub) in &self.records {
            submissions::remove(dir, &sub.key);
        }
    }
}

fn write_script(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    records::write_atomic(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// Removes files in `dir` older than `age`.
fn prune_old(dir: &Path, age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age));
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Cleans what an earlier run left (a resubmitted unit starts afresh), copies the input
/// files, and gives the unit's program as shell words.
fn prepare(spec: &SubmitSpec) -> Result<String, String> {
    spec.check_runnable()?;
    let words = script::unit_words(spec)?;
    let dirs = UnitDirs::new(&spec.workspace);
    let io_err =
        |what: &str, path: &Path, e: io::Error| format!("cannot {what} {}: {e}", path.display());
    // One look at a workspace that does not exist yet (the usual case) and nothing more.
    if fs::symlink_metadata(&spec.workspace).is_ok() {
        for dir in [&dirs.control, &dirs.work] {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove the old", dir, e)),
            }
        }
    }
    if spec.input_files.is_empty() {
        return Ok(words);
    }
    fs::create_dir_all(&dirs.work).map_err(|e| io_err("create", &dirs.work, e))?;
    let mut names = HashSet::new();
    for input in &spec.input_files {
        let name = input
            .file_name()
            .ok_or_else(|| format!("input file {} has no file name", input.display()))?;
        if !names.insert(name.to_owned()) {
            return Err(format!(
                "two input files are named {} (the second is {})",
                name.to_string_lossy(),
                input.display()
            ));
        }
        let meta = fs::metadata(input).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("input file {} does not exist", input.display()),
            _ => io_err("read input file", input, e),
        })?;
        let target = dirs.work.join(name);
        if meta.is_dir() {
            copy_tree(input, &target).map_err(|e| io_err("copy input directory", input, e))?;
        } else if meta.is_file() {
            fs::copy(input, &target).map_err(|e| io_err("copy input file", input, e))?;
        } else {
            return Err(format!(
                "input file {} is not a regular file",
                input.display()
            ));
        }
    }
    Ok(words)
}

/// Copies a directory tree of input files. Links to directories are not followed (they
/// could loop); links to files are copied as files; other special files are refused.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::metadata(&src)?;
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.is_dir() {
            tracing::warn!(
                "batch backend: not copying {}: a link to a directory",
                src.display()
            );
        } else if meta.is_file() {
            fs::copy(&src, &dst)?;
        } else {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                src.display()
            )));
        }
    }
    Ok(())
}
