//! The queue of a home: publishing units (one small file each, under a lock held only
//! while a batch is written), taking a unit out before it starts, and telling where a
//! queued unit is. Runners (see `runner.sh`) take entries by creating the claim file.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::layout::QueueDir;
use crate::procs;
use crate::records::{self, Queued};

/// A unit ready to be queued: its directories exist and its input files are copied.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub(crate) control: PathBuf,
    pub(crate) run: u32,
    pub(crate) job: ganga_core::JobRef,
    /// What the wrapper sources (see `unitfile`).
    pub(crate) script: String,
    /// The `queued-<run>` record's path.
    pub(crate) queued_record: PathBuf,
}

/// Where a queued (not started) run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the queue, taken by no one.
    Waiting,
    /// Claimed by a runner that is alive: it is being started.
    Starting,
    /// Claimed by a runner (or a kill) that is gone.
    Orphaned,
    /// Not in the queue any more.
    Gone,
}

impl QueueDir {
    /// Queues `units` in order, under the queue's lock: each gets the next sequence number,
    /// its `queued-<run>` record (which is also what its wrapper sources), and its entry, a
    /// hard link to that record (no new file: creating files is what submitting costs);
    /// then `head` moves past them, which is what runners look at. The record is always
    /// there before the entry, so that a run a runner may take is one `find` knows. Returns
    /// each unit's sequence number, or why it was not queued.
    pub(crate) fn publish(
        &self,
        units: &[Ready],
        wrapper: &Path,
        host_time: ganga_core::Timestamp,
    ) -> io::Result<Vec<Result<u64, String>>> {
        let lock = open_private(&self.lock())?;
        rustix::fs::flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), "cannot lock the queue"))?;
        // A batch cut short by a crash may have reserved numbers it never published:
        // `next` is past them, and they are never used again.
        let next = read_number(&self.next())?.max(read_number(&self.head())?);
        let n = u64::try_from(units.len()).unwrap_or(u64::MAX);
        records::write_atomic(&self.next(), &format!("{}\n", next + n))?;
        let mut results = Vec::with_capacity(units.len());
        for (i, unit) in (0u64..).zip(units) {
            let seq = next + i;
            results.push(self.write_one(unit, seq, wrapper, host_time).map(|()| seq));
        }
        if let Err(e) = records::write_atomic(&self.head(), &format!("{}\n", next + n)) {
            // Unpublished, these would run only when a later batch moves `head`: take
            // them back, and fail them.
            for (unit, result) in units.iter().zip(&results) {
                if let Ok(seq) = result {
                    let _ = std::fs::remove_file(self.entry(*seq));
                    let _ = std::fs::remove_file(&unit.queued_record);
                }
            }
            return Err(e);
        }
        drop(lock);
        Ok(results)
    }

    fn write_one(
        &self,
        unit: &Ready,
        seq: u64,
        wrapper: &Path,
        time: ganga_core::Timestamp,
    ) -> Result<(), String> {
        let queued = Queued {
            run: unit.run,
            seq,
            queue: self.dir.clone(),
            time: Some(time),
        };
        let mut text = queued.head(&unit.control, unit.job, wrapper);
        text.push_str(&unit.script);
        records::write_atomic(&unit.queued_record, &text).map_err(|e| e.to_string())?;
        let entry = self.entry(seq);
        let linked = match std::fs::hard_link(&unit.queued_record, &entry) {
            Ok(()) => Ok(()),
            // Another file system, or one without hard links: a copy does as well.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV | libc::EPERM | libc::EMLINK)
                ) =>
            {
                records::write_private(&entry, text.as_bytes())
            }
            Err(e) => Err(e),
        };
        linked.map_err(|e| {
            let _ = std::fs::remove_file(&unit.queued_record);
            format!("cannot write the queue entry {}: {e}", entry.display())
        })
    }

    /// Takes entry `seq` out of the queue before a runner does, so that it never starts.
    /// `Ok(true)`: taken out; `Ok(false)`: a runner has it (or it is gone).
    pub(crate) fn take_out(&self, seq: u64) -> io::Result<bool> {
        let claim = self.claim(seq);
        if !self.entry(seq).exists() {
            return Ok(false);
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&claim)
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        // The entry first: a runner that creates a claim after ours is gone finds no entry.
        let removed = match std::fs::remove_file(self.entry(seq)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&claim);
        removed
    }

    /// Where entry `seq` is.
    pub(crate) fn place(&self, seq: u64) -> io::Result<Place> {
        match std::fs::read_to_string(self.claim(seq)) {
            Ok(text) => Ok(match claimant(&text) {
                // Just created, not written yet: its runner is alive.
                None => Place::Starting,
                Some((pid, ticks)) if procs::is_alive(pid, ticks) => Place::Starting,
                Some(_) => Place::Orphaned,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(if self.entry(seq).exists() {
                Place::Waiting
            } else {
                Place::Gone
            }),
            Err(e) => Err(e),
        }
    }

    /// The first sequence number runners do not look at yet.
    pub(crate) fn head_number(&self) -> io::Result<u64> {
        read_number(&self.head())
    }

    /// Publishes what a batch cut short (its `ganga` died while writing it) left behind:
    /// a live batch holds the lock until `head` reaches `next`, so whoever gets the lock
    /// and finds `head` behind may move it.
    pub(crate) fn publish_cut_off(&self) -> io::Result<()> {
        let lock = open_private(&self.lock())?;
        rustix::fs::flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), "cannot lock the queue"))?;
        let (next, head) = (read_number(&self.next())?, read_number(&self.head())?);
        if head < next {
            records::write_atomic(&self.head(), &format!("{next}\n"))?;
        }
        Ok(())
    }

    /// Removes entry `seq` and its claim (a claim whose runner is gone).
    pub(crate) fn remove(&self, seq: u64) {
        let _ = std::fs::remove_file(self.entry(seq));
        let _ = std::fs::remove_file(self.claim(seq));
    }
}

/// `pid ticks` of a claim (`0` ticks: unknown).
fn claimant(text: &str) -> Option<(i32, Option<u64>)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let ticks = words.next().and_then(|t| t.parse().ok()).filter(|&t| t > 0);
    Some((pid, ticks))
}

/// A number file (`next`, `head`); 0 if there is none yet.
fn read_number(path: &Path) -> io::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("{} does not hold a number: {text:?}", path.display()),
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims() {
        assert_eq!(claimant("123 456\n"), Some((123, Some(456))));
        assert_eq!(claimant("123 0\n"), Some((123, None)));
        assert_eq!(claimant("123\n"), Some((123, None)));
        assert_eq!(claimant(""), None);
        assert_eq!(claimant("x 1"), None);
    }
}
