//! What stops a migration as a whole. Problems with single objects never do: they are
//! reported in the [`crate::Report`] and the run goes on.

use std::path::PathBuf;
use std::time::Duration;

use ganga_core::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error(
        "{path} is not a gangadir: it has no repository/<user>/LocalXML/6.0 directory \
         (give the directory Ganga's [Configuration]gangadir names, e.g. ~/gangadir)"
    )]
    NotAGangadir { path: PathBuf },

    #[error(
        "a Ganga session seems to be running on this gangadir: {file} was touched {} s ago \
         (Ganga touches it every few seconds while it runs). Quit Ganga first, or pass --force \
         if that session is gone",
        .age.as_secs()
    )]
    GangaSessionAlive { file: PathBuf, age: Duration },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the store refused the migration: {0}")]
    Store(#[from] StoreError),

    #[error("a migration without a store can only be a dry run")]
    NoStore,
}

impl MigrateError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> MigrateError {
        MigrateError::Io {
            path: path.into(),
            source,
        }
    }
}
