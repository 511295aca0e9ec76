//! Migration from Ganga: reads a user's gangadir (Ganga's LocalXML repository, version
//! 6.0, as Ganga 8.x writes it) and brings its jobs, subjobs, templates and job tree
//! folders into a ganga-rs [`Store`], and the jobs' outputs into ganga-rs's
//! [`Workspaces`].
//!
//! - [`migrate`] is the whole run; [`migrate_with`] adds a progress callback and dry runs.
//! - The gangadir is only read: no file in it is created, changed or removed.
//! - A second run changes nothing: jobs already migrated (recognised by their
//!   `ganga.gangadir`, `ganga.user`, `ganga.registry` and `ganga.id` metadata) are left
//!   alone.
//! - Problems with single objects (a truncated file, an unknown class, a schema version it
//!   does not know) never stop the run: the object is skipped or imported in part, and the
//!   [`Report`] says which and why.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ganga_core::{Timestamp, Workspaces};
//! use ganga_migrate::{Options, WorkspaceMode};
//!
//! let store = ganga_store_lmdb::LmdbStore::open("home/store".as_ref())?;
//! let workspaces = Workspaces::new("home/workspace");
//! let mut options = Options::new(Timestamp::from_secs(1_800_000_000));
//! options.workspace = WorkspaceMode::None; // leave the outputs where they are
//! let report = ganga_migrate::migrate("gangadir".as_ref(), &store, &workspaces, &options)?;
//! println!("{} jobs, {} subjobs\n{report}", report.imported_jobs(), report.imported_subjobs());
//! # Ok(())
//! # }
//! ```
//!
//! It is not: a reader of Ganga's pickle index caches (they are ignored, as they only
//! repeat the XML), nor a runner of Ganga code (values are parsed, never evaluated).
//! `docs/migration.md` describes what is brought and what is not.

mod error;
#[cfg(test)]
mod fuzz;
mod map;
mod pyliteral;
mod repo;
mod report;
mod run;
mod time;
mod workspace;
mod xml;

use std::path::Path;
use std::time::SystemTime;

use ganga_core::{Store, Timestamp, Workspaces};

pub use crate::{
    error::MigrateError,
    map::keys,
    report::{
        ActiveInGanga, IdPolicy, Problem, RegistryReport, Renumbered, Report, Severity,
        WorkspaceReport,
    },
    workspace::WorkspaceMode,
};

use crate::repo::Gangadir;
use crate::run::Run;

/// How to migrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Read and report, write nothing (neither to the store nor to the workspace).
    pub dry_run: bool,
    /// Go on although a Ganga session seems to be running on the gangadir.
    pub force: bool,
    pub workspace: WorkspaceMode,
    /// Subjobs written per store transaction (jobs are grouped until they reach it; a job
    /// with more subjobs is written in several transactions).
    pub batch_subjobs: usize,
    /// When the migration runs: the time a job active in Ganga is marked `failed` at.
    pub now: Timestamp,
}

impl Options {
    pub fn new(now: Timestamp) -> Options {
        Options {
            dry_run: false,
            force: false,
            workspace: WorkspaceMode::Copy,
            batch_subjobs: 5000,
            now,
        }
    }
}

/// What [`migrate_with`] reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The work ahead: objects (jobs, templates, box items) and subjobs.
    Start {
        objects: u64,
        subjobs: u64,
    },
    /// One object is done (imported, skipped or found already migrated), with its subjobs.
    Object {
        subjobs: u64,
    },
    Finish,
}

/// Migrates `gangadir` into `store` and `workspaces`. See [`migrate_with`].
pub fn migrate(
    gangadir: &Path,
    store: &dyn Store,
    workspaces: &Workspaces,
    options: &Options,
) -> Result<Report, MigrateError> {
    migrate_with(gangadir, Some(store), workspaces, options, &mut |_| {})
}

/// Migrates `gangadir`, calling `progress` as it goes. Without a store it can only be a
/// dry run, planned as for an empty store.
pub fn migrate_with(
    gangadir: &Path,
    store: Option<&dyn Store>,
    workspaces: &Workspaces,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, MigrateError> {
    if store.is_none() && !options.dry_run {
        return Err(MigrateError::NoStore);
    }
    let gd = Gangadir::open(gangadir)?;
    if !options.force
        && let Some((file, age)) = gd.live_sessions(SystemTime::now()).into_iter().next()
    {
        return Err(MigrateError::GangaSessionAlive { file, age });
    }
    let mut run = Run::new(&gd, store, workspaces, options);
    run.scan_store(store)?;

    let (plans, objects, subjobs) = run.survey(&gd)?;
    progress(Progress::Start { objects, subjobs });

    for (user, prefix, registries) in plans {
        for (name, entries) in registries {
            let registry = format!("{prefix}{name}");
            run.registry(user, name, &registry, entries, progress)?;
        }
    }
    run.flush()?;
    progress(Progress::Finish);
    Ok(run.report)
}
