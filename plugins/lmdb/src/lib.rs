//! The LMDB store: jobs kept in LMDB with CBOR records
