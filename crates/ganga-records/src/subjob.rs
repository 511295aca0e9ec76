use ciborium_ll::Header;

use ganga_core::{
    BackendInfo, Override, RunState, Splitter, Status, StatusTimes, Subjob, SubjobIndex,
};

use crate::cbor::{CodecError, Fields, In, Out, Result, items_len};
use crate::dictionary::Dictionary;
use crate::run::get_exit_code;
use crate::times::{get_times, put_times, status};

/// A backend id that is a plain decimal number is kept as a number (most are: pids,
/// batch job ids, DIRAC ids); anything else as text.
pub(crate) fn put_backend_id(out: &mut Out<'_>, id: &Option<String>) {
    match id {
        None => out.null(),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n.to_string() == *s => out.uint(n),
            _ => out.text(s),
        },
    }
}

pub(crate) fn get_backend_id(input: &mut In<'_>) -> Result<Option<String>> {
    Ok(match input.header()? {
        Header::Simple(ciborium_ll::simple::NULL) => None,
        Header::Positive(n) => Some(n.to_string()),
        Header::Text(Some(len)) => Some(input.text_body(len, "backend id")?),
        other => return Err(CodecError::new(format!("backend id: unexpected {other:?}"))),
    })
}

pub(crate) fn put_ref(out: &mut Out<'_>, dict: &mut Dictionary, s: &Option<String>) {
    match s {
        None => out.null(),
        Some(s) => out.uint(u64::from(dict.intern(s))),
    }
}

pub(crate) fn get_ref(input: &mut In<'_>, dict: &Dictionary, what: &str) -> Result<Option<String>> {
    if input.is_null()? {
        return Ok(None);
    }
    let i = input.small(what)?;
    Ok(Some(dict.lookup(i, what)?.to_owned()))
}

/// Output names are interned as one string per list (joined by NUL, which no file name
/// holds): the subjobs of a job usually produce the same names.
pub(crate) fn put_outputs(out: &mut Out<'_>, dict: &mut Dictionary, outputs: &[String]) {
    if outputs.is_empty() {
        out.null();
    } else {
        out.uint(u64::from(dict.intern(&outputs.join("\0"))));
    }
}

pub(crate) fn get_outputs(input: &mut In<'_>, dict: &Dictionary) -> Result<Vec<String>> {
    Ok(match get_ref(input, dict, "outputs")? {
        None => Vec::new(),
        Some(joined) => joined.split('\0').map(str::to_owned).collect(),
    })
}

pub(crate) const O_NAME: u64 = 0;
pub(crate) const O_COMMENT: u64 = 1;
pub(crate) const O_EXE: u64 = 2;
pub(crate) const O_ARGS: u64 = 3;
pub(crate) const O_APPEND_ARGS: u64 = 4;
pub(crate) const O_ENV: u64 = 5;
pub(crate) const O_ENV_VAR: u64 = 6;
pub(crate) const O_BACKEND_OPTION: u64 = 7;

pub(crate) fn put_overrides(out: &mut Out<'_>, dict: &mut Dictionary, overrides: &[Override]) {
    out.array(overrides.len());
    for o in overrides {
        match o {
            Override::Name(s) | Override::Comment(s) | Override::Exe(s) => {
                out.array(2);
                out.uint(match o {
                    Override::Name(_) => O_NAME,
                    Override::Comment(_) => O_COMMENT,
                    _ => O_EXE,
                });
                out.text(s);
            }
            Override::Args(a) | Override::AppendArgs(a) => {
                out.array(2);
                out.uint(if matches!(o, Override::Args(_)) {
                    O_ARGS
                } else {
                    O_APPEND_ARGS
                });
                out.texts(a.iter().map(String::as_str));
            }
            Override::Env(env) => {
                out.array(2);
                out.uint(O_ENV);
                out.pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Override::EnvVar(k, v) => {
                out.array(3);
                out.uint(O_ENV_VAR);
                out.uint(u64::from(dict.intern(k)));
                out.text(v);
            }
            Override::BackendOption(k, v) => {
                out.array(3);
                out.uint(O_BACKEND_OPTION);
                out.uint(u64::from(dict.intern(k)));
                out.value(v);
            }
        }
    }
}

pub(crate) fn get_overrides(input: &mut In<'_>, dict: &Dictionary) -> Result<Vec<Override>> {
    let n = input.array("overrides")?;
    let mut overrides = Vec::with_capacity(n);
    for _ in 0..n {
        let len = input.array("override")?;
        let kind = input.uint("override kind")?;
        let o = match (kind, len) {
            (O_NAME, 2) => Override::Name(input.text("override")?),
            (O_COMMENT, 2) => Override::Comment(input.text("override")?),
            (O_EXE, 2) => Override::Exe(input.text("override")?),
            (O_ARGS, 2) => Override::Args(input.texts("override")?),
            (O_APPEND_ARGS, 2) => Override::AppendArgs(input.texts("override")?),
            (O_ENV, 2) => Override::Env(input.pairs("override")?),
            (O_ENV_VAR, 3) => {
                let k = input.small("override key")?;
                Override::EnvVar(
                    dict.lookup(k, "override key")?.to_owned(),
                    input.text("override")?,
                )
            }
            (O_BACKEND_OPTION, 3) => {
                let k = input.small("override key")?;
                Override::BackendOption(
                    dict.lookup(k, "override key")?.to_owned(),
                    input.value("override", 0)?,
                )
            }
            _ => {
                return Err(CodecError::new(format!(
                    "unknown override kind {kind} of {len} items"
                )));
            }
        };
        overrides.push(o);
    }
    Ok(overrides)
}

/// Encodes a subjob against its job's dictionary (which may grow) into `out`.
///
/// `[status, submit_count, times, backend_id, exit_code, native_state, reason, actual_ce,
/// outputs, overrides, auto_resubmits]`, trailing empty items left out. `split_item` is what the master's
/// splitter gives this subjob now: overrides equal to it are not repeated (the record
/// says `true`), so a store that uses this must rewrite a job's subjob records before its
/// splitter changes (see [`split_items`]).
pub fn encode_subjob(
    sj: &Subjob,
    dict: &mut Dictionary,
    split_item: Option<&[Override]>,
    buf: &mut Vec<u8>,
) {
    put_subjob(
        buf,
        &sj.run,
        dict,
        OverridesItem::Spelled {
            overrides: &sj.overrides,
            split_item,
        },
    );
}

/// A subjob record's overrides (its item 9) as stored: a CBOR item, `true` (its master's
/// split item) or an array; `None` when the record leaves the item out (no overrides).
/// Kept as bytes so that a record can be written again with a new run state without its
/// overrides (or its master's splitter) ever being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOverrides<'a>(Option<&'a [u8]>);

impl RawOverrides<'_> {
    /// Whether the record has overrides (its item is neither absent nor an empty array).
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.0, None | Some([0x80]))
    }
}

