use ganga_core::{Status, StatusCounts, StatusTimes, Timestamp};

use crate::cbor::{CodecError, In, Out, Result};

/// Times as `[mask, d1, d2, ...]`: `mask` has bit `s` set for each status `s` with a
/// time, in status order; each delta is from the previous time (the first from `base`).
pub(crate) fn put_times(out: &mut Out<'_>, times: &StatusTimes, base: i64) {
    let mut mask = 0u64;
    for (s, _) in times.iter() {
        mask |= 1 << s.index();
    }
    out.array(1 + times.len());
    out.uint(mask);
    let mut prev = base;
    for (_, t) in times.iter() {
        out.int(t.as_millis().wrapping_sub(prev));
        prev = t.as_millis();
    }
}

pub(crate) fn get_times(input: &mut In<'_>, base: i64) -> Result<StatusTimes> {
    let n = input.array("times")?;
    if n == 0 {
        return Ok(StatusTimes::default());
    }
    let mask = input.uint("times mask")?;
    if mask.count_ones() as usize != n - 1 || mask >> Status::ALL.len() != 0 {
        return Err(CodecError::new("times: the mask does not match the deltas"));
    }
    let mut prev = base;
    let mut times = StatusTimes::default();
    for s in Status::ALL {
        if mask & (1 << s.index()) != 0 {
            prev = prev.wrapping_add(input.int("time")?);
            times.set(s, Timestamp(prev));
        }
    }
    Ok(times)
}

pub(crate) fn put_counts(out: &mut Out<'_>, counts: &StatusCounts) {
    let n = counts.iter().count();
    out.array(n * 2);
    for (s, c) in counts.iter() {
        out.uint(s.index() as u64);
        out.uint(u64::from(c));
    }
}

pub(crate) fn get_counts(input: &mut In<'_>) -> Result<StatusCounts> {
    let n = input.array("status counts")?;
    if n % 2 != 0 {
        return Err(CodecError::new("status counts: odd number of items"));
    }
    let mut counts = StatusCounts::default();
    for _ in 0..n / 2 {
        let s = status(input.uint("status")?)?;
        counts.add(s, input.small("count")?);
    }
    Ok(counts)
}

pub(crate) fn status(n: u64) -> Result<Status> {
    usize::try_from(n)
        .ok()
        .and_then(Status::from_index)
        .ok_or_else(|| CodecError::new(format!("unknown status number {n}")))
}
