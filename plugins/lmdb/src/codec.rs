//! Records of format version 2: the compact encoding of `ganga_core::compact` (CBOR
//! arrays without field names; a subjob as what differs from its master, against its
//! job's [`Dictionary`] and its master's split item). This module only adds what the
//! store needs around it: owned buffers, the split items, and errors worded for
//! `Corrupt`, `Unreadable` and `check`.

use std::ops::Range;

use ganga_core::compact::{self, CodecError, Dictionary};
use ganga_core::{Job, JobId, JobSummary, Override, Splitter, Subjob, SubjobIndex};

/// The format version this code writes, and the highest it reads.
pub(crate) const FORMAT_VERSION: u32 = 2;

pub(crate) fn encode_job(job: &Job) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    compact::encode_job(job, &mut buf);
    buf
}

pub(crate) fn decode_job(id: JobId, bytes: &[u8]) -> Result<Job, String> {
    compact::decode_job(id, bytes).map_err(|e| unreadable(bytes, &e))
}

pub(crate) fn encode_summary(summary: &JobSummary) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    compact::encode_summary(summary, &mut buf);
    buf
}

pub(crate) fn decode_summary(id: JobId, bytes: &[u8]) -> Result<JobSummary, String> {
    compact::decode_summary(id, bytes).map_err(|e| unreadable(bytes, &e))
}

pub(crate) fn decode_dictionary(bytes: &[u8]) -> Result<Dictionary, String> {
    Dictionary::decode(bytes).map_err(|e| unreadable(bytes, &e))
}

/// Decodes a subjob record against its job's dictionary and the split item it was
/// written against (see [`split_item`]).
pub(crate) fn decode_subjob(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
    split_item: Option<&[Override]>,
) -> Result<Subjob, String> {
    compact::decode_subjob(index, bytes, dict, split_item).map_err(|e| unreadable(bytes, &e))
}

/// What a master's splitter gives subjob `index`: the overrides a subjob record leaves
/// out when they are the same (it says `true` instead). Every record of a job is written
/// against its master's splitter as it is stored in the same transaction, and a commit
/// that changes the splitter first rewrites the records whose item changes (`commit`),
/// so a record is always read against the item it was written with.
pub(crate) fn split_item(splitter: Option<&Splitter>, index: SubjobIndex) -> Option<Vec<Override>> {
    splitter?
        .item(usize::try_from(index).ok()?)
        .ok()
        .flatten()
        .filter(|item| !item.is_empty())
}

/// The split items of the subjobs in `range` (clamped to the splitter's length), for a
/// `SubjobBatch`.
pub(crate) fn split_items(
    splitter: Option<&Splitter>,
    range: Range<SubjobIndex>,
) -> Vec<(SubjobIndex, Vec<Override>)> {
    let Some(splitter) = splitter else {
        return Vec::new();
    };
    let end = u32::try_from(split_len(splitter)).unwrap_or(u32::MAX);
    compact::split_items(Some(splitter), range.start..range.end.min(end))
}

/// How many subjobs a splitter gives items to (past that, none).
pub(crate) fn split_len(splitter: &Splitter) -> usize {
    match splitter {
        Splitter::Args { args, .. } => args.len(),
        // Without attributes every item is empty, which no record leaves out.
        Splitter::Generic { attributes } => {
            attributes.iter().map(|a| a.values.len()).min().unwrap_or(0)
        }
    }
}

/// Why a record does not decode, saying what kind of record was expected.
pub(crate) fn unreadable(bytes: &[u8], error: &CodecError) -> String {
    format!(
        "compact CBOR record of {} bytes does not decode: {error}",
        bytes.len()
    )
}