/// How [`put_subjob`] writes the overrides.
pub(crate) enum OverridesItem<'a> {
    Spelled {
        overrides: &'a [Override],
        split_item: Option<&'a [Override]>,
    },
    Raw(RawOverrides<'a>),
}

pub(crate) fn put_subjob(
    buf: &mut Vec<u8>,
    run: &RunState,
    dict: &mut Dictionary,
    overrides: OverridesItem,
) {
    let b = &run.backend;
    let has_overrides = match &overrides {
        OverridesItem::Spelled { overrides, .. } => !overrides.is_empty(),
        OverridesItem::Raw(raw) => !raw.is_empty(),
    };
    let len = items_len(
        3,
        &[
            b.id.is_some(),
            b.exit_code.is_some(),
            b.native_state.is_some(),
            b.reason.is_some(),
            b.actual_ce.is_some(),
            !run.outputs.is_empty(),
            has_overrides,
            run.auto_resubmits > 0,
        ],
    );
    let mut out = open_run_record(buf, len, run);
    put_times(&mut out, &run.times, dict.base);
    if len > 3 {
        put_backend_id(&mut out, &b.id);
    }
    if len > 4 {
        match b.exit_code {
            Some(c) => out.int(i64::from(c)),
            None => out.null(),
        }
    }
    if len > 5 {
        put_ref(&mut out, dict, &b.native_state);
    }
    if len > 6 {
        put_ref(&mut out, dict, &b.reason);
    }
    if len > 7 {
        put_ref(&mut out, dict, &b.actual_ce);
    }
    if len > 8 {
        put_outputs(&mut out, dict, &run.outputs);
    }
    if len > 9 {
        match overrides {
            OverridesItem::Spelled {
                overrides,
                split_item,
            } => {
                if split_item == Some(overrides) {
                    out.bool(true);
                } else {
                    put_overrides(&mut out, dict, overrides);
                }
            }
            OverridesItem::Raw(RawOverrides(Some(raw))) => {
                // Invariant: writing into a Vec<u8> cannot fail.
                ciborium_io::Write::write_all(&mut out.0, raw)
                    .expect("writing to a Vec never fails");
            }
            OverridesItem::Raw(RawOverrides(None)) => out.array(0),
        }
    }
    if len > 10 {
        out.uint(u64::from(run.auto_resubmits));
    }
}

/// A subjob record's run state, and its overrides as stored ([`RawOverrides`]): what a
/// store needs to apply a change of status to a subjob and write it back with
/// [`encode_subjob_run`], without decoding the overrides or its master's splitter.
pub fn decode_subjob_run<'a>(
    bytes: &'a [u8],
    dict: &Dictionary,
) -> Result<(RunState, RawOverrides<'a>)> {
    let (run, raw) = decode_subjob_parts(bytes, dict, |i| {
        let start = i.dec.offset();
        match i.header()? {
            Header::Simple(ciborium_ll::simple::TRUE) => {}
            h => {
                i.dec.push(h);
                // Checked as overrides, so that what is copied back is a valid item.
                get_overrides(i, dict)?;
            }
        }
        let end = i.dec.offset();
        bytes
            .get(start..end)
            .ok_or_else(|| CodecError::new("subjob: overrides beyond the record"))
    })?;
    Ok((run, RawOverrides(raw)))
}

