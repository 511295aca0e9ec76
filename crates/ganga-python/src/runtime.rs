//! The module's tokio runtime, and running Rust work on it from Python: the GIL released
//! while it runs, Ctrl-C noticed within a tenth of a second.

use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors;

/// How often a blocked call looks whether Python has a signal to handle (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime every Rust task of the module runs on: two workers, as the `ganga`
/// command has; made on first use.
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ganga-rs")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| errors::ganga(e.clone()))
}

/// Runs `work` on the runtime and waits for it with the GIL released. On Ctrl-C (any
/// signal whose Python handler raises) it is abandoned: it is dropped at its next await,
/// as it would be if the process were killed there, which every operation survives.
pub(crate) fn block_on<T: Send + 'static>(
    py: Python<'_>,
    work: impl Future<Output = T> + Send + 'static,
) -> PyResult<T> {
    run(py, Duration::ZERO, |_stop| work)
}

/// Like [`block_on`], but on Ctrl-C `work`'s stop future completes first, and `work` is
/// given a few seconds to end by itself (a monitor commits what it has in flight) before
/// it is abandoned.
pub(crate) fn block_on_stoppable<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce(Stop) -> F,
) -> PyResult<T> {
    run(py, Duration::from_secs(10), work)
}

/// Runs `work`; on a signal, completes its stop future and gives it `grace` to end.
fn run<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    py: Python<'_>,
    grace: Duration,
    work: impl FnOnce(Stop) -> F,
) -> PyResult<T> {
    let rt = runtime()?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut task = rt.spawn(work(Stop(rx)));
    let mut interrupted: Option<(PyErr, std::time::Instant)> = None;
    loop {
        let step = py
            .detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut task).await }));
        match step {
            Ok(Ok(value)) => {
                return match interrupted {
                    Some((e, _)) => Err(e),
                    None => Ok(value),
                };
            }
            Ok(Err(e)) if e.is_panic() => {
                return Err(errors::ganga(format!(
                    "internal error: a task of ganga_rs panicked ({e}); please report it"
                )));
            }
            Ok(Err(e)) => return Err(errors::ganga(format!("internal error: {e}"))),
            Err(_still_running) => match &interrupted {
                Some((_, since)) if since.elapsed() >= grace => {
                    task.abort();
                    let (e, _) = interrupted.take().expect("checked to be Some just above");
                    return Err(e);
                }
                Some(_) => {}
                None => {
                    if let Err(e) = py.check_signals() {
                        let _ = tx.send(true);
                        interrupted = Some((e, std::time::Instant::now()));
                    }
                }
            },
        }
    }
}

/// Completes when the Python caller was interrupted.
pub(crate) struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub(crate) async fn stopped(mut self) {
        // An error means the sender is gone: the caller went away, which is a stop too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
