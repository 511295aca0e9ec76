//! The monitoring service and the job operations that talk to backends.
//!
//! [`Operations`] carries out what a user asks (submit, kill, resubmit, remove, copy,
//! force a status, peek) by combining the core's rules with backend calls and store
//! commits. [`Monitor`] drives active units to the end: a scheduler per backend asks it
//! about all its units at its own pace, answers become changes by the core's rules,
//! changes are committed in batches, outputs are collected by a bounded pool beside the
//! polls. [`StoreHandle`] is the one door to the jobs for async code, with the [`Cache`]
//! behind it (jobs, summaries and packed pages of subjobs within a byte budget).
//!
//! Invariants: a unit is finished only on evidence from its backend (an exit record, a
//! kill), or as lost after a grace period of absence, never because a query failed or an
//! answer was missing; every change names the status and run it was based on, so a
//! concurrent `ganga` in another process is never overwritten. This crate knows no
//! terminal, config file or plugin library: the CLI hands it a store and a way to find
//! backends.

mod cache;
mod clock;
mod context;
mod control;
mod error;
mod handover;
mod lease;
mod monitor;
mod operations;
mod pace;
mod store;
mod whole;

pub use crate::{
    cache::{Cache, CacheStats, SUBJOB_PAGE},
    clock::now,
    context::{Backends, Context},
    control::{BackendStatus, ControlReply, ControlRequest, MonitorStatus, ask},
    error::OpError,
    handover::SubmitReport,
    lease::{MonitorLease, SubmissionLease},
    monitor::{CycleReport, Monitor, MonitorSettings, Until},
    operations::{DEFAULT_PEEK_BYTES, KillReport, Operations},
    pace::{Pace, PaceRules},
    store::{StoreHandle, blocking},
};
