use ciborium_ll::Decoder;
use ciborium_ll::Encoder;
use ciborium_ll::Header;
use std::collections::BTreeMap;

use ganga_core::Value;

/// A record that cannot be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

impl CodecError {
    pub(crate) fn new(what: impl Into<String>) -> CodecError {
        CodecError(what.into())
    }
}

pub(crate) type Result<T> = std::result::Result<T, CodecError>;

pub(crate) struct Out<'a>(pub(crate) Encoder<&'a mut Vec<u8>>);

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Out<'a> {
        Out(Encoder::from(buf))
    }

    pub(crate) fn header(&mut self, h: Header) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.push(h).expect("writing to a Vec never fails");
    }

    pub(crate) fn array(&mut self, len: usize) {
        self.header(Header::Array(Some(len)));
    }

    pub(crate) fn uint(&mut self, n: u64) {
        self.header(Header::Positive(n));
    }

    pub(crate) fn int(&mut self, n: i64) {
        if n >= 0 {
            self.header(Header::Positive(n as u64));
        } else {
            self.header(Header::Negative(!(n as u64)));
        }
    }

    pub(crate) fn null(&mut self) {
        self.header(Header::Simple(ciborium_ll::simple::NULL));
    }

    pub(crate) fn bool(&mut self, b: bool) {
        self.header(Header::Simple(if b {
            ciborium_ll::simple::TRUE
        } else {
            ciborium_ll::simple::FALSE
        }));
    }

    pub(crate) fn text(&mut self, s: &str) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.text(s, None).expect("writing to a Vec never fails");
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        // Invariant: writing into a Vec<u8> cannot fail.
        self.0.bytes(b, None).expect("writing to a Vec never fails");
    }

    pub(crate) fn value(&mut self, v: &Value) {
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

    pub(crate) fn texts<'s>(&mut self, items: impl ExactSizeIterator<Item = &'s str>) {
        self.array(items.len());
        for s in items {
            self.text(s);
        }
    }

    /// A table of strings as a flat array `[k1, v1, k2, v2, ...]`.
    pub(crate) fn pairs<'s>(&mut self, map: impl ExactSizeIterator<Item = (&'s str, &'s str)>) {
        self.array(map.len() * 2);
        for (k, v) in map {
            self.text(k);
            self.text(v);
        }
    }
}

/// Reads CBOR items from a byte slice, checking every length against what is left.
pub(crate) struct In<'a> {
    pub(crate) dec: Decoder<&'a [u8]>,
    pub(crate) len: usize,
}

impl<'a> In<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> In<'a> {
        In {
            dec: Decoder::from(bytes),
            len: bytes.len(),
        }
    }

    pub(crate) fn left(&mut self) -> usize {
        self.len.saturating_sub(self.dec.offset())
    }

    pub(crate) fn header(&mut self) -> Result<Header> {
        self.dec
            .pull()
            .map_err(|e| CodecError::new(format!("malformed CBOR: {e:?}")))
    }

    pub(crate) fn array(&mut self, what: &str) -> Result<usize> {
        match self.header()? {
            Header::Array(Some(n)) if n <= self.left() => Ok(n),
            other => Err(CodecError::new(format!(
                "{what}: expected an array, found {other:?}"
            ))),
        }
    }

    pub(crate) fn uint(&mut self, what: &str) -> Result<u64> {
        match self.header()? {
            Header::Positive(n) => Ok(n),
            other => Err(CodecError::new(format!(
                "{what}: expected a number, found {other:?}"
            ))),
        }
    }

    pub(crate) fn small(&mut self, what: &str) -> Result<u32> {
        u32::try_from(self.uint(what)?)
            .map_err(|_| CodecError::new(format!("{what}: number too large")))
    }

    pub(crate) fn int(&mut self, what: &str) -> Result<i64> {
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

    pub(crate) fn text_body(&mut self, len: usize, what: &str) -> Result<String> {
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
    pub(crate) fn text_into(&mut self, len: usize, what: &str, buf: &mut String) -> Result<()> {
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

    pub(crate) fn text(&mut self, what: &str) -> Result<String> {
        match self.header()? {
            Header::Text(Some(len)) => self.text_body(len, what),
            other => Err(CodecError::new(format!(
                "{what}: expected text, found {other:?}"
            ))),
        }
    }

    pub(crate) fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
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
    pub(crate) fn is_null(&mut self) -> Result<bool> {
        match self.header()? {
            Header::Simple(ciborium_ll::simple::NULL) => Ok(true),
            h => {
                self.dec.push(h);
                Ok(false)
            }
        }
    }

    pub(crate) fn bool(&mut self, what: &str) -> Result<bool> {
        match self.header()? {
            Header::Simple(ciborium_ll::simple::TRUE) => Ok(true),
            Header::Simple(ciborium_ll::simple::FALSE) => Ok(false),
            other => Err(CodecError::new(format!(
                "{what}: expected a boolean, found {other:?}"
            ))),
        }
    }

    pub(crate) fn texts(&mut self, what: &str) -> Result<Vec<String>> {
        let n = self.array(what)?;
        (0..n).map(|_| self.text(what)).collect()
    }

    pub(crate) fn pairs(&mut self, what: &str) -> Result<BTreeMap<String, String>> {
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

    pub(crate) fn value(&mut self, what: &str, depth: usize) -> Result<Value> {
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
    pub(crate) fn pass(&mut self, len: usize, what: &str) -> Result<()> {
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
    pub(crate) fn skip(&mut self, depth: usize) -> Result<()> {
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
    pub(crate) fn end(&mut self, what: &str) -> Result<()> {
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
pub(crate) struct Fields<'i, 'a> {
    pub(crate) input: &'i mut In<'a>,
    pub(crate) left: usize,
}

impl<'i, 'a> Fields<'i, 'a> {
    pub(crate) fn open(input: &'i mut In<'a>, what: &str) -> Result<Fields<'i, 'a>> {
        let left = input.array(what)?;
        Ok(Fields { input, left })
    }

    /// The next field, or `None` if the record ends before it.
    pub(crate) fn next(&mut self) -> Option<&mut In<'a>> {
        if self.left == 0 {
            None
        } else {
            self.left -= 1;
            Some(self.input)
        }
    }

    /// The next field, which must be there.
    pub(crate) fn need(&mut self, what: &str) -> Result<&mut In<'a>> {
        if self.left == 0 {
            Err(CodecError::new(format!("no {what}")))
        } else {
            self.left -= 1;
            Ok(self.input)
        }
    }

    pub(crate) fn close(self) -> Result<()> {
        for _ in 0..self.left {
            self.input.skip(0)?;
        }
        Ok(())
    }
}

/// How many items a record has whose first `required` items are always written and whose
/// optional items after them (`present`, in order) are left out while empty at the end.
pub(crate) fn items_len(required: usize, present: &[bool]) -> usize {
    required + present.iter().rposition(|&p| p).map_or(0, |i| i + 1)
}
