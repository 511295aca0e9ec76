//! Where units are: one listing per flavour for all of them, their records, and (for
//! units gone from the listing without an exit record) the history; then [`decide`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use ganga_core::{Answers, BackendError, BackendRef, PollReport, RemoteStatus};

use ganga_plugin_sdk::blocking;

use crate::backend::{Inner, parse_unit_id};
use crate::decide::{Facts, decide};
use crate::flavour::{EndKind, Flavour, Phase, Row};
use crate::layout::{EXIT, UnitDirs};
use crate::records::{Reading, RunRecords};

pub(crate) async fn poll(
    inner: &Arc<Inner>,
    units: &[BackendRef],
) -> Result<Answers<PollReport>, BackendError> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    // Which system each unit is on.
    let mut flavours: BTreeMap<&'static str, &'static Flavour> = BTreeMap::new();
    let natives: Vec<Option<(&'static Flavour, String)>> = units
        .iter()
        .map(|u| {
            parse_unit_id(&u.id).map(|(f, native)| {
                flavours.insert(f.name, f);
                (f, native.to_owned())
            })
        })
        .collect();

    // One listing per system, before the records are read: a unit that ends between the
    // two is then found ended by its record, never missing from both.
    let mut listed: HashMap<(&'static str, String), Row> = HashMap::new();
    for flavour in flavours.values() {
        for row in inner.listing(flavour).await? {
            listed.insert((flavour.name, row.id.clone()), row);
        }
    }

    let owned: Vec<BackendRef> = units.to_vec();
    let records: Vec<io::Result<RunRecords>> = blocking("batch backend: poll", move || {
        owned
            .iter()
            .map(|u| RunRecords::read(&UnitDirs::new(&u.workspace), u.run, Reading::Ends))
            .collect()
    })
    .await?;

    // Units neither listed nor ended by a record: ask the history, where there is one.
    let mut history: HashMap<(&'static str, String), Row> = HashMap::new();
    let mut history_failed: HashMap<&'static str, String> = HashMap::new();
    let missing: Vec<(&'static Flavour, String)> = natives
        .iter()
        .zip(&records)
        .filter_map(|(n, r)| {
            let (f, native) = n.as_ref()?;
            let ended = r
                .as_ref()
                .is_ok_and(|r| r.exit.is_some() || r.killed.is_some());
            (!ended && !listed.contains_key(&(f.name, native.clone())))
                .then(|| (*f, native.clone()))
        })
        .collect();
    if !missing.is_empty() {
        accounting_rows(inner, &missing, &mut history).await?;
        for flavour in flavours.values().filter(|f| f.history.is_some()) {
            let ids: Vec<&str> = missing
                .iter()
                .filter(|(f, _)| f.name == flavour.name)
                .map(|(_, id)| id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            match inner.history(flavour, &ids).await {
                Ok(rows) => {
                    for row in rows {
                        history.insert((flavour.name, row.id.clone()), row);
                    }
                }
                Err(e) => {
                    history_failed.insert(flavour.name, e);
                }
            }
        }
    }

    let mut answers = Vec::with_capacity(units.len());
    let mut to_delete: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for ((unit, native), records) in units.iter().zip(&natives).zip(records) {
        let Some((flavour, native)) = native else {
            answers.push((
                unit.job,
                Ok(PollReport {
                    reason: Some(format!(
                        "`{}` is not an id the batch backend gave (expected SYSTEM:ID, e.g. slurm:12_3)",
                        unit.id
                    )),
                    ..PollReport::new(RemoteStatus::Absent, "unknown id")
                }),
            ));
            continue;
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                answers.push((
                    unit.job,
                    Ok(PollReport {
                        reason: Some(e.to_string()),
                        ..PollReport::new(RemoteStatus::Unknown, "records unreadable")
                    }),
                ));
                continue;
            }
        };
        let key = (flavour.name, native.clone());
        let row = listed.get(&key);
        let hist = history.get(&key);
        if row.is_none()
            && hist.is_none()
            && records.exit.is_none()
            && records.killed.is_none()
            && let Some(e) = history_failed.get(flavour.name)
        {
            answers.push((
                unit.job,
                Ok(PollReport {
                    reason: Some(format!("not listed, and its history cannot be read: {e}")),
                    ..PollReport::new(RemoteStatus::Unknown, "not listed")
                }),
            ));
            continue;
        }
        let exit_record = UnitDirs::new(&unit.workspace).file(EXIT);
        let listed_native = row.map(|r| (flavour.map_state)(r));
        if flavour.delete_failed
            && records.exit.is_none()
            && listed_native
                .as_ref()
                .is_some_and(|n| n.phase == Phase::Ended(EndKind::Failure))
        {
            to_delete
                .entry(flavour.name)
                .or_default()
                .push(native.clone());
        }
        let report = decide(&Facts {
            records: &records,
            listed: listed_native,
            history: hist.map(|r| (flavour.map_state)(r)),
            host: row.or(hist).and_then(|r| r.host.clone()),
            exit_record: &exit_record,
        });
        answers.push((unit.job, Ok(report)));
    }
    delete_failed(inner, to_delete).await;
    Ok(answers)
}

/// Grid Engine: the accounting records of units that have left `qstat`.
async fn accounting_rows(
    inner: &Arc<Inner>,
    missing: &[(&'static Flavour, String)],
    history: &mut HashMap<(&'static str, String), Row>,
) -> Result<(), BackendError> {
    let ids: Vec<String> = missing
        .iter()
        .filter(|(f, _)| f.name == "sge")
        .map(|(_, id)| id.clone())
        .collect();
    if ids.is_empty() || inner.accounting.is_none() {
        return Ok(());
    }
    let inner = inner.clone();
    let rows: Vec<Row> = blocking("batch backend: reading the accounting file", move || {
        let Some(lock) = &inner.accounting else {
            return Vec::new();
        };
        let mut acct = match lock.lock() {
            Ok(a) => a,
            // A panic while it was held left it as it was: still a valid cache.
            Err(poisoned) => poisoned.into_inner(),
        };
        acct.refresh();
        ids.iter()
            .filter_map(|id| acct.get(id).map(|r| r.to_row()))
            .collect()
    })
    .await?;
    for row in rows {
        history.insert(("sge", row.id.clone()), row);
    }
    Ok(())
}

/// Deletes jobs that failed to start and would otherwise stay listed for ever (Grid
/// Engine's `Eqw`): they were just reported failed. Best effort: one that stays is
/// deleted at the next poll.
async fn delete_failed(inner: &Arc<Inner>, ids: BTreeMap<&'static str, Vec<String>>) {
    for (name, ids) in ids {
        let Some(flavour) = crate::flavour::by_name(name) else {
            continue;
        };
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        match inner.run_kill(flavour, &refs).await {
            Ok(out) => tracing::info!(
                "batch backend: deleted {} job(s) that could not start: {}",
                ids.len(),
                out.text()
            ),
            Err(e) => tracing::warn!("batch backend: cannot delete jobs that could not start: {e}"),
        }
    }
}
