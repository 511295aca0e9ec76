use std::collections::HashMap;

use ganga_core::{SubjobIndex, Timestamp};

use crate::cbor::{CodecError, Fields, In, Out, Result};

/// What the subjob records of one job share: a base time that every time is a delta
/// from, and strings referred to by number. It only grows, and its base never changes.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    pub(crate) base: i64,
    pub(crate) strings: Vec<String>,
    pub(crate) index: HashMap<String, u32>,
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

    pub(crate) fn lookup(&self, i: u32, what: &str) -> Result<&str> {
        self.get(i).ok_or_else(|| {
            CodecError::new(format!(
                "{what}: string {i} is not in the job's dictionary of {}",
                self.strings.len()
            ))
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_parts(None)
    }

    /// The dictionary as a store keeps it, with which subjob indices the job has records
    /// for, as inclusive ranges (sorted, apart): `[base, [strings…], [first, last, …]]`.
    /// Readers of the plain dictionary skip the ranges.
    pub fn encode_with_indices(&self, ranges: &[(SubjobIndex, SubjobIndex)]) -> Vec<u8> {
        self.encode_parts(Some(ranges))
    }

    /// `[base, [strings…]]`, and the ranges of indices as a third item if given.
    fn encode_parts(&self, ranges: Option<&[(SubjobIndex, SubjobIndex)]>) -> Vec<u8> {
        let ranges_len = ranges.map_or(0, <[_]>::len);
        let mut buf = Vec::with_capacity(
            16 + usize::from(ranges.is_some()) * 8
                + ranges_len * 10
                + self.strings.iter().map(|s| s.len() + 2).sum::<usize>(),
        );
        let mut out = Out::new(&mut buf);
        out.array(if ranges.is_some() { 3 } else { 2 });
        out.int(self.base);
        out.texts(self.strings.iter().map(String::as_str));
        if let Some(ranges) = ranges {
            out.array(ranges.len() * 2);
            for &(first, last) in ranges {
                out.uint(u64::from(first));
                out.uint(u64::from(last));
            }
        }
        buf
    }

    /// A dictionary written by [`Dictionary::encode_with_indices`], and its ranges of
    /// indices (`None` if it has none: written by [`Dictionary::encode`]).
    #[allow(clippy::type_complexity)]
    pub fn decode_with_indices(
        bytes: &[u8],
    ) -> Result<(Dictionary, Option<Vec<(SubjobIndex, SubjobIndex)>>)> {
        Dictionary::decode_parts(bytes, |f| f.next().map(get_ranges).transpose())
    }

    pub fn decode(bytes: &[u8]) -> Result<Dictionary> {
        // Trailing items (the ranges of indices) are skipped unread.
        Dictionary::decode_parts(bytes, |_| Ok(())).map(|(dict, ())| dict)
    }

    /// The base and strings of a dictionary record, and what `rest` reads of the items
    /// after them (the items it leaves are skipped).
    fn decode_parts<T>(
        bytes: &[u8],
        rest: impl FnOnce(&mut Fields<'_, '_>) -> Result<T>,
    ) -> Result<(Dictionary, T)> {
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
        let rest = rest(&mut f)?;
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
            rest,
        ))
    }
}

/// The ranges of subjob indices of a dictionary record: `[first, last, …]`, sorted, apart.
fn get_ranges(i: &mut In<'_>) -> Result<Vec<(SubjobIndex, SubjobIndex)>> {
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
    Ok(ranges)
}
