//! Submitting: stopping what is left of a unit's earlier runs, making its directories,
//! copying its input files, writing its unit file, queueing it, and making sure runners
//! run. No process is started per unit.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ganga_core::{Answers, PerJob, SubmitSpec, Submitted};
use ganga_plugin_sdk::files;

use crate::backend::Context;
use crate::kill;
use crate::layout::{QUEUED, QueueDir, UnitDirs, make_dir};
use crate::queue::{Place, Ready};
use crate::records::{self, Killed};
use crate::unitfile;

/// How long a resubmission waits for the previous run to start (when a runner is just
/// starting it) or to end once signalled.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TICK: Duration = Duration::from_millis(20);
/// Environments no submission has used for this long are removed.
const ENV_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Submits a batch: each unit is prepared on its own (a bad one fails alone), then all
/// that are ready are queued together, then runners are started for them.
pub(crate) fn submit_batch(ctx: &Context, specs: &[SubmitSpec]) -> Answers<Submitted> {
    let mut answers: Vec<Option<PerJob<Submitted>>> = vec![None; specs.len()];
    let base = match base_environment(ctx) {
        Ok(base) => base,
        Err(e) => {
            return specs
                .iter()
                .map(|s| (s.job, Err(format!("job {}: {e}", s.job))))
                .collect();
        }
    };
    let mut ready = Vec::new();
    let mut ready_at = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match prepare(ctx, spec, &base) {
            Ok(r) => {
                ready.push(r);
                ready_at.push(i);
            }
            Err(e) => answers[i] = Some(Err(format!("job {}: {e}", spec.job))),
        }
    }
    if !ready.is_empty() {
        let published = ctx.queue.publish(&ready, &ctx.wrapper, records::now());
        let mut queued = 0;
        match published {
            Ok(results) => {
                for (&i, result) in ready_at.iter().zip(results) {
                    queued += usize::from(result.is_ok());
                    answers[i] = Some(
                        result
                            .map(|seq| Submitted {
                                id: seq.to_string(),
                                actual_ce: Some(ctx.host.clone()),
                            })
                            .map_err(|e| format!("job {}: {e}", specs[i].job)),
                    );
                }
            }
            Err(e) => {
                for &i in &ready_at {
                    answers[i] = Some(Err(format!("job {}: cannot queue it: {e}", specs[i].job)));
                }
            }
        }
        if queued > 0
            && let Err(e) = ctx.runners.ensure(queued)
        {
            // Queued they are: the next submission or poll starts runners again.
            tracing::warn!("local backend: {e}");
        }
    }
    specs
        .iter()
        .zip(answers)
        .map(|(spec, answer)| {
            let answer = answer.unwrap_or_else(|| Err(format!("job {}: not submitted", spec.job)));
            (spec.job, answer)
        })
        .collect()
}

/// Everything before queueing, for one unit. Errors are about this unit.
fn prepare(ctx: &Context, spec: &SubmitSpec, base: &Path) -> Result<Ready, String> {
    // describe lists no options: one given reached us past ganga's check of job files (or
    // from another caller), and would otherwise be ignored in silence.
    if let Some(key) = spec.options.keys().next() {
        return Err(format!(
            "unknown backend option `{key}`: the local backend takes no per-job options"
        ));
    }
    spec.check_runnable()?;
    let dirs = UnitDirs::new(&spec.workspace);
    if stop_earlier_runs(ctx, &dirs)? {
        clear_control(&dirs)?;
    }
    // Only what was there before: a fresh unit costs no look (submitting 10,000 is mostly
    // the file system creating files).
    if fs::symlink_metadata(&dirs.work).is_ok()
        || dirs.work.with_file_name(".work.removing").exists()
    {
        files::remove_tree(&dirs.work).map_err(|e| e.to_string())?;
    }
    for dir in [&spec.workspace, &dirs.control] {
        make_dir(dir).map_err(|e| e.to_string())?;
    }
    // The wrapper makes the working directory when it starts, unless input files go in.
    if !spec.input_files.is_empty() {
        make_dir(&dirs.work).map_err(|e| e.to_string())?;
        copy_inputs(spec, &dirs.work)?;
    }
    Ok(Ready {
        control: dirs.control.clone(),
        run: spec.run,
        job: spec.job,
        script: unitfile::unit_script(spec, &dirs.work, base, &ctx.env_tool),
        queued_record: dirs.record(QUEUED, spec.run),
    })
}

