//! Where things are: in a unit's workspace, and in the home.

use std::path::{Path, PathBuf};

/// The control directory inside a unit's workspace: its records and the wrapper's log. Named after the backend so that it never meets another's.
const CONTROL_DIR: &str = "batch";
/// The working directory inside a unit's workspace: input files, the program's files,
/// `stdout` and `stderr`.
const WORK_DIR: &str = "work";

pub(crate) const WRAPPER_LOG: &str = "wrapper.log";
pub(crate) const STARTED: &str = "started";
pub(crate) const EXIT: &str = "exit";
pub(crate) const KILLED: &str = "killed";

pub(crate) const STDOUT: &str = "stdout";
pub(crate) const STDERR: &str = "stderr";

/// The two directories this backend owns in a unit's workspace. The workspace holds
/// other things too (collected outputs, a master's subjob directories): never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitDirs {
    pub(crate) control: PathBuf,
    pub(crate) work: PathBuf,
}

impl UnitDirs {
    pub(crate) fn new(workspace: &Path) -> UnitDirs {
        UnitDirs {
            control: workspace.join(CONTROL_DIR),
            work: workspace.join(WORK_DIR),
        }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.control.join(name)
    }
}

/// The backend's directories in the ganga home.
#[derive(Debug, Clone)]
pub(crate) struct HomeDirs {
    /// Files a submit command needs only while it runs (scripts, submit descriptions).
    pub(crate) temp: PathBuf,
    /// Files jobs read when they start (HTCondor's wrappers), removed when old.
    pub(crate) keep: PathBuf,
}

impl HomeDirs {
    pub(crate) fn new(home: &Path) -> HomeDirs {
        let root = home.join("batch");
        HomeDirs {
            temp: root.join("tmp"),
            keep: root.join("scripts"),
        }
    }
}
