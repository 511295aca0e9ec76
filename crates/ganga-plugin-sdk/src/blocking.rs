//! [`blocking`]: file and process work off the async threads.

use ganga_core::{BackendError, BackendErrorKind};

/// Runs `work` (reading records, starting processes, anything that waits on the disk) on
/// the plugin runtime's blocking pool, so that no async thread of the plugin waits on it
/// and other calls go on meanwhile. If the work panics or its task is cancelled, that
/// becomes this call's error, `"{what} failed: {cause}"` (kind `Panicked` for a panic),
/// naming the work so that the user's message says what was going on.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        let kind = if e.is_panic() {
            BackendErrorKind::Panicked
        } else {
            BackendErrorKind::Failed
        };
        BackendError::new(kind, format!("{what} failed: {e}"))
    })
}
