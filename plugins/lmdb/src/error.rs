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
    /// A record whose checksum does not match, or a table whose pages do not hold
    /// together: the data file was changed outside LMDB.
    #[error("table {table}: {}: {detail}", key_text(table, key))]
    Damaged {
        table: &'static str,
        key: Vec<u8>,
        detail: String,
    },
}

/// What a key of `table` names, for messages.
pub(crate) fn key_text(table: &str, key: &[u8]) -> String {
    match damaged_unit(table, key) {
        _ if key.is_empty() => "the table".to_owned(),
        Some(unit) if table == "subjobs" => format!("the group of subjobs from {unit}"),
        Some(unit) => format!("the record of {unit}"),
        None => format!("the record under key {}", crate::dump::hex(key)),
    }
}

/// The job (or first subjob) a damaged key of `table` names, if it names one.
pub(crate) fn damaged_unit(table: &str, key: &[u8]) -> Option<ganga_core::JobRef> {
    use ganga_core::JobRef;
    match table {
        "jobs" | "specs" | "splitters" | "dicts" | "summaries" => {
            crate::keys::parse_job(key).map(JobRef::job)
        }
        "subjobs" => crate::keys::parse_group(key)
            .map(|(job, g)| JobRef::subjob(job, crate::group::first_index(g))),
        "active" => crate::keys::parse_active(key).map(|(_, id)| JobRef::job(id)),
        "units" => crate::keys::parse_unit(key).map(|(_, unit)| unit),
        _ => None,
    }
}

/// What a user should do about damage.
pub(crate) const RESTORE: &str = "the store is damaged; restore it from a backup \
     (`ganga store check` lists what is damaged)";

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
            Failure::Lmdb {
                source:
                    heed::Error::Mdb(
                        MdbError::Corrupted
                        | MdbError::PageNotFound
                        | MdbError::Invalid
                        | MdbError::VersionMismatch
                        | MdbError::BadTxn
                        | MdbError::Incompatible,
                    ),
                ..
            } => StoreError::Io(format!("{f}: {RESTORE}")),
            Failure::Lmdb { .. } => StoreError::Io(f.to_string()),
            Failure::Refused(e) => e,
            Failure::Damaged {
                table,
                ref key,
                ref detail,
            } => match damaged_unit(table, key) {
                Some(job) => StoreError::Corrupt {
                    job,
                    detail: format!("table {table}: {detail}; {RESTORE}"),
                },
                None => StoreError::Io(format!("{f}; {RESTORE}")),
            },
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

/// Errors of [`crate::table::Table`] already say what was being done.
impl<T> Doing<T> for Result<T, Failure> {
    fn doing(self, _what: &str) -> Result<T, Failure> {
        self
    }
}

impl<T> Doing<T> for Result<T, heed::Error> {
    fn doing(self, what: &str) -> Result<T, Failure> {
        self.map_err(|source| Failure::Lmdb {
            doing: what.to_owned(),
            source,
        })
    }
}
