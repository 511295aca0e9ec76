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
