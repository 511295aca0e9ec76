//! Records of format version 2: the compact encoding of `ganga_core::compact` (CBOR
//! arrays without field names; a subjob as what differs from its master, against its
//! job's [`Dictionary`]). This module only adds what the store needs around it: owned
//! buffers, and errors worded for `Corrupt`, `Unreadable` and `check`.

use ganga_core::compact::{self, CodecError, Dictionary};
use ganga_core::{Job, JobId, JobSummary, Subjob, SubjobIndex};

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

pub(crate) fn decode_subjob(
    index: SubjobIndex,
    bytes: &[u8],
    dict: &Dictionary,
) -> Result<Subjob, String> {
    compact::decode_subjob(index, bytes, dict, None).map_err(|e| unreadable(bytes, &e))
}

/// Why a record does not decode, saying what kind of record was expected.
pub(crate) fn unreadable(bytes: &[u8], error: &CodecError) -> String {
    format!(
        "compact CBOR record of {} bytes does not decode: {error}",
        bytes.len()
    )
}
