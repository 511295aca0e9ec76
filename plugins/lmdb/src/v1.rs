//! Record encoding of format version 1: CBOR (ciborium) of the ganga-core serde types,
//! field names and all. A later format makes records compact; it will have to read these.

use serde::Serialize;
use serde::de::DeserializeOwned;

use ganga_core::StoreError;

/// The format version this code writes, and the highest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes)
        .map_err(|e| StoreError::Io(format!("cannot encode {what} as CBOR: {e}")))?;
    Ok(bytes)
}

/// Decodes a record; the error says what failed, for `Corrupt` and `Unreadable`.
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
