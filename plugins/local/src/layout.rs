//! Where a job's files are inside its workspace, and which relative paths are acceptable.

use std::path::{Component, Path, PathBuf};

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

/// Checks that `path` names something inside a directory: relative, not empty, and
/// without `..` (which could leave it).
pub(crate) fn check_inside(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    for c in Path::new(path).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is absolute"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_stay_inside() {
        assert!(check_inside("stdout").is_ok());
        assert!(check_inside("a/b.txt").is_ok());
        assert!(check_inside("./a").is_ok());
        assert!(check_inside("a..b").is_ok());
        assert!(check_inside("").is_err());
        assert!(check_inside("../x").is_err());
        assert!(check_inside("a/../../x").is_err());
        assert!(check_inside("/etc/passwd").is_err());
    }
}
