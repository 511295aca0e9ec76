//! Ganga's objects (as parsed XML) into ganga-rs's model: a [`Job`] with its [`Subjob`]s,
//! plus what could not be mapped (flagged), what was left behind by design (counted) and
//! which units were active in Ganga.
//!
//! A subjob is stored as what differs from its master: its overrides are derived by
//! comparing its definition with the master's.
//!
//! One module per part of a Ganga job: `job` assembles a job from its master and
//! subjobs, `unit` reads one job or subjob file (status, info, times, metadata),
//! `application`, `backend`, `files` and `splitter` the objects of those names,
//! `subjob` a subjob as what differs from its master, and `values` how Ganga's
//! attribute values (Python literals, lists, `File`s) read as ganga-rs's.

mod application;
mod backend;
mod files;
mod job;
mod splitter;
mod subjob;
mod unit;
mod values;

use std::path::PathBuf;

use ganga_core::{Job, Subjob, Timestamp};

use crate::repo::UserRepo;
use crate::report::Severity;
use crate::xml::Object;

pub(crate) use job::JobBuilder;

/// Metadata keys the migration writes (all start with `ganga.`).
pub mod keys {
    pub const GANGADIR: &str = "ganga.gangadir";
    pub const USER: &str = "ganga.user";
    pub const REGISTRY: &str = "ganga.registry";
    pub const ID: &str = "ganga.id";
    pub const UUID: &str = "ganga.uuid";
    pub const STATUS: &str = "ganga.status";
    pub const JOBTREE: &str = "ganga.jobtree";
    /// Present while a job's subjobs are being written in several transactions.
    pub const INCOMPLETE: &str = "ganga.migration.incomplete";
}

/// Where an object comes from.
pub(crate) struct Ctx<'a> {
    pub user: &'a UserRepo,
    /// `jobs`, `templates` or `box`.
    pub registry: &'a str,
    /// The gangadir, canonical, as recorded in `ganga.gangadir`.
    pub gangadir: &'a str,
    pub now: Timestamp,
}

/// One job, mapped. Its id is set by the caller.
#[derive(Debug)]
pub(crate) struct MappedJob {
    pub job: Job,
    pub subjobs: Vec<Subjob>,
    /// (object, severity, reason); object is `12` or `12.3`.
    pub problems: Vec<(String, Severity, String)>,
    /// (object, Ganga status) of units that were active in Ganga.
    pub active: Vec<(String, String)>,
    /// What was left behind by design.
    pub dropped: Vec<String>,
    pub ganga_status: String,
    /// Ganga output directories to bring over: (subjob index or None, path).
    pub outputs: Vec<(Option<u32>, PathBuf)>,
}

/// A subjob file as the caller read it: its object, or why it could not be read.
pub(crate) struct SubjobSource {
    pub index: u32,
    pub object: Result<Object, String>,
    /// Set when `data~` was used.
    pub fell_back: Option<String>,
}
