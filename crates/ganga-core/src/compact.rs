//! Compact records: jobs, subjobs and summaries as CBOR arrays, without field names.
//!
//! This is the encoding stores keep on disk and the plugin protocol carries for bulk data
//! (see `docs/storage-format.md`). A subjob is stored as what differs from its master:
//! its status, submit count, times as deltas, backend facts and the splitter's overrides.
//! Strings that repeat across the subjobs of a job (native states, hosts, reasons, output
//! names, override keys) are interned in the job's [`Dictionary`], and every time is a
//! delta from the dictionary's base time. A dictionary only ever grows and its base
//! never changes, so a subjob record stays readable however its master changes later.
//!
//! Every record is an array whose trailing items may be left out (they read as empty),
//! and readers skip trailing items they do not know, so a field can be appended without
//! a new format. Decoding never panics and never trusts a length it has not checked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ciborium_ll::{Decoder, Encoder, Header};

use crate::{
    Application, ArgLists, AutoResubmit, BackendConfig, BackendInfo, Executable, Job, JobId,
    JobSpec, JobSummary, Options, Override, RunState, SplitAttribute, Splitter, Status,
    StatusCounts, StatusTimes, Subjob, SubjobIndex, Timestamp, Value,
};

/// A record that cannot be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

impl CodecError {
    fn new(what: impl Into<String>) -> CodecError {
        CodecError(what.into())
    }
}

type Result<T> = std::result::Result<T, CodecError>;

// ---------------------------------------------------------------------------------------
// Writing and reading CBOR items.
// ---------------------------------------------------------------------------------------

struct Out<'a>(Encoder<&'a mut Vec<u8>>);

impl<'a> Out<'a> {
    fn new(buf: &'a mut Vec<u8>) -> Out<'a> {
        Out(Encoder::from(buf))
    }

    fn header(&mut self, h: Header) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.push(h).expect("writing to a Vec never fails");
    }

    fn array(&mut self, len: usize) {
        self.header(Header::Array(Some(len)));
    }

    fn uint(&mut self, n: u64) {
        self.header(Header::Positive(n));
    }

    fn int(&mut self, n: i64) {
        if n >= 0 {
            self.header(Header::Positive(n as u64));
        } else {
            self.header(Header::Negative(!(n as u64)));
        }
    }

    fn null(&mut self) {
        self.header(Header::Simple(ciborium_ll::simple::NULL));
    }

    fn bool(&mut self, b: bool) {
        self.header(Header::Simple(if b {
            ciborium_ll::simple::TRUE
        } else {
            ciborium_ll::simple::FALSE
        }));
    }

    fn text(&mut self, s: &str) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.text(s, None).expect("writing to a Vec never fails");
    }

    fn bytes(&mut self, b: &[u8]) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.bytes(b, None).expect("writing to a Vec never fails");
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => self.bool(*b),
            Value::Integer(i) => self.int(*i),
            Value::Float(f) => self.header(Header::Float(*f)),
            Value::String(s) => self.text(s),
            Value::List(items) => {
                self.array(items.len());
                for i in items {
                    self.value(i);
                }
            }
            Value::Table(t) => {
                self.header(Header::Map(Some(t.len())));
                for (k, v) in t {
                    self.text(k);
                    self.value(v);
                }
            }
        }
    }

    fn texts<'s>(&mut self, items: impl ExactSizeIterator<Item = &'s str>) {
        self.array(items.len());
        for s in items {
            self.text(s);
        }
    }

    /// A table of strings as a flat array `[k1, v1, k2, v2, ...]`.
    fn pairs<'s>(&mut self, map: impl ExactSizeIterator<Item = (&'s str, &'s str)>) {
        self.array(map.len() * 2);
        for (k, v) in map {
            self.text(k);
            self.text(v);
        }
    }
}

/// Reads CBOR items from a byte slice, checking every length against what is left.
struct In<'a> {
    dec: Decoder<&'a [u8]>,
    len: usize,
}

