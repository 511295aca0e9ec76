//! `changes`: the units whose exit or kill was recorded since the last call, from the
//! home's one events directory, watched with inotify (one watch, however many units).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ganga_core::{BackendError, JobRef};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::{Mutex, Notify};

use ganga_plugin_sdk::blocking;

/// The events directory and, once `changes` was first called, its watch.
#[derive(Debug)]
pub(crate) struct Watch {
    dir: PathBuf,
    watching: Mutex<Option<Watching>>,
}

#[derive(Debug)]
struct Watching {
    /// Dropping it ends the watch.
    _watcher: RecommendedWatcher,
    /// Woken by every event in the directory. A wake-up that comes while no one waits is
    /// kept (one permit), so an event between a look and a wait is not missed.
    wake: Arc<Notify>,
}

impl Watch {
    pub(crate) fn new(dir: PathBuf) -> Watch {
        Watch {
            dir,
            watching: Mutex::new(None),
        }
    }

    /// Waits up to `wait` for events and returns the units they name, consuming them.
    /// Files that appeared while nothing watched (before the first call, or while no
    /// ganga ran) are returned by the first look.
    pub(crate) async fn changes(&self, wait: Duration) -> Result<Vec<JobRef>, BackendError> {
        let wake = self.wake().await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let dir = self.dir.clone();
            let found = blocking("local backend: changes", move || consume(&dir)).await??;
            if !found.is_empty() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, wake.notified())
                .await
                .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn wake(&self) -> Result<Arc<Notify>, BackendError> {
        let mut watching = self.watching.lock().await;
        if let Some(w) = watching.as_ref() {
            return Ok(w.wake.clone());
        }
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if wakes(&event) {
                    woken.notify_one();
                }
            })
            .map_err(|e| watch_failed(&self.dir, &e))?;
        watcher
            .watch(&self.dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_failed(&self.dir, &e))?;
        *watching = Some(Watching {
            _watcher: watcher,
            wake: wake.clone(),
        });
        Ok(wake)
    }
}

/// Whether an event calls for a look at the directory. Not an access: a look opens the
/// directory, which inotify reports (notify watches `IN_OPEN`), so waking on it made every
/// look wake the next, and a watching monitor spun a CPU. An error (the kernel's event
/// queue overflowed, say) wakes: the next look reads the directory, which is the truth
/// either way.
fn wakes(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(e) => !e.kind.is_access(),
        Err(_) => true,
    }
}

fn watch_failed(dir: &Path, e: &notify::Error) -> BackendError {
    BackendError::failed(format!(
        "local backend: cannot watch {} for changes: {e}",
        dir.display()
    ))
}

/// Reads the events directory, removes what it read, and returns the units named.
fn consume(dir: &Path) -> Result<Vec<JobRef>, BackendError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        BackendError::failed(format!("local backend: cannot read {}: {e}", dir.display()))
    })?;
    let mut units = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let unit = name
            .to_str()
            .and_then(|n| n.rsplit_once("-r"))
            .filter(|(_, run)| run.parse::<u32>().is_ok())
            .and_then(|(job, _)| job.parse::<JobRef>().ok());
        // Removed before it is answered: an event written again after this is a new one.
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {}
            // Another consumer (or a poll) took it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(
                    "local backend: cannot remove {}: {e}",
                    entry.path().display()
                );
            }
        }
        match unit {
            Some(unit) => {
                units.insert(unit);
            }
            None => tracing::debug!(
                "local backend: ignoring {} in the events directory",
                name.to_string_lossy()
            ),
        }
    }
    Ok(units.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, RemoveKind};

    use super::wakes;

    #[test]
    fn a_look_at_the_directory_wakes_no_one_and_a_new_event_file_does() {
        let event = |kind| Ok(notify::Event::new(kind).add_path("/home/local/events".into()));
        assert!(!wakes(&event(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        )))));
        assert!(!wakes(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(wakes(&event(EventKind::Create(CreateKind::File))));
        assert!(wakes(&event(EventKind::Remove(RemoveKind::File))));
        assert!(wakes(&Err(notify::Error::generic("queue overflow"))));
    }
}
