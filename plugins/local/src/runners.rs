//! Runners: at most one per slot, started when units are queued (or found waiting) and a
//! slot is free; and the scripts they and the wrappers run, installed once per version.

use std::ffi::{OsStr, OsString};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::layout::HomeDirs;
use crate::queue::open_private;
use crate::{procs, records};

/// The runner every slot runs (see the crate documentation).
const RUNNER_SCRIPT: &str = include_str!("runner.sh");
/// The wrapper every run runs under.
const WRAPPER_SCRIPT: &str = include_str!("wrapper.sh");

/// What starting runners needs.
#[derive(Debug, Clone)]
pub(crate) struct Runners {
    pub(crate) home: HomeDirs,
    pub(crate) max_parallel: u32,
    pub(crate) runner: PathBuf,
    /// The runners' (and so the wrappers') `PATH`: ganga's.
    pub(crate) path: OsString,
}

impl Runners {
    /// Makes sure that up to `wanted` more runners run, one per free slot: a slot is free
    /// when nobody holds its lock. Returns how many were started.
    pub(crate) fn ensure(&self, wanted: usize) -> io::Result<usize> {
        let mut started = 0;
        for slot in 1..=self.max_parallel {
            if started >= wanted {
                break;
            }
            let path = self.home.slot(slot);
            let lock = open_private(&path)?;
            match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!("cannot lock {}: {e}", path.display()),
                    ));
                }
            }
            let log = open_private(&self.home.runner_log())?;
            let slot_arg = OsString::from(slot.to_string());
            // The lock goes to the runner as its stdin: it is held, without a gap, by the
            // open file both share, and dropped here once the runner has it.
            procs::spawn_daemon(
                &self.runner,
                &[self.home.root.as_os_str(), &slot_arg],
                lock,
                log,
                &self.path,
            )
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start a runner: {e}")))?;
            started += 1;
        }
        Ok(started)
    }
}

/// Writes the runner and the wrapper into `bin/` under names that change with their
/// content, unless they are there: a running runner or wrapper keeps reading the version
/// it started with, whatever a newer ganga installs.
pub(crate) fn install_scripts(home: &HomeDirs) -> io::Result<(PathBuf, PathBuf)> {
    let runner = install(&home.bin(), "runner", RUNNER_SCRIPT)?;
    let wrapper = install(&home.bin(), "wrapper", WRAPPER_SCRIPT)?;
    Ok((runner, wrapper))
}

fn install(bin: &Path, name: &str, text: &str) -> io::Result<PathBuf> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    let path = bin.join(format!("{name}-{:016x}.sh", h.finish()));
    if std::fs::read(&path).is_ok_and(|bytes| bytes == text.as_bytes()) {
        return Ok(path);
    }
    records::write_atomic(&path, text)?;
    Ok(path)
}

/// Whether `name` is an executable file in one of the directories of `path`.
pub(crate) fn find_program(path: &OsStr, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
