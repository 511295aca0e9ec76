//! One monitor per ganga home at a time. Two monitors would poll the same jobs and race to
//! finalise them; the store's revisions keep that correct, but it wastes backend queries
//! (the scale problem Ganga's second sessions have). A `submit --wait` that finds a
//! monitor running leaves the driving to it and just watches the store.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Held while this process monitors; released when dropped or when the process dies
/// (it is an OS file lock, so a crashed monitor never blocks the next one).
#[derive(Debug)]
pub struct MonitorLease {
    _file: File,
    path: PathBuf,
}

impl MonitorLease {
    /// Takes the lease at `path`, or returns `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<MonitorLease>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(file, "{}", std::process::id())?;
                Ok(Some(MonitorLease {
                    _file: file,
                    path: path.to_owned(),
                }))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// The process id written by the holder of the lease at `path`, if readable.
    pub fn holder(path: &Path) -> Option<u32> {
        let mut text = String::new();
        File::open(path).ok()?.read_to_string(&mut text).ok()?;
        text.trim().parse().ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Held by the process that hands a job's units over to its backend, from before they
/// become `submitting` until their answers are recorded. A unit found `submitting`
/// without a backend id while nobody holds its job's lease was cut off by a process that
/// died: the monitor asks the backend what became of it. Kill and remove refuse a job
/// whose lease is held, rather than race with the submission.
#[derive(Debug)]
pub struct SubmissionLease {
    _file: File,
}

impl SubmissionLease {
    fn path(locks: &Path, job: ganga_core::JobId) -> PathBuf {
        locks.join(format!("submit-{job}.lock"))
    }

    /// Takes the lease of `job`, waiting while another process holds it.
    pub(crate) fn acquire(
        locks: &Path,
        job: ganga_core::JobId,
    ) -> std::io::Result<SubmissionLease> {
        std::fs::create_dir_all(locks)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(Self::path(locks, job))?;
        file.lock()?;
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(SubmissionLease { _file: file })
    }

    /// The process submitting `job` now, if any (`Some(0)` if it cannot be told which).
    pub(crate) fn holder(locks: &Path, job: ganga_core::JobId) -> std::io::Result<Option<u32>> {
        let path = Self::path(locks, job);
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(Some(text.trim().parse().unwrap_or(0)))
            }
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
