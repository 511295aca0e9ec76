//! Reading records of format version 1: CBOR (ciborium) of the ganga-core serde types,
//! field names and all. Nothing writes this format any more; [`crate::upgrade`] reads it
//! once, to rewrite a format-1 store in format 2.

use ganga_core::{JobId, SubjobIndex};
use serde::de::DeserializeOwned;

/// The format version these records belong to.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Decodes a format-1 record; the error says what failed.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| match e {
        ciborium::de::Error::Io(e) => format!("CBOR record truncated ({} bytes): {e}", bytes.len()),
        ciborium::de::Error::Syntax(at) => format!("CBOR syntax error at byte {at}"),
        ciborium::de::Error::Semantic(at, msg) => match at {
            Some(at) => format!("CBOR record does not match its type at byte {at}: {msg}"),
            None => format!("CBOR record does not match its type: {msg}"),
        },
        ciborium::de::Error::RecursionLimitExceeded => "CBOR record nested too deeply".to_owned(),
    })
}

/// A `subjobs` key of format 1: the master's id then the subjob's index, both big-endian
/// (one entry per subjob).
pub(crate) fn subjob_key(job: JobId, index: SubjobIndex) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&job.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(crate) fn parse_subjob_key(key: &[u8]) -> Option<(JobId, SubjobIndex)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let (job, index) = key.split_at(8);
    Some((
        JobId::from_be_bytes(job.try_into().ok()?),
        SubjobIndex::from_be_bytes(index.try_into().ok()?),
    ))
}