impl<'a> In<'a> {
    fn new(bytes: &'a [u8]) -> In<'a> {
        In {
            dec: Decoder::from(bytes),
            len: bytes.len(),
        }
    }

    fn left(&mut self) -> usize {
        self.len.saturating_sub(self.dec.offset())
    }

    fn header(&mut self) -> Result<Header> {
        self.dec
            .pull()
            .map_err(|e| CodecError::new(format!("malformed CBOR: {e:?}")))
    }

    fn array(&mut self, what: &str) -> Result<usize> {
        match self.header()? {
            Header::Array(Some(n)) if n <= self.left() => Ok(n),
            other => Err(CodecError::new(format!(
                "{what}: expected an array, found {other:?}"
            ))),
        }
    }

    fn uint(&mut self, what: &str) -> Result<u64> {
        match self.header()? {
            Header::Positive(n) => Ok(n),
            other => Err(CodecError::new(format!(
                "{what}: expected a number, found {other:?}"
            ))),
        }
    }

    fn small(&mut self, what: &str) -> Result<u32> {
        u32::try_from(self.uint(what)?)
            .map_err(|_| CodecError::new(format!("{what}: number too large")))
    }

    fn int(&mut self, what: &str) -> Result<i64> {
        match self.header()? {
            Header::Positive(n) => {
                i64::try_from(n).map_err(|_| CodecError::new(format!("{what}: out of range")))
            }
            Header::Negative(n) => i64::try_from(n)
                .map(|n| !n)
                .map_err(|_| CodecError::new(format!("{what}: out of range"))),
            other => Err(CodecError::new(format!(
                "{what}: expected an integer, found {other:?}"
            ))),
        }
    }

    fn text_body(&mut self, len: usize, what: &str) -> Result<String> {
        if len > self.left() {
            return Err(CodecError::new(format!(
                "{what}: text longer than the record"
            )));
        }
        let mut buf = vec![0u8; len];
        ciborium_io::Read::read_exact(&mut self.dec, &mut buf)
            .map_err(|_| CodecError::new(format!("{what}: truncated text")))?;
        String::from_utf8(buf).map_err(|_| CodecError::new(format!("{what}: text is not UTF-8")))
    }

    /// Reads a text's body into `buf` (cleared first), reusing its allocation.
    fn text_into(&mut self, len: usize, what: &str, buf: &mut String) -> Result<()> {
        if len > self.left() {
            return Err(CodecError::new(format!(
                "{what}: text longer than the record"
            )));
        }
        let mut bytes = std::mem::take(buf).into_bytes();
        bytes.clear();
        bytes.resize(len, 0);
        ciborium_io::Read::read_exact(&mut self.dec, &mut bytes)
            .map_err(|_| CodecError::new(format!("{what}: truncated text")))?;
        *buf = String::from_utf8(bytes)
            .map_err(|_| CodecError::new(format!("{what}: text is not UTF-8")))?;
        Ok(())
    }

    fn text(&mut self, what: &str) -> Result<String> {
        match self.header()? {
            Header::Text(Some(len)) => self.text_body(len, what),
            other => Err(CodecError::new(format!(
                "{what}: expected text, found {other:?}"
            ))),
        }
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        match self.header()? {
            Header::Bytes(Some(len)) if len <= self.left() => {
                let mut buf = vec![0u8; len];
                ciborium_io::Read::read_exact(&mut self.dec, &mut buf)
                    .map_err(|_| CodecError::new(format!("{what}: truncated bytes")))?;
                Ok(buf)
            }
            other => Err(CodecError::new(format!(
                "{what}: expected bytes, found {other:?}"
            ))),
        }
    }

    /// `None` for a CBOR null.
    fn is_null(&mut self) -> Result<bool> {
        match self.header()? {
            Header::Simple(ciborium_ll::simple::NULL) => Ok(true),
            h => {
                self.dec.push(h);
                Ok(false)
            }
        }
    }

    fn bool(&mut self, what: &str) -> Result<bool> {
        match self.header()? {
            Header::Simple(ciborium_ll::simple::TRUE) => Ok(true),
            Header::Simple(ciborium_ll::simple::FALSE) => Ok(false),
            other => Err(CodecError::new(format!(
                "{what}: expected a boolean, found {other:?}"
            ))),
        }
    }

    fn texts(&mut self, what: &str) -> Result<Vec<String>> {
        let n = self.array(what)?;
        (0..n).map(|_| self.text(what)).collect()
    }

    fn pairs(&mut self, what: &str) -> Result<BTreeMap<String, String>> {
        let n = self.array(what)?;
        if n % 2 != 0 {
            return Err(CodecError::new(format!(
                "{what}: odd number of items in a table"
            )));
        }
        let mut map = BTreeMap::new();
        for _ in 0..n / 2 {
            let k = self.text(what)?;
            map.insert(k, self.text(what)?);
        }
        Ok(map)
    }

    fn value(&mut self, what: &str, depth: usize) -> Result<Value> {
        if depth > 64 {
            return Err(CodecError::new(format!("{what}: nested too deeply")));
        }
        Ok(match self.header()? {
            Header::Simple(ciborium_ll::simple::TRUE) => Value::Bool(true),
            Header::Simple(ciborium_ll::simple::FALSE) => Value::Bool(false),
            Header::Positive(n) => Value::Integer(
                i64::try_from(n)
                    .map_err(|_| CodecError::new(format!("{what}: integer out of range")))?,
            ),
            Header::Negative(n) => Value::Integer(
                i64::try_from(n)
                    .map(|n| !n)
                    .map_err(|_| CodecError::new(format!("{what}: integer out of range")))?,
            ),
            Header::Float(f) => Value::Float(f),
            Header::Text(Some(len)) => Value::String(self.text_body(len, what)?),
            Header::Array(Some(n)) if n <= self.left() => Value::List(
                (0..n)
                    .map(|_| self.value(what, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Header::Map(Some(n)) if n <= self.left() => {
                let mut t = BTreeMap::new();
                for _ in 0..n {
                    let k = self.text(what)?;
                    t.insert(k, self.value(what, depth + 1)?);
                }
                Value::Table(t)
            }
            other => return Err(CodecError::new(format!("{what}: unexpected {other:?}"))),
        })
    }

    /// Passes over `len` bytes of a text or byte string's body.
    fn pass(&mut self, len: usize, what: &str) -> Result<()> {
        if len > self.left() {
            return Err(CodecError::new(format!("{what}: longer than the record")));
        }
        let mut left = len;
        let mut chunk = [0u8; 256];
        while left > 0 {
            let n = left.min(chunk.len());
            ciborium_io::Read::read_exact(&mut self.dec, &mut chunk[..n])
                .map_err(|_| CodecError::new(format!("{what}: truncated")))?;
            left -= n;
        }
        Ok(())
    }

    /// Skips one item (of a newer writer), whatever it is.
    fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > 64 {
            return Err(CodecError::new("nested too deeply"));
        }
        match self.header()? {
            Header::Text(Some(len)) | Header::Bytes(Some(len)) if len <= self.left() => {
                let mut buf = vec![0u8; len];
                ciborium_io::Read::read_exact(&mut self.dec, &mut buf)
                    .map_err(|_| CodecError::new("truncated"))?;
            }
            Header::Array(Some(n)) if n <= self.left() => {
                for _ in 0..n {
                    self.skip(depth + 1)?;
                }
            }
            Header::Map(Some(n)) if n <= self.left() => {
                for _ in 0..n * 2 {
                    self.skip(depth + 1)?;
                }
            }
            Header::Tag(_) => self.skip(depth + 1)?,
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {}
            other => return Err(CodecError::new(format!("cannot skip {other:?}"))),
        }
        Ok(())
    }

    /// Checks nothing follows the record.
    fn end(&mut self, what: &str) -> Result<()> {
        if self.left() == 0 {
            Ok(())
        } else {
            Err(CodecError::new(format!(
                "{what}: {} bytes after the record",
                self.left()
            )))
        }
    }
}

/// The fields of a record array: the ones present are read in order; missing trailing
/// ones read as empty; unknown trailing ones are skipped.
struct Fields<'i, 'a> {
    input: &'i mut In<'a>,
    left: usize,
}

impl<'i, 'a> Fields<'i, 'a> {
    fn open(input: &'i mut In<'a>, what: &str) -> Result<Fields<'i, 'a>> {
        let left = input.array(what)?;
        Ok(Fields { input, left })
    }

    /// The next field, or `None` if the record ends before it.
    fn next(&mut self) -> Option<&mut In<'a>> {
        if self.left == 0 {
            None
        } else {
            self.left -= 1;
            Some(self.input)
        }
    }

    /// The next field, which must be there.
    fn need(&mut self, what: &str) -> Result<&mut In<'a>> {
        if self.left == 0 {
            Err(CodecError::new(format!("no {what}")))
        } else {
            self.left -= 1;
            Ok(self.input)
        }
    }

    fn close(self) -> Result<()> {
        for _ in 0..self.left {
            self.input.skip(0)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The dictionary of a job.
// ---------------------------------------------------------------------------------------

/// What the subjob records of one job share: a base time that every time is a delta
/// from, and strings referred to by number. It only grows, and its base never changes.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    base: i64,
    strings: Vec<String>,
    index: HashMap<String, u32>,
}

impl PartialEq for Dictionary {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base && self.strings == other.strings
    }
}

impl Dictionary {
    pub fn new(base: Timestamp) -> Dictionary {
        Dictionary {
            base: base.as_millis(),
            strings: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn base(&self) -> Timestamp {
        Timestamp(self.base)
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The number of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    pub fn get(&self, i: u32) -> Option<&str> {
        self.strings.get(i as usize).map(String::as_str)
    }

    fn lookup(&self, i: u32, what: &str) -> Result<&str> {
        self.get(i).ok_or_else(|| {
            CodecError::new(format!(
                "{what}: string {i} is not in the job's dictionary of {}",
                self.strings.len()
            ))
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf =
            Vec::with_capacity(16 + self.strings.iter().map(|s| s.len() + 2).sum::<usize>());
        let mut out = Out::new(&mut buf);
        out.array(2);
        out.int(self.base);
        out.texts(self.strings.iter().map(String::as_str));
        buf
    }

    /// The dictionary as a store keeps it, with which subjob indices the job has records
    /// for, as inclusive ranges (sorted, apart): `[base, [strings…], [first, last, …]]`.
    /// Readers of the plain dictionary skip the ranges.
    pub fn encode_with_indices(&self, ranges: &[(SubjobIndex, SubjobIndex)]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            24 + ranges.len() * 10 + self.strings.iter().map(|s| s.len() + 2).sum::<usize>(),
        );
        let mut out = Out::new(&mut buf);
        out.array(3);
        out.int(self.base);
        out.texts(self.strings.iter().map(String::as_str));
        out.array(ranges.len() * 2);
        for &(first, last) in ranges {
            out.uint(u64::from(first));
            out.uint(u64::from(last));
        }
        buf
    }

    /// A dictionary written by [`Dictionary::encode_with_indices`], and its ranges of
    /// indices (`None` if it has none: written by [`Dictionary::encode`]).
    #[allow(clippy::type_complexity)]
    pub fn decode_with_indices(
        bytes: &[u8],
    ) -> Result<(Dictionary, Option<Vec<(SubjobIndex, SubjobIndex)>>)> {
        let mut input = In::new(bytes);
        let mut f = Fields::open(&mut input, "dictionary")?;
        let base = match f.next() {
            Some(i) => i.int("dictionary base")?,
            None => 0,
        };
        let strings = match f.next() {
            Some(i) => i.texts("dictionary strings")?,
            None => Vec::new(),
        };
        let ranges = match f.next() {
            None => None,
            Some(i) => {
                let n = i.array("subjob indices")?;
                if n % 2 != 0 {
                    return Err(CodecError::new("subjob indices: an odd number of bounds"));
                }
                let mut ranges: Vec<(SubjobIndex, SubjobIndex)> = Vec::with_capacity(n / 2);
                for _ in 0..n / 2 {
                    let first = i.small("subjob index")?;
                    let last = i.small("subjob index")?;
                    let apart = ranges
                        .last()
                        .is_none_or(|&(_, prev)| u64::from(first) > u64::from(prev) + 1);
                    if first > last || !apart {
                        return Err(CodecError::new(
                            "subjob indices: ranges out of order or touching",
                        ));
                    }
                    ranges.push((first, last));
                }
                Some(ranges)
            }
        };
        f.close()?;
        input.end("dictionary")?;
        let index = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        Ok((
            Dictionary {
                base,
                strings,
                index,
            },
            ranges,
        ))
    }

    pub fn decode(bytes: &[u8]) -> Result<Dictionary> {
        let mut input = In::new(bytes);
        let mut f = Fields::open(&mut input, "dictionary")?;
        let base = match f.next() {
            Some(i) => i.int("dictionary base")?,
            None => 0,
        };
        let strings = match f.next() {
            Some(i) => i.texts("dictionary strings")?,
            None => Vec::new(),
        };
        f.close()?;
        input.end("dictionary")?;
        let index = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        Ok(Dictionary {
            base,
            strings,
            index,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Times.
// ---------------------------------------------------------------------------------------

/// Times as `[mask, d1, d2, ...]`: `mask` has bit `s` set for each status `s` with a
/// time, in status order; each delta is from the previous time (the first from `base`).
fn put_times(out: &mut Out<'_>, times: &StatusTimes, base: i64) {
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

fn get_times(input: &mut In<'_>, base: i64) -> Result<StatusTimes> {
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

fn put_counts(out: &mut Out<'_>, counts: &StatusCounts) {
    let n = counts.iter().count();
    out.array(n * 2);
    for (s, c) in counts.iter() {
        out.uint(s.index() as u64);
        out.uint(u64::from(c));
    }
}

fn get_counts(input: &mut In<'_>) -> Result<StatusCounts> {
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

fn status(n: u64) -> Result<Status> {
    usize::try_from(n)
        .ok()
        .and_then(Status::from_index)
        .ok_or_else(|| CodecError::new(format!("unknown status number {n}")))
}

// ---------------------------------------------------------------------------------------
// Subjobs.
// ---------------------------------------------------------------------------------------

/// A backend id that is a plain decimal number is kept as a number (most are: pids,
/// batch job ids, DIRAC ids); anything else as text.
fn put_backend_id(out: &mut Out<'_>, id: &Option<String>) {
    match id {
        None => out.null(),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n.to_string() == *s => out.uint(n),
            _ => out.text(s),
        },
    }
}

fn get_backend_id(input: &mut In<'_>) -> Result<Option<String>> {
    Ok(match input.header()? {
        Header::Simple(ciborium_ll::simple::NULL) => None,
        Header::Positive(n) => Some(n.to_string()),
        Header::Text(Some(len)) => Some(input.text_body(len, "backend id")?),
        other => return Err(CodecError::new(format!("backend id: unexpected {other:?}"))),
    })
}

fn put_ref(out: &mut Out<'_>, dict: &mut Dictionary, s: &Option<String>) {
    match s {
        None => out.null(),
        Some(s) => out.uint(u64::from(dict.intern(s))),
    }
}

fn get_ref(input: &mut In<'_>, dict: &Dictionary, what: &str) -> Result<Option<String>> {
    if input.is_null()? {
        return Ok(None);
    }
    let i = input.small(what)?;
    Ok(Some(dict.lookup(i, what)?.to_owned()))
}

/// Output names are interned as one string per list (joined by NUL, which no file name
/// holds): the subjobs of a job usually produce the same names.
fn put_outputs(out: &mut Out<'_>, dict: &mut Dictionary, outputs: &[String]) {
    if outputs.is_empty() {
        out.null();
    } else {
        out.uint(u64::from(dict.intern(&outputs.join("\0"))));
    }
}

fn get_outputs(input: &mut In<'_>, dict: &Dictionary) -> Result<Vec<String>> {
    Ok(match get_ref(input, dict, "outputs")? {
        None => Vec::new(),
        Some(joined) => joined.split('\0').map(str::to_owned).collect(),
    })
}

const O_NAME: u64 = 0;
const O_COMMENT: u64 = 1;
const O_EXE: u64 = 2;
const O_ARGS: u64 = 3;
const O_APPEND_ARGS: u64 = 4;
const O_ENV: u64 = 5;
const O_ENV_VAR: u64 = 6;
const O_BACKEND_OPTION: u64 = 7;

fn put_overrides(out: &mut Out<'_>, dict: &mut Dictionary, overrides: &[Override]) {
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

fn get_overrides(input: &mut In<'_>, dict: &Dictionary) -> Result<Vec<Override>> {
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
    fn is_empty(&self) -> bool {
        matches!(self.0, None | Some([0x80]))
    }
}

/// How [`put_subjob`] writes the overrides.
enum OverridesItem<'a> {
    Spelled {
        overrides: &'a [Override],
        split_item: Option<&'a [Override]>,
    },
    Raw(RawOverrides<'a>),
}

fn put_subjob(buf: &mut Vec<u8>, run: &RunState, dict: &mut Dictionary, overrides: OverridesItem) {
    let b = &run.backend;
    let has_overrides = match &overrides {
        OverridesItem::Spelled { overrides, .. } => !overrides.is_empty(),
        OverridesItem::Raw(raw) => !raw.is_empty(),
    };
    let len = if run.auto_resubmits > 0 {
        11
    } else if has_overrides {
        10
    } else if !run.outputs.is_empty() {
        9
    } else if b.actual_ce.is_some() {
        8
    } else if b.reason.is_some() {
        7
    } else if b.native_state.is_some() {
        6
    } else if b.exit_code.is_some() {
        5
    } else if b.id.is_some() {
        4
    } else {
        3
    };
    let mut out = Out::new(buf);
    out.array(len);
    out.uint(run.status.index() as u64);
    out.uint(u64::from(run.submit_count));
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
    let mut raw = None;
    get_run_fields(&mut f, &mut run, dict)?;
    if let Some(i) = f.next() {
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
        raw = Some(
            bytes
                .get(start..end)
                .ok_or_else(|| CodecError::new("subjob: overrides beyond the record"))?,
        );
    }
    if let Some(i) = f.next() {
        run.auto_resubmits = i.small("automatic resubmissions")?;
    }
    f.close()?;
    input.end("subjob")?;
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

/// Items 1 to 8 of a subjob record (those present) into `run`.
fn get_run_fields(f: &mut Fields<'_, '_>, run: &mut RunState, dict: &Dictionary) -> Result<()> {
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

/// As [`decode_subjob`], asking for the split item only if the record refers to it.
fn decode_subjob_with(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
    split_item: &mut dyn FnMut() -> Result<Option<Vec<Override>>>,
) -> Result<Subjob> {
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
    let mut overrides = Vec::new();
    get_run_fields(&mut f, &mut run, dict)?;
    if let Some(i) = f.next() {
        overrides = match i.header()? {
            Header::Simple(ciborium_ll::simple::TRUE) => split_item()?.ok_or_else(|| {
                CodecError::new(
                    "the record takes its overrides from the master's splitter, which gives this subjob none",
                )
            })?,
            h => {
                i.dec.push(h);
                get_overrides(i, dict)?
            }
        };
    }
    if let Some(i) = f.next() {
        run.auto_resubmits = i.small("automatic resubmissions")?;
    }
    f.close()?;
    input.end("subjob")?;
    Ok(Subjob {
        index,
        overrides,
        run,
    })
}

/// The status of a subjob record: its first item.
fn record_status(record: &[u8]) -> Result<Status> {
    let mut input = In::new(record);
    if input.array("subjob")? == 0 {
        return Err(CodecError::new("subjob: no status"));
    }
    status(input.uint("status")?)
}

// ---------------------------------------------------------------------------------------
// Summaries.
// ---------------------------------------------------------------------------------------

/// `[name, status, backend, application, counts, exit_code, created, updated - created,
/// comment]`.
pub fn encode_summary(s: &JobSummary, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    out.array(9);
    out.text(&s.name);
    out.uint(s.status.index() as u64);
    out.text(&s.backend);
    out.text(&s.application);
    put_counts(&mut out, &s.subjobs);
    match s.exit_code {
        Some(c) => out.int(i64::from(c)),
        None => out.null(),
    }
    match s.created {
        Some(t) => out.int(t.as_millis()),
        None => out.null(),
    }
    match (s.created, s.updated) {
        (Some(c), Some(u)) => out.int(u.as_millis().wrapping_sub(c.as_millis())),
        (None, Some(u)) => {
            out.array(1);
            out.int(u.as_millis());
        }
        (_, None) => out.null(),
    }
    out.text(&s.comment);
}

pub fn decode_summary(id: JobId, bytes: &[u8]) -> Result<JobSummary> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "summary")?;
    let name = f.need("name")?.text("name")?;
    let status = status(f.need("status")?.uint("status")?)?;
    let backend = f.need("backend")?.text("backend")?;
    let application = f.need("application")?.text("application")?;
    let subjobs = get_counts(f.need("counts")?)?;
    let i = f.need("exit code")?;
    let exit_code = get_exit_code(i)?;
    let i = f.need("created")?;
    let created = if i.is_null()? {
        None
    } else {
        Some(Timestamp(i.int("created")?))
    };
    let i = f.need("updated")?;
    let updated = match i.header()? {
        Header::Simple(ciborium_ll::simple::NULL) => None,
        Header::Array(Some(1)) => Some(Timestamp(i.int("updated")?)),
        h => {
            i.dec.push(h);
            let d = i.int("updated")?;
            Some(Timestamp(
                created.map_or(0, |c| c.as_millis()).wrapping_add(d),
            ))
        }
    };
    let comment = f.need("comment")?.text("comment")?;
    f.close()?;
    input.end("summary")?;
    Ok(JobSummary {
        id,
        name,
        status,
        backend,
        application,
        subjobs,
        exit_code,
        created,
        updated,
        comment,
    })
}

// ---------------------------------------------------------------------------------------
// Jobs.
// ---------------------------------------------------------------------------------------

/// `[revision, spec, run, subjob counts, metadata]`; the run's times are deltas from its
/// first time; strings are inline (a job is one record).
pub fn encode_job(job: &Job, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    out.array(5);
    out.uint(job.revision);
    put_spec(&mut out, &job.spec, job.spec.splitter.as_ref());
    put_run(&mut out, &job.run);
    put_counts(&mut out, &job.subjobs);
    out.pairs(job.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

pub fn decode_job(id: JobId, bytes: &[u8]) -> Result<Job> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "job")?;
    let revision = f
        .next()
        .ok_or_else(|| CodecError::new("job: no revision"))?
        .uint("revision")?;
    let (spec, _) = get_spec(f.next().ok_or_else(|| CodecError::new("job: no spec"))?)?;
    let run = get_run(
        f.next()
            .ok_or_else(|| CodecError::new("job: no run state"))?,
    )?;
    let (subjobs, metadata) = counts_and_metadata(&mut f)?;
    f.close()?;
    input.end("job")?;
    Ok(Job {
        id,
        revision,
        spec: std::sync::Arc::new(spec),
        run,
        subjobs,
        metadata,
    })
}

/// A job's state, the part of its record that changes as it runs: `[revision, run,
/// subjob counts, metadata]`. A store may keep it apart from the spec, so that a change
/// of status rewrites a few dozen bytes, not a master's thousands of split arguments.
pub fn encode_state(job: &Job, buf: &mut Vec<u8>) {
    encode_state_parts(job.revision, &job.run, &job.subjobs, &job.metadata, buf);
}

/// A job's state ([`encode_state`]) from its parts, for a store that updates a job's run
/// without its spec.
pub fn encode_state_parts(
    revision: u64,
    run: &RunState,
    counts: &StatusCounts,
    metadata: &BTreeMap<String, String>,
    buf: &mut Vec<u8>,
) {
    let mut out = Out::new(buf);
    out.array(4);
    out.uint(revision);
    put_run(&mut out, run);
    put_counts(&mut out, counts);
    out.pairs(metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// A job's state as stored by [`encode_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub revision: u64,
    pub run: RunState,
    pub subjobs: StatusCounts,
    pub metadata: BTreeMap<String, String>,
}

/// A job's subjob counters and metadata, the last fields of its record and of its state
/// (each left out when empty).
fn counts_and_metadata(f: &mut Fields<'_, '_>) -> Result<(StatusCounts, BTreeMap<String, String>)> {
    let subjobs = match f.next() {
        Some(i) => get_counts(i)?,
        None => StatusCounts::default(),
    };
    let metadata = match f.next() {
        Some(i) => i.pairs("metadata")?,
        None => BTreeMap::new(),
    };
    Ok((subjobs, metadata))
}

pub fn decode_state(bytes: &[u8]) -> Result<JobState> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "job state")?;
    let revision = f.need("revision")?.uint("revision")?;
    let run = get_run(f.need("run state")?)?;
    let (subjobs, metadata) = counts_and_metadata(&mut f)?;
    f.close()?;
    input.end("job state")?;
    Ok(JobState {
        revision,
        run,
        subjobs,
        metadata,
    })
}

/// A job's spec without its splitter (the splitter is [`encode_splitter`]'s). In the
/// splitter's place it says whether the job has one (`true`, kept apart) or not (`null`),
/// so that a splitter record that went missing is noticed ([`decode_spec_apart`]).
pub fn encode_spec(spec: &JobSpec, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    put_spec(&mut out, spec, None);
}

pub fn decode_spec(bytes: &[u8]) -> Result<JobSpec> {
    decode_spec_apart(bytes).map(|(spec, _)| spec)
}

/// A spec as [`decode_spec`], and whether it says its job has a splitter kept apart
/// (records written before it said so say `false`).
pub fn decode_spec_apart(bytes: &[u8]) -> Result<(JobSpec, bool)> {
    let mut input = In::new(bytes);
    let spec = get_spec(&mut input)?;
    input.end("spec")?;
    Ok(spec)
}

/// A splitter alone (null for none).
pub fn encode_splitter(splitter: Option<&Splitter>, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    put_splitter(&mut out, splitter);
}

pub fn decode_splitter(bytes: &[u8]) -> Result<Option<Splitter>> {
    let mut input = In::new(bytes);
    let splitter = get_splitter(&mut input)?;
    input.end("splitter")?;
    Ok(splitter)
}

/// A job from its parts as [`encode_state`], [`encode_spec`] and [`encode_splitter`] wrote
/// them.
pub fn job_from_parts(
    id: JobId,
    state: JobState,
    mut spec: JobSpec,
    splitter: Option<Splitter>,
) -> Job {
    spec.splitter = splitter;
    Job {
        id,
        revision: state.revision,
        spec: std::sync::Arc::new(spec),
        run: state.run,
        subjobs: state.subjobs,
        metadata: state.metadata,
    }
}

/// A job as a store keeps it: its state ([`encode_state`]), its spec without its
/// splitter ([`encode_spec`]) and its splitter ([`encode_splitter`], absent for a job
/// without one). A store that keeps these records hands them over as they are
/// ([`crate::Store::job_record`]), so that across the plugin boundary a job is decoded
/// once, by the caller, and never decoded and encoded again by the plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub state: serde_bytes::ByteBuf,
    pub spec: serde_bytes::ByteBuf,
    pub splitter: Option<serde_bytes::ByteBuf>,
}

impl JobRecord {
    /// The records of `job`.
    pub fn of(job: &Job) -> JobRecord {
        let mut state = Vec::new();
        encode_state(job, &mut state);
        let mut spec = Vec::new();
        encode_spec(&job.spec, &mut spec);
        let splitter = job.spec.splitter.as_ref().map(|s| {
            let mut bytes = Vec::new();
            encode_splitter(Some(s), &mut bytes);
            serde_bytes::ByteBuf::from(bytes)
        });
        JobRecord {
            state: state.into(),
            spec: spec.into(),
            splitter,
        }
    }

    /// The job `id` these records make, or why they do not: the part that does not decode.
    pub fn decode(&self, id: JobId) -> Result<Job> {
        fn named(part: &'static str) -> impl Fn(CodecError) -> CodecError {
            move |e| CodecError::new(format!("its {part}: {e}"))
        }
        let state = decode_state(&self.state).map_err(named("state"))?;
        let (spec, apart) = decode_spec_apart(&self.spec).map_err(named("spec"))?;
        let splitter = match &self.splitter {
            Some(bytes) => decode_splitter(bytes).map_err(named("splitter"))?,
            None if apart => {
                return Err(CodecError::new(
                    "its spec says it has a splitter, but no splitter record came with it",
                ));
            }
            None => None,
        };
        Ok(job_from_parts(id, state, spec, splitter))
    }
}

fn put_opt_text(out: &mut Out<'_>, s: &Option<String>) {
    match s {
        Some(s) => out.text(s),
        None => out.null(),
    }
}

fn get_opt_text(input: &mut In<'_>, what: &str) -> Result<Option<String>> {
    if input.is_null()? {
        Ok(None)
    } else {
        input.text(what).map(Some)
    }
}

/// Lists of words (an ArgSplitter's arguments: thousands of lists that share most of
/// their words) as `[table, lists]`: a word used more than once is in `table` and written
/// as `-(k + 1)`; a word that is a plain decimal number is written as that number; any
/// other word as text.
fn put_word_lists(out: &mut Out<'_>, lists: &ArgLists) {
    let mut uses: HashMap<&str, u32> = HashMap::new();
    for w in lists.iter().flatten() {
        *uses.entry(w).or_default() += 1;
    }
    let mut table: Vec<&str> = uses
        .iter()
        .filter(|&(w, &n)| n > 1 && canonical_number(w).is_none())
        .map(|(w, _)| *w)
        .collect();
    table.sort_unstable();
    let refs: HashMap<&str, i64> = table
        .iter()
        .enumerate()
        .map(|(k, w)| (*w, -(k as i64) - 1))
        .collect();
    out.texts(table.iter().copied());
    out.array(lists.len());
    for list in lists.iter() {
        out.array(list.len());
        for w in list {
            if let Some(&r) = refs.get(w) {
                out.int(r);
            } else if let Some(n) = canonical_number(w) {
                out.uint(n);
            } else {
                out.text(w);
            }
        }
    }
}

fn get_word_lists(input: &mut In<'_>) -> Result<ArgLists> {
    let table = input.texts("word table")?;
    let n = input.array("word lists")?;
    let mut lists = ArgLists::new();
    for _ in 0..n {
        get_word_list(input, &table, &mut |w| lists.push_word(w))?;
        lists.end_list();
    }
    Ok(lists)
}

/// One argument list, each word handed to `word` in order: a number, a reference into
/// `table`, or a text.
fn get_word_list(input: &mut In<'_>, table: &[String], word: &mut dyn FnMut(&str)) -> Result<()> {
    let m = input.array("word list")?;
    let mut text = String::new();
    for _ in 0..m {
        match input.header()? {
            Header::Positive(n) => word(&n.to_string()),
            Header::Negative(k) => word(
                table
                    .get(usize::try_from(k).unwrap_or(usize::MAX))
                    .ok_or_else(|| CodecError::new("word list: a word not in its table"))?,
            ),
            Header::Text(Some(len)) => {
                input.text_into(len, "word", &mut text)?;
                word(&text);
            }
            other => return Err(CodecError::new(format!("word list: unexpected {other:?}"))),
        }
    }
    Ok(())
}

/// The split items (what [`Splitter::item`] gives) of the subjobs `indices` of the
/// splitter encoded in `bytes` ([`encode_splitter`]), decoding those alone (see
/// [`SplitIndex`]). An index the splitter gives no item (beyond its end, or no splitter)
/// is absent from the answer. For a store writing a few subjobs of a master of thousands.
pub fn split_items_of_encoded(
    bytes: &[u8],
    indices: &std::collections::BTreeSet<SubjobIndex>,
) -> Result<BTreeMap<SubjobIndex, Vec<Override>>> {
    let index = SplitIndex::build(bytes)?;
    let mut items = BTreeMap::new();
    for &i in indices {
        if let Some(item) = index.item(bytes, i)? {
            items.insert(i, item);
        }
    }
    Ok(items)
}

/// An encoded splitter ([`encode_splitter`]) read so that one subjob's split item can be
/// decoded alone: for an ArgSplitter, its word table and where each argument list starts
/// (one pass, allocating only those); other splitters, which are small, decoded whole.
#[derive(Debug, Clone)]
enum SplitIndex {
    None,
    Args {
        append: bool,
        table: Vec<String>,
        starts: Vec<u32>,
    },
    Decoded(Splitter),
}

impl SplitIndex {
    fn build(bytes: &[u8]) -> Result<SplitIndex> {
        let mut input = In::new(bytes);
        if input.is_null()? {
            input.end("splitter")?;
            return Ok(SplitIndex::None);
        }
        let n = input.array("splitter")?;
        if (input.uint("splitter kind")?, n) != (0, 4) {
            return Ok(match decode_splitter(bytes)? {
                Some(s) => SplitIndex::Decoded(s),
                None => SplitIndex::None,
            });
        }
        let append = input.bool("append")?;
        let table = input.texts("word table")?;
        let lists = input.array("word lists")?;
        let mut starts = Vec::with_capacity(lists.min(bytes.len()));
        for _ in 0..lists {
            starts.push(u32::try_from(input.dec.offset()).unwrap_or(u32::MAX));
            let m = input.array("word list")?;
            for _ in 0..m {
                match input.header()? {
                    Header::Positive(_) => {}
                    Header::Negative(r) if usize::try_from(r).is_ok_and(|r| r < table.len()) => {}
                    Header::Negative(_) => {
                        return Err(CodecError::new("word list: a word not in its table"));
                    }
                    Header::Text(Some(len)) => input.pass(len, "word")?,
                    other => {
                        return Err(CodecError::new(format!("word list: unexpected {other:?}")));
                    }
                }
            }
        }
        input.end("splitter")?;
        Ok(SplitIndex::Args {
            append,
            table,
            starts,
        })
    }

    /// The split item of subjob `index`; `bytes` are those the index was built from.
    fn item(&self, bytes: &[u8], index: SubjobIndex) -> Result<Option<Vec<Override>>> {
        match self {
            SplitIndex::None => Ok(None),
            SplitIndex::Decoded(s) => s
                .item(index as usize)
                .map_err(|e| CodecError::new(e.to_string())),
            SplitIndex::Args {
                append,
                table,
                starts,
            } => {
                let Some(&start) = starts.get(index as usize) else {
                    return Ok(None);
                };
                let rest = bytes
                    .get(start as usize..)
                    .ok_or_else(|| CodecError::new("word list: beyond the splitter"))?;
                let mut list = Vec::new();
                get_word_list(&mut In::new(rest), table, &mut |w| list.push(w.to_owned()))?;
                Ok(Some(vec![if *append {
                    Override::AppendArgs(list)
                } else {
                    Override::Args(list)
                }]))
            }
        }
    }
}

/// An exit code, or `None` for a null.
fn get_exit_code(i: &mut In<'_>) -> Result<Option<i32>> {
    if i.is_null()? {
        return Ok(None);
    }
    i32::try_from(i.int("exit code")?)
        .map(Some)
        .map_err(|_| CodecError::new("exit code out of range"))
}

/// The number a word spells, if it is written the one way that number is written.
fn canonical_number(w: &str) -> Option<u64> {
    let n: u64 = w.parse().ok()?;
    (n.to_string() == w).then_some(n)
}

/// `[status, times, submit_count, [id, native_state, exit_code, reason, actual_ce], outputs,
/// auto_resubmits]`, the last left out when 0.
fn put_run(out: &mut Out<'_>, run: &RunState) {
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

fn get_run(input: &mut In<'_>) -> Result<RunState> {
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

/// `[name, comment, [kind, exe, args, env], [backend kind, options], input_files,
/// output_files, splitter, auto_resubmit]`, the last (`[max_attempts,
/// max_failed_fraction]`) left out when the job has none.
/// The spec's fields, with `splitter` in the splitter's place.
fn put_spec(out: &mut Out<'_>, spec: &JobSpec, splitter: Option<&Splitter>) {
    out.array(if spec.auto_resubmit.is_some() { 8 } else { 7 });
    out.text(&spec.name);
    out.text(&spec.comment);
    match &spec.application {
        Application::Executable(e) => {
            out.array(4);
            out.uint(0);
            out.text(&e.exe);
            out.texts(e.args.iter().map(String::as_str));
            out.pairs(e.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    out.array(2);
    out.text(&spec.backend.kind);
    out.value(&Value::Table(spec.backend.options.clone()));
    let inputs: Vec<String> = spec
        .input_files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    out.texts(inputs.iter().map(String::as_str));
    out.texts(spec.output_files.iter().map(String::as_str));
    match (splitter, &spec.splitter) {
        (Some(s), _) => put_splitter(out, Some(s)),
        // Kept apart: say that there is one.
        (None, Some(_)) => out.bool(true),
        (None, None) => out.null(),
    }
    if let Some(policy) = &spec.auto_resubmit {
        out.array(2);
        out.uint(u64::from(policy.max_attempts));
        out.value(&Value::Float(policy.max_failed_fraction));
    }
}

fn put_splitter(out: &mut Out<'_>, splitter: Option<&Splitter>) {
    match splitter {
        None => out.null(),
        Some(Splitter::Args { args, append }) => {
            out.array(4);
            out.uint(0);
            out.bool(*append);
            put_word_lists(out, args);
        }
        Some(Splitter::Generic { attributes }) => {
            out.array(2);
            out.uint(1);
            out.array(attributes.len());
            for a in attributes {
                out.array(2);
                out.text(&a.path);
                out.value(&Value::List(a.values.clone()));
            }
        }
    }
}

fn get_splitter(i: &mut In<'_>) -> Result<Option<Splitter>> {
    Ok(if i.is_null()? {
        None
    } else {
        let n = i.array("splitter")?;
        match (i.uint("splitter kind")?, n) {
            (0, 4) => {
                let append = i.bool("append")?;
                let args = get_word_lists(i)?;
                Some(Splitter::Args { args, append })
            }
            (1, 2) => {
                let count = i.array("attributes")?;
                let mut attributes = Vec::with_capacity(count);
                for _ in 0..count {
                    if i.array("attribute")? != 2 {
                        return Err(CodecError::new("splitter attribute is not [path, values]"));
                    }
                    let path = i.text("attribute path")?;
                    let values = match i.value("attribute values", 0)? {
                        Value::List(v) => v,
                        _ => return Err(CodecError::new("splitter values: not a list")),
                    };
                    attributes.push(SplitAttribute { path, values });
                }
                Some(Splitter::Generic { attributes })
            }
            (k, n) => {
                return Err(CodecError::new(format!(
                    "unknown splitter kind {k} of {n} items"
                )));
            }
        }
    })
}

/// A spec, and whether its splitter is kept apart (`true` in its place).
fn get_spec(input: &mut In<'_>) -> Result<(JobSpec, bool)> {
    let mut f = Fields::open(input, "spec")?;
    let name = f.need("name")?.text("name")?;
    let comment = f.need("comment")?.text("comment")?;
    let i = f.need("application")?;
    let n = i.array("application")?;
    let kind = i.uint("application kind")?;
    if kind != 0 || n != 4 {
        return Err(CodecError::new(format!("unknown application kind {kind}")));
    }
    let application = Application::Executable(Executable {
        exe: i.text("exe")?,
        args: i.texts("args")?,
        env: i.pairs("env")?,
    });
    let i = f.need("backend")?;
    if i.array("backend")? != 2 {
        return Err(CodecError::new("spec: backend is not [kind, options]"));
    }
    let kind = i.text("backend kind")?;
    let options: Options = match i.value("backend options", 0)? {
        Value::Table(t) => t,
        _ => return Err(CodecError::new("backend options: not a table")),
    };
    let input_files = f
        .need("input files")?
        .texts("input files")?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let output_files = f.need("output files")?.texts("output files")?;
    let i = f.need("splitter")?;
    let (splitter, apart) = match i.header()? {
        Header::Simple(ciborium_ll::simple::TRUE) => (None, true),
        h => {
            i.dec.push(h);
            (get_splitter(i)?, false)
        }
    };
    let auto_resubmit = match f.next() {
        None => None,
        Some(i) => {
            if i.array("auto-resubmit policy")? != 2 {
                return Err(CodecError::new(
                    "spec: auto-resubmit policy is not [max_attempts, max_failed_fraction]",
                ));
            }
            let max_attempts = i.small("max_attempts")?;
            let max_failed_fraction = match i.value("max_failed_fraction", 0)? {
                Value::Float(x) => x,
                Value::Integer(n) => n as f64,
                _ => return Err(CodecError::new("max_failed_fraction: not a number")),
            };
            Some(AutoResubmit {
                max_attempts,
                max_failed_fraction,
            })
        }
    };
    f.close()?;
    Ok((
        JobSpec {
            name,
            comment,
            application,
            backend: BackendConfig { kind, options },
            input_files,
            output_files,
            splitter,
            auto_resubmit,
        },
        apart,
    ))
}

// ---------------------------------------------------------------------------------------
// Entries of a store's index of active units.
// ---------------------------------------------------------------------------------------

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
    let len = if since.is_some() {
        5
    } else if b.native_state.is_some() {
        4
    } else if b.id.is_some() {
        3
    } else {
        2
    };
    let mut out = Out::new(buf);
    out.array(len);
    out.uint(run.status.index() as u64);
    out.uint(u64::from(run.submit_count));
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

// ---------------------------------------------------------------------------------------
// Batches of subjobs, as the protocol carries them.
// ---------------------------------------------------------------------------------------

/// Byte strings kept one after the other, each under a subjob index, in index order.
#[derive(Debug, Clone, PartialEq, Default)]
struct Packed {
    indices: Vec<SubjobIndex>,
    /// Where each string ends in `bytes`.
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl Packed {
    fn start(&self, k: usize) -> usize {
        if k == 0 { 0 } else { self.ends[k - 1] as usize }
    }

    fn at(&self, k: usize) -> &[u8] {
        let end = (self.ends[k] as usize).min(self.bytes.len());
        &self.bytes[self.start(k).min(end)..end]
    }

    fn push(&mut self, index: SubjobIndex, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.indices.push(index);
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    fn get(&self, index: SubjobIndex) -> Option<&[u8]> {
        self.indices.binary_search(&index).ok().map(|k| self.at(k))
    }

    fn iter(&self) -> impl Iterator<Item = (SubjobIndex, &[u8])> {
        (0..self.indices.len()).map(|k| (self.indices[k], self.at(k)))
    }

    /// Puts `bytes` under `index`, replacing what was there or inserting it in order.
    fn put(&mut self, index: SubjobIndex, bytes: &[u8]) {
        let k = match self.indices.binary_search(&index) {
            Ok(k) => k,
            Err(k) if k == self.indices.len() => return self.push(index, bytes),
            Err(k) => {
                let at = self.start(k);
                self.indices.insert(k, index);
                self.ends.insert(k, u32::try_from(at).unwrap_or(u32::MAX));
                k
            }
        };
        let (start, end) = (self.start(k), self.ends[k] as usize);
        self.bytes.splice(start..end, bytes.iter().copied());
        let shift = bytes.len() as i64 - (end - start) as i64;
        for e in &mut self.ends[k..] {
            *e = u32::try_from(i64::from(*e) + shift).unwrap_or(u32::MAX);
        }
    }

    fn heap_bytes(&self) -> usize {
        self.indices.capacity() * 4 + self.ends.capacity() * 4 + self.bytes.capacity()
    }

    /// `indices` (delta-coded), lengths, then the bytes.
    fn encode(&self, out: &mut Out<'_>) {
        out.array(self.indices.len());
        let mut prev = 0i64;
        for &i in &self.indices {
            out.int(i64::from(i) - prev);
            prev = i64::from(i);
        }
        out.array(self.ends.len());
        let mut prev = 0u32;
        for &e in &self.ends {
            out.uint(u64::from(e.saturating_sub(prev)));
            prev = e;
        }
        out.bytes(&self.bytes);
    }

    fn decode(input: &mut In<'_>, what: &str) -> Result<Packed> {
        let n = input.array(what)?;
        let mut indices = Vec::with_capacity(n);
        let mut prev = 0i64;
        for _ in 0..n {
            prev = prev.saturating_add(input.int(what)?);
            let i = SubjobIndex::try_from(prev)
                .map_err(|_| CodecError::new(format!("{what}: index out of range")))?;
            if indices.last().is_some_and(|&last| last >= i) {
                return Err(CodecError::new(format!("{what}: indices out of order")));
            }
            indices.push(i);
        }
        if input.array(what)? != n {
            return Err(CodecError::new(format!(
                "{what}: as many lengths as indices expected"
            )));
        }
        let mut ends = Vec::with_capacity(n);
        let mut end = 0u32;
        for _ in 0..n {
            end = end.saturating_add(input.small(what)?);
            ends.push(end);
        }
        let bytes = input.bytes(what)?;
        if end as usize != bytes.len() {
            return Err(CodecError::new(format!("{what}: lengths do not add up")));
        }
        Ok(Packed {
            indices,
            ends,
            bytes,
        })
    }
}

/// Subjobs packed: a dictionary and each subjob's record against it. This is what
/// crosses the plugin boundary and what the cache holds: a store can answer with its
/// own dictionary and stored records without decoding any, and a reader decodes only
/// what it looks at (a status costs two CBOR headers).
#[derive(Debug, Clone, Default)]
pub struct SubjobBatch {
    dict: Dictionary,
    records: Packed,
    /// The master's splitter, encoded ([`encode_splitter`]), for records that leave their
    /// overrides out; decoded the first time such a record is read.
    splitter: Option<Vec<u8>>,
    decoded: std::sync::OnceLock<std::result::Result<SplitIndex, CodecError>>,
}

impl PartialEq for SubjobBatch {
    fn eq(&self, other: &Self) -> bool {
        self.dict == other.dict && self.records == other.records && self.splitter == other.splitter
    }
}

impl SubjobBatch {
    /// Packs subjobs with a dictionary made for them, in index order whatever their order
    /// in `subjobs`; of two with one index, the later is kept (as a store applies puts).
    pub fn pack(subjobs: &[Subjob]) -> SubjobBatch {
        let base = subjobs
            .iter()
            .filter_map(|sj| sj.run.times.iter().next().map(|(_, t)| t))
            .min()
            .unwrap_or(Timestamp(0));
        let mut batch = SubjobBatch::with_dictionary(Dictionary::new(base));
        let mut record = Vec::with_capacity(64);
        for sj in subjobs {
            record.clear();
            encode_subjob(sj, &mut batch.dict, None, &mut record);
            batch.records.put(sj.index, &record);
        }
        batch
    }

    /// An empty batch whose records will be encoded against `dict` (a store's own).
    pub fn with_dictionary(dict: Dictionary) -> SubjobBatch {
        SubjobBatch {
            dict,
            ..SubjobBatch::default()
        }
    }

    /// Gives the master's splitter, encoded by [`encode_splitter`] (as a store keeps it),
    /// for records that leave their overrides out. It is decoded only if one is read.
    pub fn set_splitter_bytes(&mut self, bytes: Vec<u8>) {
        self.splitter = Some(bytes);
        self.decoded = std::sync::OnceLock::new();
    }

    /// As [`SubjobBatch::set_splitter_bytes`], from the splitter itself.
    pub fn set_splitter(&mut self, splitter: Option<&Splitter>) {
        let mut bytes = Vec::new();
        encode_splitter(splitter, &mut bytes);
        self.set_splitter_bytes(bytes);
    }

    fn split_item(&self, index: SubjobIndex) -> Result<Option<Vec<Override>>> {
        let Some(bytes) = &self.splitter else {
            return Ok(None);
        };
        match self.decoded.get_or_init(|| SplitIndex::build(bytes)) {
            Err(e) => Err(CodecError::new(format!("the master's splitter: {e}"))),
            Ok(split) => split
                .item(bytes, index)
                .map_err(|e| CodecError::new(format!("the master's splitter: {e}"))),
        }
    }

    fn decode_one(&self, index: SubjobIndex, record: &[u8]) -> Result<Subjob> {
        decode_subjob_with(index, record, &self.dict, &mut || self.split_item(index))
    }

    /// Adds a record already encoded against this batch's dictionary, after the others.
    pub fn push_record(&mut self, index: SubjobIndex, record: &[u8]) {
        self.records.push(index, record);
    }

    /// Puts a subjob in (replacing the one with its index), encoded against this batch's
    /// dictionary, leaving out overrides equal to its split item.
    pub fn put(&mut self, sj: &Subjob) {
        let item = self.split_item(sj.index).ok().flatten();
        let mut record = Vec::with_capacity(64);
        encode_subjob(sj, &mut self.dict, item.as_deref(), &mut record);
        self.records.put(sj.index, &record);
    }

    pub fn len(&self) -> usize {
        self.records.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.indices.is_empty()
    }

    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    /// The subjob indices held, in order.
    pub fn indices(&self) -> &[SubjobIndex] {
        &self.records.indices
    }

    /// Each subjob's index and record.
    pub fn records(&self) -> impl Iterator<Item = (SubjobIndex, &[u8])> {
        self.records.iter()
    }

    /// The status of one subjob, without decoding the rest of its record.
    pub fn status(&self, index: SubjobIndex) -> Option<Result<Status>> {
        self.records.get(index).map(record_status)
    }

    /// Every subjob's index and status, decoding nothing else.
    pub fn statuses(&self) -> impl Iterator<Item = (SubjobIndex, Result<Status>)> + '_ {
        self.records().map(|(i, r)| (i, record_status(r)))
    }

    /// Decodes one subjob.
    pub fn get(&self, index: SubjobIndex) -> Option<Result<Subjob>> {
        self.records.get(index).map(|r| self.decode_one(index, r))
    }

    /// Decodes every subjob.
    pub fn unpack(&self) -> std::result::Result<Vec<Subjob>, (SubjobIndex, CodecError)> {
        self.records()
            .map(|(i, r)| self.decode_one(i, r).map_err(|e| (i, e)))
            .collect()
    }

    /// About how many bytes of memory it holds.
    pub fn heap_bytes(&self) -> usize {
        let splitter = self.splitter.as_ref().map_or(0, |b| b.capacity() * 4);
        self.records.heap_bytes()
            + splitter
            + self
                .dict
                .strings
                .iter()
                .map(|s| s.len() * 2 + 64)
                .sum::<usize>()
    }

    /// `[dictionary, records (indices, lengths, bytes), splitter or null]`
    pub fn encode(&self) -> Vec<u8> {
        let dict = self.dict.encode();
        let splitter = self.splitter.as_deref().unwrap_or(&[]);
        let mut buf = Vec::with_capacity(
            dict.len() + self.records.bytes.len() + splitter.len() + self.len() * 4 + 32,
        );
        let mut out = Out::new(&mut buf);
        out.array(3);
        out.bytes(&dict);
        out.array(3);
        self.records.encode(&mut out);
        match &self.splitter {
            Some(b) => out.bytes(b),
            None => out.null(),
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<SubjobBatch> {
        let mut input = In::new(bytes);
        if input.array("subjob batch")? != 3 {
            return Err(CodecError::new(
                "subjob batch: not [dictionary, records, splitter]",
            ));
        }
        let dict = Dictionary::decode(&input.bytes("dictionary")?)?;
        if input.array("records")? != 3 {
            return Err(CodecError::new(
                "subjob batch: records are not [indices, lengths, bytes]",
            ));
        }
        let records = Packed::decode(&mut input, "records")?;
        let splitter = if input.is_null()? {
            None
        } else {
            Some(input.bytes("splitter")?)
        };
        input.end("subjob batch")?;
        Ok(SubjobBatch {
            dict,
            records,
            splitter,
            decoded: std::sync::OnceLock::new(),
        })
    }
}

/// Serde for `Vec<Subjob>` as a packed [`SubjobBatch`] (a CBOR byte string), for the
/// protocol: `#[serde(with = "ganga_core::compact::packed_subjobs")]`.
pub mod packed_subjobs {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SubjobBatch;
    use crate::Subjob;

    pub fn serialize<S: Serializer>(subjobs: &[Subjob], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&SubjobBatch::pack(subjobs).encode())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Subjob>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let batch = SubjobBatch::decode(&bytes).map_err(D::Error::custom)?;
        batch
            .unpack()
            .map_err(|(i, e)| D::Error::custom(format!("subjob {i}: {e}")))
    }
}

impl serde::Serialize for SubjobBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for SubjobBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = <serde_bytes::ByteBuf as serde::Deserialize>::deserialize(d)?;
        SubjobBatch::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Serde for a [`Job`] as its compact record (a CBOR byte string), for the protocol.
pub mod packed_job {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{decode_job, encode_job};
    use crate::Job;

    /// The id travels in front of the record, which does not hold it.
    pub fn serialize<S: Serializer>(job: &Job, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = job.id.to_be_bytes().to_vec();
        encode_job(job, &mut buf);
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Job, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let (id, record) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| D::Error::custom("a job record without its id"))?;
        decode_job(u64::from_be_bytes(*id), record).map_err(D::Error::custom)
    }
}

/// Serde for a [`crate::RunUpdate`] as a compact record `[job, revision, run, counts]`.
pub mod packed_run {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{In, Out, get_counts, get_run, put_counts, put_run};
    use crate::RunUpdate;

    pub fn serialize<S: Serializer>(u: &RunUpdate, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(96);
        let mut out = Out::new(&mut buf);
        out.array(4);
        out.uint(u.job);
        out.uint(u.revision);
        put_run(&mut out, &u.run);
        put_counts(&mut out, &u.subjobs);
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunUpdate, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let mut input = In::new(&bytes);
        (|| {
            if input.array("run update")? != 4 {
                return Err(super::CodecError::new("run update: not 4 items"));
            }
            let job = input.uint("job")?;
            let revision = input.uint("revision")?;
            let run = get_run(&mut input)?;
            let subjobs = get_counts(&mut input)?;
            input.end("run update")?;
            Ok(RunUpdate {
                job,
                revision,
                run,
                subjobs,
            })
        })()
        .map_err(D::Error::custom)
    }
}

/// Serde for an optional [`Job`], as [`packed_job`].
pub mod packed_opt_job {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Job;

    #[derive(Serialize, Deserialize)]
    struct Packed(#[serde(with = "super::packed_job")] Job);

    pub fn serialize<S: Serializer>(job: &Option<Job>, s: S) -> Result<S::Ok, S::Error> {
        job.as_ref().map(|j| Packed(j.clone())).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Job>, D::Error> {
        Ok(Option::<Packed>::deserialize(d)?.map(|p| p.0))
    }
}

/// Serde for a listing of summaries, each as its compact record, for the protocol:
/// `[id, record]` for a readable one and `[id, error]` for one that is not.
pub mod packed_summaries {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{In, Out, decode_summary, encode_summary};
    use crate::SummaryEntry;

    pub fn serialize<S: Serializer>(entries: &[SummaryEntry], s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(entries.len() * 64);
        let mut record = Vec::with_capacity(128);
        let mut out = Out::new(&mut buf);
        out.array(entries.len());
        for e in entries {
            out.array(2);
            match e {
                SummaryEntry::Readable(summary) => {
                    out.uint(summary.id);
                    record.clear();
                    encode_summary(summary, &mut record);
                    out.bytes(&record);
                }
                SummaryEntry::Unreadable { id, error } => {
                    out.uint(*id);
                    out.text(error);
                }
            }
        }
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SummaryEntry>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let mut input = In::new(&bytes);
        let n = input.array("summaries").map_err(D::Error::custom)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = (|| {
                if input.array("summary entry")? != 2 {
                    return Err(super::CodecError::new("summary entry: not [id, record]"));
                }
                let id = input.uint("summary id")?;
                Ok(match input.header()? {
                    ciborium_ll::Header::Bytes(Some(len)) => {
                        input.dec.push(ciborium_ll::Header::Bytes(Some(len)));
                        let record = input.bytes("summary")?;
                        // A summary that does not decode is listed as unreadable.
                        match decode_summary(id, &record) {
                            Ok(s) => SummaryEntry::Readable(s),
                            Err(e) => SummaryEntry::Unreadable {
                                id,
                                error: e.to_string(),
                            },
                        }
                    }
                    ciborium_ll::Header::Text(Some(len)) => SummaryEntry::Unreadable {
                        id,
                        error: input.text_body(len, "summary error")?,
                    },
                    other => {
                        return Err(super::CodecError::new(format!(
                            "summary entry: unexpected {other:?}"
                        )));
                    }
                })
            })()
            .map_err(D::Error::custom)?;
            entries.push(entry);
        }
        input.end("summaries").map_err(D::Error::custom)?;
        Ok(entries)
    }
}

/// Serde for a list of [`crate::UnitUpdate`]s as one compact record (a CBOR byte
/// string), for the protocol: a monitor's cycle sends a hundred thousand of them, which
/// as serde maps with field names cost more to encode and decode than the store takes
/// to apply them. Each update is `[job, subjob or null, seen, run, status or null, at,
/// new_run, id, native_state, exit_code, reason, actual_ce, outputs or null]`.
pub mod packed_unit_updates {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{CodecError, In, Out, get_exit_code, get_opt_text, put_opt_text, status};
    use crate::{JobRef, Timestamp, UnitChange, UnitUpdate};

    pub fn encode(updates: &[UnitUpdate]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(updates.len() * 48);
        let mut out = Out::new(&mut buf);
        out.array(updates.len());
        for u in updates {
            let c = &u.change;
            out.array(13);
            out.uint(u.unit.job);
            match u.unit.subjob {
                Some(i) => out.uint(u64::from(i)),
                None => out.null(),
            }
            out.uint(u.seen.index() as u64);
            out.uint(u64::from(u.run));
            match c.status {
                Some((s, at)) => {
                    out.uint(s.index() as u64);
                    out.int(at.as_millis());
                }
                None => {
                    out.null();
                    out.null();
                }
            }
            out.bool(c.new_run);
            put_opt_text(&mut out, &c.id);
            put_opt_text(&mut out, &c.native_state);
            match c.exit_code {
                Some(code) => out.int(i64::from(code)),
                None => out.null(),
            }
            put_opt_text(&mut out, &c.reason);
            put_opt_text(&mut out, &c.actual_ce);
            match &c.outputs {
                Some(outputs) => out.texts(outputs.iter().map(String::as_str)),
                None => out.null(),
            }
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Vec<UnitUpdate>, CodecError> {
        let mut input = In::new(bytes);
        let n = input.array("unit updates")?;
        let mut updates = Vec::with_capacity(n);
        for _ in 0..n {
            if input.array("unit update")? != 13 {
                return Err(CodecError::new("unit update: not 13 items"));
            }
            let job = input.uint("job")?;
            let subjob = if input.is_null()? {
                None
            } else {
                Some(input.small("subjob index")?)
            };
            let seen = status(input.uint("seen status")?)?;
            let run = input.small("run")?;
            let to = if input.is_null()? {
                None
            } else {
                Some(status(input.uint("status")?)?)
            };
            let at = if input.is_null()? {
                None
            } else {
                Some(Timestamp(input.int("time")?))
            };
            let status = match (to, at) {
                (Some(s), Some(at)) => Some((s, at)),
                (None, None) => None,
                _ => return Err(CodecError::new("unit update: a status without its time")),
            };
            let new_run = input.bool("new run")?;
            let id = get_opt_text(&mut input, "backend id")?;
            let native_state = get_opt_text(&mut input, "native state")?;
            let exit_code = get_exit_code(&mut input)?;
            let reason = get_opt_text(&mut input, "reason")?;
            let actual_ce = get_opt_text(&mut input, "actual CE")?;
            let outputs = if input.is_null()? {
                None
            } else {
                Some(input.texts("outputs")?)
            };
            updates.push(UnitUpdate {
                unit: JobRef { job, subjob },
                seen,
                run,
                change: UnitChange {
                    status,
                    new_run,
                    id,
                    native_state,
                    exit_code,
                    reason,
                    actual_ce,
                    outputs,
                },
            });
        }
        input.end("unit updates")?;
        Ok(updates)
    }

    pub fn serialize<S: Serializer>(updates: &[UnitUpdate], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&encode(updates))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<UnitUpdate>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        decode(&bytes).map_err(D::Error::custom)
    }
}
