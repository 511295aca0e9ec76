use ganga_core::{RunState, Status, Timestamp};

use crate::cbor::{Fields, In, Result, items_len};
use crate::job::{get_opt_text, put_opt_text};
use crate::subjob::{get_backend_id, open_run_record, put_backend_id};
use crate::times::status;

/// What a store's index of active units holds of a unit (its key holds the backend and
/// the unit): what [`crate::ActiveUnit`] carries besides those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEntry {
    pub status: Status,
    /// The submit count.
    pub run: u32,
    pub id: Option<String>,
    pub native_state: Option<String>,
    /// When the unit entered its status.
    pub since: Option<Timestamp>,
}

impl UnitEntry {
    /// The entry of a unit with this run state.
    pub fn of(run: &RunState) -> UnitEntry {
        UnitEntry {
            status: run.status,
            run: run.submit_count,
            id: run.backend.id.clone(),
            native_state: run.backend.native_state.clone(),
            since: run.times.get(run.status),
        }
    }
}

/// `[status, run, backend id, native state, since]`, trailing empty items left out; the
/// backend id as in subjob records (a decimal number as a number), the rest inline.
pub fn encode_unit_entry(run: &RunState, buf: &mut Vec<u8>) {
    let since = run.times.get(run.status);
    let b = &run.backend;
    let len = items_len(
        2,
        &[b.id.is_some(), b.native_state.is_some(), since.is_some()],
    );
    let mut out = open_run_record(buf, len, run);
    if len > 2 {
        put_backend_id(&mut out, &b.id);
    }
    if len > 3 {
        put_opt_text(&mut out, &b.native_state);
    }
    if let Some(t) = since {
        out.int(t.as_millis());
    }
}

pub fn decode_unit_entry(bytes: &[u8]) -> Result<UnitEntry> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "unit entry")?;
    let status = status(f.need("status")?.uint("status")?)?;
    let run = f.need("run")?.small("run")?;
    let id = match f.next() {
        Some(i) => get_backend_id(i)?,
        None => None,
    };
    let native_state = match f.next() {
        Some(i) => get_opt_text(i, "native state")?,
        None => None,
    };
    let since = match f.next() {
        Some(i) => {
            if i.is_null()? {
                None
            } else {
                Some(Timestamp(i.int("since")?))
            }
        }
        None => None,
    };
    f.close()?;
    input.end("unit entry")?;
    Ok(UnitEntry {
        status,
        run,
        id,
        native_state,
        since,
    })
}