/// A subjob record with this run state and the overrides of the record they came from
/// ([`decode_subjob_run`]), against the same dictionary (which may grow).
pub fn encode_subjob_run(
    run: &RunState,
    overrides: RawOverrides<'_>,
    dict: &mut Dictionary,
    buf: &mut Vec<u8>,
) {
    put_subjob(buf, run, dict, OverridesItem::Raw(overrides));
}

/// A subjob record's run state, and what `overrides` reads of its overrides item (`None`
/// when the record leaves the item out).
fn decode_subjob_parts<'a, T>(
    bytes: &'a [u8],
    dict: &Dictionary,
    overrides: impl FnOnce(&mut In<'a>) -> Result<T>,
) -> Result<(RunState, Option<T>)> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "subjob")?;
    let status = match f.next() {
        Some(i) => status(i.uint("status")?)?,
        None => return Err(CodecError::new("subjob: no status")),
    };
    let mut run = RunState {
        status,
        times: StatusTimes::default(),
        submit_count: 0,
        auto_resubmits: 0,
        backend: BackendInfo::default(),
        outputs: Vec::new(),
    };
    get_run_fields(&mut f, &mut run, dict)?;
    let overrides = f.next().map(overrides).transpose()?;
    if let Some(i) = f.next() {
        run.auto_resubmits = i.small("automatic resubmissions")?;
    }
    f.close()?;
    input.end("subjob")?;
    Ok((run, overrides))
}

/// Starts a record of `len` items that begins `[status, submit_count, …]` (subjob
/// records, unit entries), and writes those two.
pub(crate) fn open_run_record<'b>(buf: &'b mut Vec<u8>, len: usize, run: &RunState) -> Out<'b> {
    let mut out = Out::new(buf);
    out.array(len);
    out.uint(run.status.index() as u64);
    out.uint(u64::from(run.submit_count));
    out
}

/// Items 1 to 8 of a subjob record (those present) into `run`.
pub(crate) fn get_run_fields(
    f: &mut Fields<'_, '_>,
    run: &mut RunState,
    dict: &Dictionary,
) -> Result<()> {
    if let Some(i) = f.next() {
        run.submit_count = i.small("submit count")?;
    }
    if let Some(i) = f.next() {
        run.times = get_times(i, dict.base)?;
    }
    if let Some(i) = f.next() {
        run.backend.id = get_backend_id(i)?;
    }
    if let Some(i) = f.next() {
        run.backend.exit_code = get_exit_code(i)?;
    }
    if let Some(i) = f.next() {
        run.backend.native_state = get_ref(i, dict, "native state")?;
    }
    if let Some(i) = f.next() {
        run.backend.reason = get_ref(i, dict, "reason")?;
    }
    if let Some(i) = f.next() {
        run.backend.actual_ce = get_ref(i, dict, "actual CE")?;
    }
    if let Some(i) = f.next() {
        run.outputs = get_outputs(i, dict)?;
    }
    Ok(())
}

/// What a master's splitter gives each subjob in `range` (empty without a splitter, or
/// for indices past its end): what [`encode_subjob`] leaves out of subjob records.
pub fn split_items(
    splitter: Option<&Splitter>,
    range: std::ops::Range<SubjobIndex>,
) -> Vec<(SubjobIndex, Vec<Override>)> {
    let Some(splitter) = splitter else {
        return Vec::new();
    };
    range
        .filter_map(|i| splitter.item(i as usize).ok().flatten().map(|o| (i, o)))
        .collect()
}

/// Decodes a subjob record made by [`encode_subjob`] with this dictionary and the same
/// split item.
pub fn decode_subjob(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
    split_item: Option<&[Override]>,
) -> Result<Subjob> {
    decode_subjob_with(index, bytes, dict, &mut || {
        Ok(split_item.map(<[Override]>::to_vec))
    })
}

const NO_SPLIT_ITEM: &str =
    "the record takes its overrides from the master's splitter, which gives this subjob none";

/// As [`decode_subjob`], asking for the split item only if the record refers to it.
pub(crate) fn decode_subjob_with(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
    split_item: &mut dyn FnMut() -> Result<Option<Vec<Override>>>,
) -> Result<Subjob> {
    let (run, overrides) = decode_subjob_parts(bytes, dict, |i| match i.header()? {
        Header::Simple(ciborium_ll::simple::TRUE) => {
            split_item()?.ok_or_else(|| CodecError::new(NO_SPLIT_ITEM))
        }
        h => {
            i.dec.push(h);
            get_overrides(i, dict)
        }
    })?;
    let overrides = overrides.unwrap_or_default();
    Ok(Subjob {
        index,
        overrides,
        run,
    })
}

/// The status of a subjob record: its first item.
pub(crate) fn record_status(record: &[u8]) -> Result<Status> {
    let mut input = In::new(record);
    if input.array("subjob")? == 0 {
        return Err(CodecError::new("subjob: no status"));
    }
    status(input.uint("status")?)
}
