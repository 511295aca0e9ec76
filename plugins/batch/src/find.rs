//! Whether a run was handed over although its id was never recorded by ganga (the
//! `ganga` that submitted it died in between): from the chunk's submission record and
//! the unit's records first, else from the listing, where the chunk's key is shown.
//!
//! - no submission record holds this run: certainly not (nothing was asked of the
//!   system).
//! - the record has the submission's id: yes, the unit's id follows from it.
//! - `started` or `exit` of this run (the wrapper ran, and wrote the system's id): yes.
//! - else the listing is asked for a job with the chunk's key (Slurm's comment, Grid
//!   Engine's job name). Listed: yes; not listed: no (a held or pending job is listed).
//!   A flavour whose listing cannot show keys cannot tell.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use ganga_core::{Answers, BackendError, JobRef, Submitted, UnitRun};

use ganga_plugin_sdk::blocking;

use crate::backend::{Inner, unit_id};
use crate::flavour::{self, Flavour, Row};
use crate::layout::UnitDirs;
use crate::records::{Reading, RunRecords};
use crate::submissions::{self, Submission};

enum Step {
    Known(Option<Submitted>),
    /// Look for `key` at task `index` in the listing of `flavour`.
    Look {
        flavour: &'static Flavour,
        key: String,
        index: u32,
    },
}

pub(crate) async fn find(
    inner: &Arc<Inner>,
    units: &[UnitRun],
) -> Result<Answers<Option<Submitted>>, BackendError> {
    let owned = units.to_vec();
    type Read = io::Result<(Option<(Submission, u32)>, RunRecords)>;
    let read: Vec<(JobRef, Read)> = blocking("batch backend: find", move || {
        owned
            .iter()
            .map(|u| {
                let dirs = UnitDirs::new(&u.workspace);
                let found = submissions::find_unit(u.job, u.run, &u.workspace).and_then(|sub| {
                    Ok((sub, RunRecords::read(&dirs, u.run, Reading::Beginnings)?))
                });
                (u.job, found)
            })
            .collect()
    })
    .await?;

    let mut answers: Answers<Option<Submitted>> = Vec::with_capacity(units.len());
    let mut looks: Vec<(JobRef, Step)> = Vec::new();
    for (job, records) in read {
        match records {
            Ok((sub, r)) => match step(sub, &r) {
                Ok(s) => looks.push((job, s)),
                Err(e) => answers.push((job, Err(format!("job {job}: {e}")))),
            },
            Err(e) => answers.push((job, Err(format!("job {job}: {e}")))),
        }
    }

    let mut listings: BTreeMap<&'static str, Vec<Row>> = BTreeMap::new();
    for (job, s) in looks {
        let (flavour, key, index) = match s {
            Step::Known(found) => {
                answers.push((job, Ok(found)));
                continue;
            }
            Step::Look {
                flavour,
                key,
                index,
            } => (flavour, key, index),
        };
        if !listings.contains_key(flavour.name) {
            listings.insert(flavour.name, inner.listing(flavour).await?);
        }
        let rows = listings.get(flavour.name).map_or(&[][..], Vec::as_slice);
        // Any task of the chunk listed means the chunk was handed over (this unit's task
        // may have left the listing already).
        let found = rows
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_str()))
            .find_map(|r| flavour.split_id(&r.id))
            .map(|(base, _)| flavour.unit_id(base, index));
        answers.push((
            job,
            Ok(found.map(|id| Submitted::id(unit_id(flavour, &id)))),
        ));
    }
    Ok(answers)
}

/// Whether a flavour's listing names each job's submission key.
fn shows_keys(flavour: &Flavour) -> bool {
    matches!(flavour.name, "slurm" | "sge")
}

fn step(sub: Option<(Submission, u32)>, r: &RunRecords) -> Result<Step, String> {
    let Some((sub, index)) = sub else {
        return Ok(Step::Known(None));
    };
    let flavour = flavour::by_name(&sub.system).ok_or_else(|| {
        format!(
            "its submission record names an unknown system `{}`",
            sub.system
        )
    })?;
    if let Some(base) = &sub.id {
        let id = flavour.unit_id(base, index);
        return Ok(Step::Known(Some(Submitted::id(unit_id(flavour, &id)))));
    }
    let ran = r
        .exit
        .as_ref()
        .and_then(|e| e.id.clone())
        .or_else(|| r.started.as_ref().and_then(|s| s.id.clone()));
    if let Some(native) = ran.filter(|id| flavour.split_id(id).is_some()) {
        return Ok(Step::Known(Some(Submitted::id(unit_id(flavour, &native)))));
    }
    if !shows_keys(flavour) {
        return Err(format!(
            "cannot tell whether it was handed over: {}'s listing does not show submission keys",
            flavour.title
        ));
    }
    Ok(Step::Look {
        flavour,
        key: sub.key,
        index,
    })
}
