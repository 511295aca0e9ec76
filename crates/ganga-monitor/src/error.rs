use ganga_core::{BackendError, JobRef, LifecycleError, StoreError};

/// Why an operation on jobs failed. Each names the job and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    #[error("job {0} does not exist")]
    NoSuchJob(JobRef),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {job}: backend `{backend}`: {error}")]
    Backend {
        job: JobRef,
        backend: String,
        error: BackendError,
    },
    #[error("job {job}: backend `{backend}` is not available: {message}")]
    NoBackend {
        job: JobRef,
        backend: String,
        message: String,
    },
    /// No backend of the name asked for; the message lists those there are.
    #[error("{0}")]
    Unavailable(String),
    #[error("job {job}: {message}")]
    Io { job: JobRef, message: String },
    #[error("job {job}: cannot {verb} it while {} is submitting it; wait until that ends, or stop that process first", by.map_or_else(|| "another process".to_owned(), |p| format!("process {p}")))]
    Busy {
        job: JobRef,
        verb: &'static str,
        by: Option<u32>,
    },
    #[error("job {0}: gave up after repeated conflicting changes by another process")]
    Contended(JobRef),
    #[error("internal error: {0}")]
    Internal(String),
}
