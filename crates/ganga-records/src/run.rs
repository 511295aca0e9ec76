use ganga_core::{BackendInfo, RunState};

use crate::cbor::{CodecError, Fields, In, Out, Result};
use crate::job::{get_opt_text, put_opt_text};
use crate::times::{get_times, put_times, status};

pub(crate) fn get_exit_code(i: &mut In<'_>) -> Result<Option<i32>> {
    if i.is_null()? {
        return Ok(None);
    }
    i32::try_from(i.int("exit code")?)
        .map(Some)
        .map_err(|_| CodecError::new("exit code out of range"))
}

/// The number a word spells, if it is written the one way that number is written.
pub(crate) fn canonical_number(w: &str) -> Option<u64> {
    let n: u64 = w.parse().ok()?;
    (n.to_string() == w).then_some(n)
}

/// `[status, times, submit_count, [id, native_state, exit_code, reason, actual_ce], outputs,
/// auto_resubmits]`, the last left out when 0.
pub(crate) fn put_run(out: &mut Out<'_>, run: &RunState) {
    out.array(if run.auto_resubmits > 0 { 6 } else { 5 });
    out.uint(run.status.index() as u64);
    let base = run.times.iter().next().map_or(0, |(_, t)| t.as_millis());
    out.array(2);
    out.int(base);
    put_times(out, &run.times, base);
    out.uint(u64::from(run.submit_count));
    let b = &run.backend;
    out.array(5);
    put_opt_text(out, &b.id);
    put_opt_text(out, &b.native_state);
    match b.exit_code {
        Some(c) => out.int(i64::from(c)),
        None => out.null(),
    }
    put_opt_text(out, &b.reason);
    put_opt_text(out, &b.actual_ce);
    out.texts(run.outputs.iter().map(String::as_str));
    if run.auto_resubmits > 0 {
        out.uint(u64::from(run.auto_resubmits));
    }
}

pub(crate) fn get_run(input: &mut In<'_>) -> Result<RunState> {
    let mut f = Fields::open(input, "run state")?;
    let status = status(f.need("status")?.uint("status")?)?;
    let i = f.need("times")?;
    if i.array("times")? != 2 {
        return Err(CodecError::new("run state: times are not [base, times]"));
    }
    let base = i.int("base time")?;
    let times = get_times(i, base)?;
    let submit_count = f.need("submit count")?.small("submit count")?;
    let i = f.need("backend")?;
    if i.array("backend facts")? != 5 {
        return Err(CodecError::new("run state: backend facts are not 5 items"));
    }
    let id = get_opt_text(i, "backend id")?;
    let native_state = get_opt_text(i, "native state")?;
    let exit_code = get_exit_code(i)?;
    let reason = get_opt_text(i, "reason")?;
    let actual_ce = get_opt_text(i, "actual CE")?;
    let outputs = f.need("outputs")?.texts("outputs")?;
    let auto_resubmits = match f.next() {
        Some(i) => i.small("automatic resubmissions")?,
        None => 0,
    };
    f.close()?;
    Ok(RunState {
        status,
        times,
        submit_count,
        auto_resubmits,
        backend: BackendInfo {
            id,
            native_state,
            exit_code,
            reason,
            actual_ce,
        },
        outputs,
    })
}
