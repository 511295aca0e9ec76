//! Where each job's files live under the ganga home.

use std::path::{Path, PathBuf};

use crate::{JobId, JobRef};

/// The layout of job workspaces: `<root>/<id>/` for a job, `<root>/<id>/<index>/` for a
/// subjob, each with an `output/` directory for collected outputs. Backends may keep
/// anything else they need inside a (sub)job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspaces {
    root: PathBuf,
}

impl Workspaces {
    pub fn new(root: impl Into<PathBuf>) -> Workspaces {
        Workspaces { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a job and all its subjobs.
    pub fn job_dir(&self, id: JobId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The directory of one job or subjob.
    pub fn dir(&self, job: JobRef) -> PathBuf {
        let dir = self.job_dir(job.job);
        match job.subjob {
            Some(i) => dir.join(i.to_string()),
            None => dir,
        }
    }

    /// Where a job's or subjob's outputs are collected.
    pub fn output_dir(&self, job: JobRef) -> PathBuf {
        self.dir(job).join("output")
    }
}
