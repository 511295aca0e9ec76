//! Handing units over: each unit's directories, input files and `command.sh`; then the
//! units, grouped by what they ask of the batch system (flavour, queue, options), go in
//! chunks: one array per chunk where the system has arrays, one job per unit elsewhere.
//!
//! A chunk's outcome is one of three. Accepted: each unit gets its id, recorded in its
//! `submitted` record. Refused (the command said no): each unit fails with the command's
//! words, and its `submitting` record is removed (it was certainly not handed over).
//! Uncertain (no answer in time, an answer that cannot be read): nobody can tell whether
//! the jobs exist, so the whole call fails; the units keep their `submitting` records and
//! [`crate::find`] settles them later.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use ganga_core::{
    Answers, BackendError, BackendErrorKind, JobRef, SubmitSpec, Submitted, check_inside_workdir,
};

use crate::backend::{Inner, blocking, code_of, unit_id};
use crate::command::{self, CommandError, Locale};
use crate::config::JobSettings;
use crate::flavour::{self, Flavour, SubmitRequest};
use crate::layout::{COMMAND, SUBMITTED, SUBMITTING, UnitDirs};
use crate::records::{self, SubmittedRecord, Submitting};
use crate::script::{self, Task};

/// Submit commands running at once, for flavours without arrays (one command per unit).
const PARALLEL_SUBMITS: usize = 8;
/// Kept wrappers (HTCondor's) older than this are removed at the next submission.
const KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// A unit ready to go: its directories are made and its `command.sh` written.
#[derive(Debug, Clone)]
struct Unit {
    job: JobRef,
    run: u32,
    workspace: PathBuf,
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
    let prepared: Vec<(SubmitSpec, JobSettings, Result<(), String>)> =
        blocking("preparing", move || {
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
            Ok(()) => groups.entry(settings).or_default().push(Unit {
                job: spec.job,
                run: spec.run,
                workspace: spec.workspace,
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

    // The intent first: a `ganga` killed from here on leaves what `find` needs.
    let intents: Vec<(PathBuf, String)> = units
        .iter()
        .zip(first..)
        .map(|(u, index)| {
            let record = Submitting {
                run: u.run,
                system: flavour.name.to_owned(),
                key: key.clone(),
                index,
                time: Some(records::now()),
            };
            (
                UnitDirs::new(&u.workspace).file(SUBMITTING),
                record.to_text(),
            )
        })
        .collect();
    let files = plan.temp_files.clone();
    let kept = plan.kept_files.clone();
    let keep_dir = dirs.keep.clone();
    let temp_dir = dirs.temp.clone();
    blocking("writing submission files", move || -> Result<(), String> {
        for (path, text) in &intents {
            records::write_atomic(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if !kept.is_empty() {
            prune_old(&keep_dir, KEEP_FOR);
        }
        for dir in [&temp_dir, &keep_dir] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        for (path, text) in files.iter().chain(&kept) {
            write_script(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    })
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
    let _ = blocking("removing submission files", move || {
        for path in temp {
            let _ = fs::remove_file(path);
        }
    })
    .await;

    let refused = |why: String| async move {
        forget_intents(units).await;
        Err(why)
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

    let accepted: Vec<(JobRef, Submitted, PathBuf, String)> = units
        .iter()
        .zip(first..)
        .map(|(u, index)| {
            let id = unit_id(flavour, &(flavour.unit_id)(&base, index));
            let record = SubmittedRecord {
                run: u.run,
                id: id.clone(),
                time: Some(records::now()),
            };
            (
                u.job,
                Submitted::id(id),
                UnitDirs::new(&u.workspace).file(SUBMITTED),
                record.to_text(),
            )
        })
        .collect();
    let writes: Vec<(PathBuf, String)> = accepted
        .iter()
        .map(|(_, _, p, t)| (p.clone(), t.clone()))
        .collect();
    let _ = blocking("writing submitted records", move || {
        for (path, text) in writes {
            // The id is answered anyway; without the record, `find` asks the listing.
            if let Err(e) = records::write_atomic(&path, &text) {
                tracing::warn!("batch backend: cannot write {}: {e}", path.display());
            }
        }
    })
    .await;
    tracing::debug!(
        "batch backend: submitted {} unit(s) to {} as {base}",
        units.len(),
        flavour.title
    );
    Ok(Outcome::Accepted(
        accepted
            .into_iter()
            .map(|(job, s, _, _)| (job, s))
            .collect(),
    ))
}

/// Removes the `submitting` records of units certainly not handed over.
async fn forget_intents(units: &[Unit]) {
    let paths: Vec<PathBuf> = units
        .iter()
        .map(|u| UnitDirs::new(&u.workspace).file(SUBMITTING))
        .collect();
    let _ = blocking("removing submitting records", move || {
        for p in paths {
            let _ = fs::remove_file(p);
        }
    })
    .await;
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

/// Refuses what cannot be run, before anything is written.
fn check_spec(spec: &SubmitSpec) -> Result<(), String> {
    if !spec.workspace.is_absolute() {
        return Err(format!(
            "the workspace {} is not an absolute path",
            spec.workspace.display()
        ));
    }
    if spec.workspace.to_str().is_none() {
        return Err(format!(
            "the workspace {} is not valid UTF-8",
            spec.workspace.display()
        ));
    }
    if spec.exe.is_empty() {
        return Err("no executable given".to_owned());
    }
    if spec.exe.starts_with('-') {
        return Err(format!("the executable `{}` starts with `-`", spec.exe));
    }
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains(['=', '\0']) || name.starts_with('-') {
            return Err(format!(
                "`{}` cannot be the name of an environment variable",
                name.escape_debug()
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "the value of environment variable {name} contains a NUL character"
            ));
        }
    }
    for pattern in &spec.output_patterns {
        check_inside_workdir(pattern)
            .and_then(|()| {
                glob::Pattern::new(pattern)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("output pattern `{pattern}` is not usable: {e}"))?;
    }
    Ok(())
}

/// Makes fresh directories (a resubmitted unit starts clean), copies the input files and
/// writes `command.sh`.
fn prepare(spec: &SubmitSpec) -> Result<(), String> {
    check_spec(spec)?;
    let command = script::command_script(spec)?;
    let dirs = UnitDirs::new(&spec.workspace);
    let io_err =
        |what: &str, path: &Path, e: io::Error| format!("cannot {what} {}: {e}", path.display());
    for dir in [&dirs.control, &dirs.work] {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove the old", dir, e)),
        }
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }
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
    let path = dirs.file(COMMAND);
    records::write_atomic(&path, &command).map_err(|e| io_err("write", &path, e))
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
