//! Who drives the jobs a script submits. As in Ganga, the Python session monitors them
//! itself while it runs, unless a monitor already runs for the home (a `ganga monitor`,
//! the background one `ganga submit` starts, another script): then that one is asked to
//! poll them now. The monitor here holds the home's monitor lease like any other, listens
//! on its control socket (so `ganga monitor status` sees it), and stops when idle for
//! the config's `[monitor] idle_exit_secs`, when the home is removed, or when the session
//! is replaced. Jobs still running when the interpreter exits go on running; the next
//! monitor finishes them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ganga_core::JobId;
use ganga_monitor::{ControlRequest, MonitorLease, Until};
use tokio::sync::watch;

use crate::shared::Shared;

/// How long a running monitor is given to answer a request to poll.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The monitor this process runs for a session.
pub(crate) struct Background {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Asks it to stop; it commits what it has in flight first.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
    }

    fn running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Makes sure a monitor will drive `jobs`: asks the running one to poll them now, or
/// starts one in this process. Returns a note for the user when none will.
pub(crate) async fn ensure_monitor(shared: &Arc<Shared>, jobs: Vec<JobId>) -> Option<String> {
    let session = &shared.session;
    let poll = ControlRequest::Poll { jobs };
    if let Ok(Some(_)) = ganga_monitor::ask(&session.control_socket(), &poll, ASK_TIMEOUT).await {
        return None;
    }
    {
        let slot = shared.background.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(Background::running) {
            // Ours, not listening yet: it reads the store as soon as it starts.
            return None;
        }
    }
    let lease_path = session.monitor_lease_path();
    let lease = match MonitorLease::try_acquire(&lease_path) {
        Ok(Some(lease)) => lease,
        // Another process monitors the home: it will get to them.
        Ok(None) => return None,
        Err(e) => {
            return Some(format!(
                "no monitor runs for {} and none can start (cannot open the monitor lock {}: {e}); call job.wait() or run `ganga monitor`",
                session.home().display(),
                lease_path.display()
            ));
        }
    };
    if !session.config().monitor.background {
        return Some(format!(
            "no monitor runs for {} ([monitor] background = false): call job.wait() or run `ganga monitor` to drive the job",
            session.home().display()
        ));
    }
    let monitor = match session.monitor(None) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot start monitoring: {e}")),
    };
    let monitor = match session.idle_exit() {
        Some(idle) => monitor.with_idle_exit(idle),
        None => monitor,
    };
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let lease = lease;
        let halt = async {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => {}
                () = home_gone(lease.path()) => {
                    tracing::warn!("the ganga home was removed: the monitor stops");
                }
            }
        };
        if let Err(e) = monitor.run(Until::Stopped, halt, |_| {}).await {
            tracing::warn!("the monitor of this Python session stopped: {e}");
        }
    });
    let previous = shared
        .background
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(Background { stop, task });
    if let Some(previous) = previous {
        previous.stop();
    }
    None
}

/// Completes once the monitor's lock file is gone (its home was removed).
async fn home_gone(lease: &Path) {
    while lease.exists() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
