//! Where a job's files are inside its workspace.

use std::path::{Path, PathBuf};

/// The control directory, inside the workspace: the wrapper and its records.
const CONTROL_DIR: &str = "local";
/// The working directory, inside the workspace: the program's files.
const WORK_DIR: &str = "work";

pub(crate) const WRAPPER: &str = "wrapper.sh";
pub(crate) const WRAPPER_LOG: &str = "wrapper.log";
pub(crate) const LAUNCH: &str = "launch";
pub(crate) const STARTED: &str = "started";
pub(crate) const EXIT: &str = "exit";
pub(crate) const KILLED: &str = "killed";
pub(crate) const OUTPUTS: &str = "outputs.json";

pub(crate) const STDOUT: &str = "stdout";
pub(crate) const STDERR: &str = "stderr";

/// The two directories this backend owns in a (sub)job's workspace. The workspace may hold
/// other things (the collected outputs, a master's subjob directories): they are never
/// touched.
#[derive(Debug, Clone)]
pub(crate) struct JobDirs {
    pub(crate) control: PathBuf,
    pub(crate) work: PathBuf,
}

impl JobDirs {
    pub(crate) fn new(workspace: &Path) -> JobDirs {
        JobDirs {
            control: workspace.join(CONTROL_DIR),
            work: workspace.join(WORK_DIR),
        }
    }

    pub(crate) fn control_file(&self, name: &str) -> PathBuf {
        self.control.join(name)
    }
}
