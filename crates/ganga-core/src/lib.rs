//! The core of ganga-rs: the job model (jobs, subjobs, splitters), Ganga's status set and
//! transition table, the verbs users apply to jobs, the monitor's rules as pure functions,
//! and the two traits the rest of the toolkit is built around: [`Backend`] (where jobs
//! run) and [`Store`] (where they are kept).
//!
//! It is not: a runtime, a database, a cache, a terminal program. It does no I/O and never
//! reads the clock (callers pass `now`); it knows no plugin, file format or command line.
//! Its types are plain data; how they are packed on disk is `ganga-records`' business and
//! how they cross the plugin boundary `ganga-protocol`'s.

mod backend;
mod job;
mod lifecycle;
mod monitoring;
mod split;
mod status;
mod store;
mod time;
mod unit;
mod value;
mod workspace;

pub use crate::{
    backend::{
        Answers, Backend, BackendDescription, BackendError, BackendErrorKind, BackendRef,
        Capabilities, CommandStep, OutputsReport, OutputsRequest, PeekFile, PerJob, PollReport,
        RemoteStatus, SubmitSpec, Submitted, UnitRun, check_inside_workdir,
    },
    job::{
        Application, AutoResubmit, BackendConfig, BackendInfo, BadJobRef, Executable, Job, JobId,
        JobRef, JobSpec, RunState, Subjob, SubjobIndex,
    },
    lifecycle::{LifecycleError, effective_spec},
    monitoring::{
        PollOutcome, after_find, after_poll, after_submit, auto_resubmission, auto_resubmit_single,
        auto_resubmit_split, lost, settle,
    },
    split::{ArgLists, Override, SplitAttribute, SplitError, Splitter},
    status::{Status, StatusCounts, UnknownStatus},
    store::{
        ActiveJob, ActiveUnit, Change, CheckReport, Committed, JobSummary, RunUpdate, Store,
        StoreDescription, StoreError, SummaryEntry, UnitCursor, UnitsUpdated,
    },
    time::{StatusTimes, Timestamp},
    unit::{UnitChange, UnitRefusal, UnitUpdate},
    value::{Options, Value},
    workspace::Workspaces,
};