/// Stops every earlier run recorded in the control directory (a run forced failed by a
/// user, or left by a crashed ganga, may still be queued or running), so that nothing of
/// it runs or writes once the directories are made afresh. `Ok(false)`: there is no
/// control directory.
fn stop_earlier_runs(ctx: &Context, dirs: &UnitDirs) -> Result<bool, String> {
    let entries = match fs::read_dir(&dirs.control) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot read {}: {e}", dirs.control.display())),
    };
    let prefix = format!("{QUEUED}-");
    let runs: Vec<u32> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_prefix(&prefix)?.parse().ok()
        })
        .collect();
    for run in runs {
        stop_run(ctx, dirs, run).map_err(|e| format!("its run {run} cannot be stopped: {e}"))?;
    }
    Ok(true)
}

fn stop_run(ctx: &Context, dirs: &UnitDirs, run: u32) -> Result<(), String> {
    let text = |e: io::Error| e.to_string();
    if records::read_exit(dirs, run).map_err(text)?.is_some() {
        return Ok(());
    }
    // First the record, so that a wrapper starting now does not run its program.
    let killed = dirs.record(crate::layout::KILLED, run);
    if !killed.exists() {
        records::write_atomic(&killed, &Killed::to_text(run)).map_err(text)?;
    }
    let Some(queued) = records::read_queued(dirs, run).map_err(text)? else {
        return Ok(());
    };
    let queue = QueueDir { dir: queued.queue };
    if queue.take_out(queued.seq).map_err(text)? {
        return Ok(());
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(started) = records::read_started(dirs, run).map_err(text)? {
            return kill::stop_group(ctx, dirs, &started, deadline);
        }
        match queue.place(queued.seq).map_err(text)? {
            Place::Waiting => {
                if queue.take_out(queued.seq).map_err(text)? {
                    return Ok(());
                }
            }
            Place::Starting => {}
            Place::Orphaned => {
                queue.remove(queued.seq);
                return Ok(());
            }
            // It left the queue: started (looked at again above), or skipped as killed.
            Place::Gone => {
                if records::read_started(dirs, run).map_err(text)?.is_none() {
                    return Ok(());
                }
                continue;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "a runner has been starting it (queue entry {}) for {} s",
                queued.seq,
                STOP_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(STOP_TICK);
    }
}

/// Removes the records of earlier runs.
fn clear_control(dirs: &UnitDirs) -> Result<(), String> {
    match fs::remove_dir_all(&dirs.control) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dirs.control.display())),
    }
}

fn copy_inputs(spec: &SubmitSpec, work: &Path) -> Result<(), String> {
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
            _ => format!("cannot read input file {}: {e}", input.display()),
        })?;
        let target = work.join(name);
        if meta.is_dir() {
            copy_tree(input, &target)
                .map_err(|e| format!("cannot copy input directory {}: {e}", input.display()))?;
        } else {
            copy_file(input, &target)
                .map_err(|e| format!("cannot copy input file {}: {e}", input.display()))?;
        }
    }
    Ok(())
}

/// Copies a file with its permissions as this process's umask allows (the user's
/// `[home] umask`: private unless configured otherwise).
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut src = fs::File::open(from)?;
    let mode = src.metadata()?.permissions().mode() & 0o777;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    Ok(())
}

/// Copies an input directory. Links to directories are not followed (they could loop);
/// links to files are copied as files.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    make_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() && fs::metadata(&src)?.is_dir() {
            tracing::warn!(
                "local backend: not copying {}: a link to a directory",
                src.display()
            );
        } else {
            copy_file(&src, &dst)?;
        }
    }
    Ok(())
}

/// Writes the environment of this process (once per content) for the wrappers to apply,
/// and removes those no submission used for a long time.
fn base_environment(ctx: &Context) -> Result<std::path::PathBuf, String> {
    let (name, text) = unitfile::base_env_script(std::env::vars_os());
    let path = ctx.home.envs().join(name);
    let now = SystemTime::now();
    match fs::OpenOptions::new().write(true).open(&path) {
        // Used again: it is young again.
        Ok(f) => {
            let _ = f.set_modified(now);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            records::write_atomic(&path, &text).map_err(|e| e.to_string())?;
            forget_old_environments(&ctx.home.envs(), now);
        }
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    }
    Ok(path)
}

fn forget_old_environments(dir: &Path, now: SystemTime) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > ENV_KEPT);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}
