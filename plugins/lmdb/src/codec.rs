//! Records of format version 2: the compact encoding of `ganga_records` (CBOR
//! arrays without field names; a job kept in three parts, its state, its spec and its
//! splitter; a subjob as what differs from its master, against its job's [`Dictionary`]
//! and its master's split item). This module only adds what the store needs around it:
//! owned buffers, the split items, the value of an `active` entry, and errors worded for
//! `Corrupt`, `Unreadable` and `check`.

use std::collections::BTreeMap;

use ganga_core::{
    Job, JobId, JobSpec, JobSummary, Override, RunState, Splitter, Status, StatusCounts, Subjob,
    SubjobIndex,
};
use ganga_records::{CodecError, Dictionary, JobState};

/// The format version this code writes, and the highest it reads.
pub(crate) const FORMAT_VERSION: u32 = 3;

/// A job's state record (table `jobs`): `[revision, run, subjob counts, metadata]`.
pub(crate) fn encode_state(job: &Job) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    ganga_records::encode_state(job, &mut buf);
    buf
}

/// A job's state from its parts (a run update).
pub(crate) fn encode_state_parts(
    revision: u64,
    run: &RunState,
    subjobs: &StatusCounts,
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    ganga_records::encode_state_parts(revision, run, subjobs, metadata, &mut buf);
    buf
}

pub(crate) fn decode_state(bytes: &[u8]) -> Result<JobState, String> {
    ganga_records::decode_state(bytes).map_err(|e| unreadable(bytes, &e))
}

/// A job's spec without its splitter (table `specs`).
pub(crate) fn encode_spec(spec: &JobSpec) -> Vec<u8> {
    let mut buf = Vec::with_capacity(192);
    ganga_records::encode_spec(spec, &mut buf);
    buf
}

pub(crate) fn decode_spec(bytes: &[u8]) -> Result<JobSpec, String> {
    ganga_records::decode_spec(bytes).map_err(|e| unreadable(bytes, &e))
}

/// A job's splitter (table `splitters`), `None` for a job without one (it has no entry).
pub(crate) fn encode_splitter(splitter: Option<&Splitter>) -> Option<Vec<u8>> {
    let splitter = splitter?;
    let mut buf = Vec::with_capacity(256);
    ganga_records::encode_splitter(Some(splitter), &mut buf);
    Some(buf)
}

pub(crate) fn decode_splitter(bytes: &[u8]) -> Result<Option<Splitter>, String> {
    ganga_records::decode_splitter(bytes).map_err(|e| unreadable(bytes, &e))
}

pub(crate) fn encode_summary(summary: &JobSummary) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    ganga_records::encode_summary(summary, &mut buf);
    buf
}

pub(crate) fn decode_summary(id: JobId, bytes: &[u8]) -> Result<JobSummary, String> {
    ganga_records::decode_summary(id, bytes).map_err(|e| unreadable(bytes, &e))
}

/// A summary brought up to date with a job's new run state and counters, without its
/// spec: what `JobSummary::of` takes from them.
pub(crate) fn summary_with_run(
    mut summary: JobSummary,
    run: &RunState,
    subjobs: &StatusCounts,
) -> JobSummary {
    summary.status = run.status;
    summary.subjobs = subjobs.clone();
    summary.exit_code = run.backend.exit_code;
    summary.created = run.times.get(Status::New);
    summary.updated = run.times.latest();
    summary
}

pub(crate) fn decode_dictionary(bytes: &[u8]) -> Result<Dictionary, String> {
    Dictionary::decode(bytes).map_err(|e| unreadable(bytes, &e))
}

/// A job's record in table `dicts`: its dictionary and which subjob indices it has
/// records for (`None` in a record of format 2).
pub(crate) fn decode_dict_record(
    bytes: &[u8],
) -> Result<(Dictionary, Option<crate::indices::Indices>), String> {
    Dictionary::decode_with_indices(bytes)
        .map(|(d, r)| (d, r.map(crate::indices::Indices::from_ranges)))
        .map_err(|e| unreadable(bytes, &e))
}

pub(crate) fn encode_dict_record(dict: &Dictionary, indices: &crate::indices::Indices) -> Vec<u8> {
    dict.encode_with_indices(indices.ranges())
}

/// Decodes a subjob record against its job's dictionary and the split item it was
/// written against (see [`split_item`]).
pub(crate) fn decode_subjob(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
    split_item: Option<&[Override]>,
) -> Result<Subjob, String> {
    ganga_records::decode_subjob(index, bytes, dict, split_item).map_err(|e| unreadable(bytes, &e))
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

/// The value of an `active` entry: the status byte, then the job's revision big-endian
/// without its leading zero bytes (at least one byte): 2 to 9 bytes.
pub(crate) fn encode_active(status: Status, revision: u64) -> Vec<u8> {
    let bytes = revision.to_be_bytes();
    let skip = (revision.leading_zeros() / 8).min(7) as usize;
    let mut value = Vec::with_capacity(1 + 8 - skip);
    value.push(status as u8);
    value.extend_from_slice(&bytes[skip..]);
    value
}

/// The status and revision of an `active` entry, `None` if it is not one.
pub(crate) fn decode_active(value: &[u8]) -> Option<(Status, u64)> {
    let (status, revision) = value.split_first()?;
    if revision.is_empty() || revision.len() > 8 {
        return None;
    }
    let status = Status::from_index(usize::from(*status))?;
    Some((
        status,
        revision.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    ))
}

/// Why a record does not decode, saying what kind of record was expected.
pub(crate) fn unreadable(bytes: &[u8], error: &CodecError) -> String {
    format!(
        "compact CBOR record of {} bytes does not decode: {error}",
        bytes.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_values_are_a_status_byte_and_a_short_revision() {
        for (revision, len) in [(0, 2), (1, 2), (255, 2), (256, 3), (u64::MAX, 9)] {
            let value = encode_active(Status::Running, revision);
            assert_eq!(value.len(), len, "revision {revision}");
            assert_eq!(value[0], Status::Running as u8);
            assert_eq!(decode_active(&value), Some((Status::Running, revision)));
        }
        assert_eq!(decode_active(&[Status::Running as u8]), None);
        assert_eq!(decode_active(&[]), None);
        assert_eq!(decode_active(&[Status::Running as u8; 10]), None);
        assert_eq!(decode_active(&[200, 1]), None);
    }

    proptest::proptest! {
        #[test]
        fn active_values_of_any_bytes_decode_or_are_refused(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)
        ) {
            if let Some((status, revision)) = decode_active(&value) {
                proptest::prop_assert_eq!(decode_active(&encode_active(status, revision)), Some((status, revision)));
            }
        }
    }
}
