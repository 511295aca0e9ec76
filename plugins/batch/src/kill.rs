//! Stopping units: a `killed` record first (so that a poll that finds a job gone reads a
//! kill, not a loss), then one kill command per chunk of ids. A unit that had already
//! ended is left alone. When the command fails, the records it was meant to back are
//! removed again: a unit that was not stopped must not be reported killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ganga_core::{Answers, BackendError, BackendRef, JobRef};

use ganga_plugin_sdk::blocking;

use crate::backend::{Inner, command_error, parse_unit_id};
use crate::flavour::{Flavour, KillOutcome};
use crate::layout::{KILLED, UnitDirs};
use crate::records::{self, Killed};

/// Ids per kill command (a command line has a length limit).
const KILL_CHUNK: usize = 500;

/// A unit to stop: the record written for it, if this call wrote one.
struct Target {
    job: JobRef,
    native: String,
    wrote: Option<PathBuf>,
}

pub(crate) async fn kill(
    inner: &Arc<Inner>,
    units: &[BackendRef],
) -> Result<Answers<()>, BackendError> {
    let mut answers: Answers<()> = Vec::with_capacity(units.len());
    let owned = units.to_vec();
    // Per unit: `Ok(None)` ended already; `Ok(Some(..))` to kill; `Err` cannot.
    type Step = (JobRef, Result<Option<(&'static Flavour, Target)>, String>);
    let steps: Vec<Step> = blocking("batch backend: kill", move || {
        owned.iter().map(|u| (u.job, prepare(u))).collect()
    })
    .await?;
    let mut by_flavour: BTreeMap<&'static str, (&'static Flavour, Vec<Target>)> = BTreeMap::new();
    for (job, step) in steps {
        match step {
            Ok(None) => answers.push((job, Ok(()))),
            Ok(Some((flavour, target))) => by_flavour
                .entry(flavour.name)
                .or_insert_with(|| (flavour, Vec::new()))
                .1
                .push(target),
            Err(e) => answers.push((job, Err(format!("job {job}: {e}")))),
        }
    }

    let mut whole_failure: Option<BackendError> = None;
    let mut undo: Vec<PathBuf> = Vec::new();
    for (flavour, targets) in by_flavour.into_values() {
        for chunk in targets.chunks(KILL_CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(|t| t.native.as_str()).collect();
            let outcome = if whole_failure.is_some() {
                // The system failed for an earlier chunk: do not wait on it again.
                KillOutcome::Failed("not tried: an earlier kill command failed".to_owned())
            } else {
                match inner.run_kill(flavour, &ids).await {
                    Ok(out) => flavour.kill_outcome(&out, &ids),
                    Err(e) => {
                        whole_failure = Some(command_error(flavour, &e));
                        KillOutcome::Failed(e.to_string())
                    }
                }
            };
            match outcome {
                KillOutcome::Done => answers.extend(chunk.iter().map(|t| (t.job, Ok(())))),
                KillOutcome::Some(failed) => {
                    for t in chunk {
                        match failed.iter().find(|(id, _)| *id == t.native) {
                            Some((_, why)) => {
                                undo.extend(t.wrote.clone());
                                answers.push((t.job, Err(format!("job {}: {why}", t.job))));
                            }
                            None => answers.push((t.job, Ok(()))),
                        }
                    }
                }
                KillOutcome::Failed(why) => {
                    whole_failure.get_or_insert_with(|| {
                        BackendError::failed(format!("batch backend ({}): {why}", flavour.title))
                    });
                    undo.extend(chunk.iter().filter_map(|t| t.wrote.clone()));
                }
            }
        }
    }
    if !undo.is_empty() {
        let _ = blocking("batch backend: kill", move || {
            for path in undo {
                let _ = std::fs::remove_file(path);
            }
        })
        .await;
    }
    match whole_failure {
        Some(e) => Err(e),
        None => Ok(answers),
    }
}

/// Reads a unit's records and writes its kill record (keeping an earlier one of the same
/// run, and its time).
fn prepare(unit: &BackendRef) -> Result<Option<(&'static Flavour, Target)>, String> {
    let (flavour, native) = parse_unit_id(&unit.id)
        .ok_or_else(|| format!("`{}` is not an id the batch backend gave", unit.id))?;
    let dirs = UnitDirs::new(&unit.workspace);
    match records::read_exit(&dirs).map_err(|e| e.to_string())? {
        // Ended already: nothing to stop, and how it ended stays.
        Some(Ok(exit)) if exit.run == unit.run => return Ok(None),
        _ => {}
    }
    let path = dirs.file(KILLED);
    let wrote = match records::read_killed(&dirs).map_err(|e| e.to_string())? {
        Some(k) if k.run == unit.run => None,
        _ => {
            std::fs::create_dir_all(&dirs.control)
                .map_err(|e| format!("cannot create {}: {e}", dirs.control.display()))?;
            records::write_atomic(&path, &Killed::now(unit.run).to_text())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Some(path)
        }
    };
    Ok(Some((
        flavour,
        Target {
            job: unit.job,
            native: native.to_owned(),
            wrote,
        },
    )))
}
