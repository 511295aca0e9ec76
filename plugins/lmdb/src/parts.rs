//! A job kept in three tables: its state (`jobs`), its spec without the splitter
//! (`specs`) and its splitter (`splitters`, only for a job that has one). Reading them
//! and joining them into a `Job`.

use ganga_core::{Job, JobId};
use ganga_records::job_from_parts;
use heed::RoTxn;

use crate::codec::{decode_splitter, decode_state};
use crate::env::{Table, Tables};
use crate::error::Failure;
use crate::keys;

/// Reads the value of `key` in `table`, counting the read ([`crate::trim`]).
pub(crate) fn get<'t>(
    table: Table,
    txn: &'t RoTxn,
    key: &[u8],
    doing: &str,
) -> Result<Option<&'t [u8]>, Failure> {
    let _ = doing;
    table.get(txn, key)
}

/// The stored parts of a job, as bytes.
pub(crate) struct Parts<'t> {
    pub(crate) state: &'t [u8],
    /// `None` if the job has no spec (damage: every job has one).
    pub(crate) spec: Option<&'t [u8]>,
    /// `None` for a job without a splitter.
    pub(crate) splitter: Option<&'t [u8]>,
}

/// The stored parts of job `id`; `None` if it has no state (no such job).
pub(crate) fn stored<'t>(
    tables: &Tables,
    txn: &'t RoTxn,
    id: JobId,
) -> Result<Option<Parts<'t>>, Failure> {
    let key = keys::job(id);
    let Some(state) = get(tables.jobs, txn, &key, "reading table jobs")? else {
        return Ok(None);
    };
    let spec = get(tables.specs, txn, &key, "reading table specs")?;
    let splitter = get(tables.splitters, txn, &key, "reading table splitters")?;
    Ok(Some(Parts {
        state,
        spec,
        splitter,
    }))
}

impl Parts<'_> {
    /// The job these parts make, or why they do not make one: the part that does not
    /// decode, named by its table.
    pub(crate) fn join(&self, id: JobId) -> Result<Job, String> {
        let state = decode_state(self.state).map_err(|e| format!("table jobs: {e}"))?;
        let (spec, apart) = match self.spec {
            Some(bytes) => ganga_records::decode_spec_apart(bytes)
                .map_err(|e| format!("table specs: {}", crate::codec::unreadable(bytes, &e)))?,
            None => return Err(format!("table specs: job {id} has no spec")),
        };
        let splitter = match self.splitter {
            Some(bytes) => decode_splitter(bytes).map_err(|e| format!("table splitters: {e}"))?,
            None if apart => {
                return Err(format!(
                    "table splitters: the spec of job {id} says it has a splitter, but table \
                     splitters has none for it"
                ));
            }
            None => None,
        };
        Ok(job_from_parts(id, state, spec, splitter))
    }
}
