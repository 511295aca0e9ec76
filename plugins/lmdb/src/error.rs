//! Errors inside a transaction: LMDB's own (some of which are retried: a full map is
//! grown, a map grown by another process is adopted) and refusals the store decides.

use ganga_core::StoreError;
use heed::MdbError;

/// Why work inside a transaction stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("LMDB failed while {doing}: {source}")]
    Lmdb {
        doing: String,
        #[source]
        source: heed::Error,
    },
    #[error(transparent)]
    Refused(#[from] StoreError),
}

impl Failure {
    pub(crate) fn is_map_full(&self) -> bool {
        matches!(
            self,
            Failure::Lmdb {
                source: heed::Error::Mdb(MdbError::MapFull),
                ..
            }
        )
    }

    pub(crate) fn is_map_resized(&self) -> bool {
        matches!(
            self,
            Failure::Lmdb {
                source: heed::Error::Mdb(MdbError::MapResized),
                ..
            }
        )
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> StoreError {
        match f {
            Failure::Lmdb { .. } => StoreError::Io(f.to_string()),
            Failure::Refused(e) => e,
        }
    }
}

/// For heed's helpers that fail on their own commit (opening and creating tables); every
/// other LMDB call names what it was doing with [`Doing`].
impl From<heed::Error> for Failure {
    fn from(source: heed::Error) -> Failure {
        Failure::Lmdb {
            doing: "committing the transaction that opens the tables".to_owned(),
            source,
        }
    }
}

/// Names what was being done when LMDB failed.
pub(crate) trait Doing<T> {
    fn doing(self, what: &str) -> Result<T, Failure>;
}

impl<T> Doing<T> for Result<T, heed::Error> {
    fn doing(self, what: &str) -> Result<T, Failure> {
        self.map_err(|source| Failure::Lmdb {
            doing: what.to_owned(),
            source,
        })
    }
}
