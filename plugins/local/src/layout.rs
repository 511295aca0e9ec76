//! Where the backend's files are: the home's shared directory (`<home>/local/`) and each
//! unit's control and working directories. Names only; no I/O but creating directories.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The record kinds; each record file is `<kind>-<run>` in the unit's control directory.
/// `queued-<run>` is also the unit's queue entry and what its wrapper sources.
pub(crate) const QUEUED: &str = "queued";
pub(crate) const STARTED: &str = "started";
pub(crate) const EXIT: &str = "exit";
pub(crate) const KILLED: &str = "killed";

pub(crate) const STDOUT: &str = "stdout";
pub(crate) const STDERR: &str = "stderr";

/// The first line of a queue entry, naming its format.
pub(crate) const QUEUE_FORMAT: &str = "ganga-local-queue 1";

/// What is shared by every unit of one ganga home: `<home>/local/`.
#[derive(Debug, Clone)]
pub(crate) struct HomeDirs {
    pub(crate) root: PathBuf,
}

impl HomeDirs {
    pub(crate) fn new(home: &Path) -> HomeDirs {
        HomeDirs {
            root: home.join("local"),
        }
    }

    /// Creates the directories (private to the owner).
    pub(crate) fn create(&self) -> io::Result<()> {
        for dir in [
            self.root.clone(),
            self.bin(),
            self.slots(),
            self.queue(),
            self.cursors(),
            self.events(),
            self.envs(),
        ] {
            make_dir(&dir)?;
        }
        Ok(())
    }

    /// The scripts, one file per version of each (`wrapper-<hash>.sh`, `runner-<hash>.sh`).
    pub(crate) fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The slot lock files `slot-1..N`; a runner holds one for as long as it lives.
    pub(crate) fn slots(&self) -> PathBuf {
        self.root.join("slots")
    }

    pub(crate) fn slot(&self, n: u32) -> PathBuf {
        self.slots().join(format!("slot-{n}"))
    }

    /// The queue: entries `<seq>`, claims `<seq>.claim`, and `lock`, `next`, `head`.
    pub(crate) fn queue(&self) -> PathBuf {
        self.root.join("queue")
    }

    /// Each slot's runner's position in the queue (a hint for runners that start later).
    pub(crate) fn cursors(&self) -> PathBuf {
        self.root.join("cursors")
    }

    /// One empty file per unit whose exit or kill was recorded, named `<job>-r<run>`.
    pub(crate) fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    /// The environments `ganga` had when it submitted, by content (`env/<hash>`).
    pub(crate) fn envs(&self) -> PathBuf {
        self.root.join("env")
    }

    pub(crate) fn runner_log(&self) -> PathBuf {
        self.root.join("runner.log")
    }
}

/// The queue's files, wherever the queue is (a unit's `queued` record names its queue).
#[derive(Debug, Clone)]
pub(crate) struct QueueDir {
    pub(crate) dir: PathBuf,
}

impl QueueDir {
    pub(crate) fn entry(&self, seq: u64) -> PathBuf {
        self.dir.join(seq.to_string())
    }

    pub(crate) fn claim(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq}.claim"))
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The first sequence number not yet reserved.
    pub(crate) fn next(&self) -> PathBuf {
        self.dir.join("next")
    }

    /// Every entry below it is written (or was taken away): runners look up to here.
    pub(crate) fn head(&self) -> PathBuf {
        self.dir.join("head")
    }
}

/// The two directories this backend owns in a unit's workspace. The workspace may hold
/// other things (the collected outputs, a master's subjob directories): they are never
/// touched.
#[derive(Debug, Clone)]
pub(crate) struct UnitDirs {
    pub(crate) control: PathBuf,
    pub(crate) work: PathBuf,
}

impl UnitDirs {
    pub(crate) fn new(workspace: &Path) -> UnitDirs {
        UnitDirs {
            control: workspace.join("local"),
            work: workspace.join("work"),
        }
    }

    /// A record of run `run`: `<kind>-<run>`.
    pub(crate) fn record(&self, kind: &str, run: u32) -> PathBuf {
        self.control.join(format!("{kind}-{run}"))
    }

    /// What `outputs` collected for run `run`.
    pub(crate) fn outputs_record(&self, run: u32) -> PathBuf {
        self.control.join(format!("outputs-{run}.json"))
    }
}

/// The name of a unit's event file.
pub(crate) fn event_name(job: ganga_core::JobRef, run: u32) -> String {
    format!("{job}-r{run}")
}

/// Creates a directory and its parents, private to the owner.
pub(crate) fn make_dir(dir: &Path) -> io::Result<()> {
    // As the process's umask allows: ganga's is the user's `[home] umask` (077, private,
    // unless configured otherwise).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o777)
        .create(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))
}
