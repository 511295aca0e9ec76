//! Reading records of format version 1: CBOR (ciborium) of the ganga-core serde types,
//! field names and all. Nothing writes this format any more; [`crate::upgrade`] reads it
//! once, to rewrite a format-1 store in format 2.

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
