//! The monitoring service and the job operations that talk to backends.
//!
//! [`Operations`] carries out what a user asks (submit, kill, resubmit, remove, copy,
//! force a status, peek) by combining the core's rules with backend calls and store
//! commits. [`Monitor`] drives active jobs to the end: it asks each backend about its jobs
//! in bulk, applies what the answers mean, collects outputs of ended jobs, and commits
//! the changes in batches.
//!
//! Invariants: a job is finished only on evidence from its backend (an exit record, a
//! kill), never because a query failed or a job went missing; changes are committed with
//! the revision they were based on, so a concurrent `ganga` in another process is never
//! overwritten — the loser re-reads and tries again. This crate knows no terminal, config
//! file or plugin library: the CLI hands it a store, a cache and a way to find backends.

mod clock;
mod context;
mod cycle;
mod error;
mod lease;
mod operations;
mod units;

pub use crate::{
    clock::now,
    context::{Backends, Context},
    cycle::{CycleReport, Monitor, MonitorSettings, Until},
    error::OpError,
    lease::MonitorLease,
    operations::{DEFAULT_PEEK_BYTES, KillReport, Operations, SubmitReport},
};
