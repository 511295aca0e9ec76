//! Why a session could not do what it was asked. Each names the thing and the cause; the
//! causes are part of the message (not `source`s), so that a caller printing the chain
//! does not say them twice.

use std::path::PathBuf;

use ganga_core::JobId;
use ganga_monitor::OpError;
use ganga_plugin_host::HostError;

use crate::tomlfile::FileError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("no home directory: set GANGA_HOME, or name a home (`ganga --home DIR`)")]
    NoHome,
    #[error(
        "the ganga home {0} is not valid UTF-8: paths cross to plugins as text; choose another (GANGA_HOME, `ganga --home DIR`)"
    )]
    HomeNotUtf8(PathBuf),
    #[error("cannot create the ganga home {path}: {cause}")]
    CreateHome {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot read config file {path}: {cause}")]
    ReadConfig {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A config file or a job file that says something wrong, with its line.
    #[error(transparent)]
    File(#[from] FileError),
    /// A plugin library named explicitly that was refused.
    #[error("{0}")]
    PluginRefused(String),
    /// The store or a backend could not be provided by the plugins.
    #[error(transparent)]
    Plugin(#[from] HostError),
    /// A job definition that cannot be run as it is: `at` says where it was said
    /// (`job.toml:6:1: backend.queue`, `Job.application.args[1]`).
    #[error("{at}: {message}")]
    Definition { at: String, message: String },
    #[error("job {0} does not exist")]
    NoSuchJob(JobId),
    #[error("job {0} does not exist (it was removed)")]
    Removed(JobId),
    #[error("cannot open the monitor lock {path}: {cause}")]
    MonitorLock {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Op(#[from] OpError),
}
