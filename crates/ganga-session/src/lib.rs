//! The composition of ganga-rs, shared by every program that drives jobs: the `ganga`
//! command and the Python module `ganga_rs`. A [`Session`] resolves the home
//! (`$GANGA_HOME`), reads the config file, sets the umask it asks for, finds the plugins
//! (the search path, the catalog), opens the store behind a wrapper whose errors name
//! its location, and makes from them the operations, the monitor with the config's
//! settings, and the home's id. Job files are read here ([`Session::read_job_file`]), and
//! jobs built in code are checked the same way ([`JobDefinition::built`]), so a job is
//! refused with the same words however it was described; [`Session::wait`] is `ganga
//! wait` without its printing.
//!
//! It is not a user interface: it knows no terminal, command line, rendering or
//! Python, and never starts a process (the CLI starts its background monitor). It is the
//! only library that knows config files and the job-file format.

mod config;
mod error;
mod fault;
mod jobfile;
mod session;
mod tomlfile;
mod validate;

pub use crate::{
    config::{
        AutoResubmitConfig, BackendPace, Config, Defaults, HomeConfig, MonitorConfig, StoreConfig,
        Umask,
    },
    error::SessionError,
    fault::install as report_store_faults,
    session::{Session, SessionOptions, WaitEvent, WaitOutcome, exe_dir, ganga_on_path},
    tomlfile::FileError,
    validate::{JobDefinition, OptionAt},
};
