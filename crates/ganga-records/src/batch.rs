use ganga_core::{Override, Splitter, Status, Subjob, SubjobIndex, Timestamp};

use crate::cbor::{CodecError, In, Out, Result};
use crate::dictionary::Dictionary;
use crate::job::encode_splitter;
use crate::spec::SplitIndex;
use crate::subjob::{decode_subjob_with, encode_subjob, record_status};

/// Byte strings kept one after the other, each under a subjob index, in index order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Packed {
    pub(crate) indices: Vec<SubjobIndex>,
    /// Where each string ends in `bytes`.
    pub(crate) ends: Vec<u32>,
    pub(crate) bytes: Vec<u8>,
}

impl Packed {
    pub(crate) fn start(&self, k: usize) -> usize {
        if k == 0 { 0 } else { self.ends[k - 1] as usize }
    }

    pub(crate) fn at(&self, k: usize) -> &[u8] {
        let end = (self.ends[k] as usize).min(self.bytes.len());
        &self.bytes[self.start(k).min(end)..end]
    }

    pub(crate) fn push(&mut self, index: SubjobIndex, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.indices.push(index);
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    pub(crate) fn get(&self, index: SubjobIndex) -> Option<&[u8]> {
        self.indices.binary_search(&index).ok().map(|k| self.at(k))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SubjobIndex, &[u8])> {
        (0..self.indices.len()).map(|k| (self.indices[k], self.at(k)))
    }

    /// Puts `bytes` under `index`, replacing what was there or inserting it in order.
    pub(crate) fn put(&mut self, index: SubjobIndex, bytes: &[u8]) {
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

    pub(crate) fn heap_bytes(&self) -> usize {
        self.indices.capacity() * 4 + self.ends.capacity() * 4 + self.bytes.capacity()
    }

    /// `indices` (delta-coded), lengths, then the bytes.
    pub(crate) fn encode(&self, out: &mut Out<'_>) {
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

    pub(crate) fn decode(input: &mut In<'_>, what: &str) -> Result<Packed> {
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
    pub(crate) dict: Dictionary,
    pub(crate) records: Packed,
    /// The master's splitter, encoded ([`encode_splitter`]), for records that leave their
    /// overrides out; decoded the first time such a record is read.
    pub(crate) splitter: Option<Vec<u8>>,
    pub(crate) decoded: std::sync::OnceLock<std::result::Result<SplitIndex, CodecError>>,
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

    pub(crate) fn split_item(&self, index: SubjobIndex) -> Result<Option<Vec<Override>>> {
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

    pub(crate) fn decode_one(&self, index: SubjobIndex, record: &[u8]) -> Result<Subjob> {
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
