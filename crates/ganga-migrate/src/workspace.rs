//! Bringing a unit's outputs from Ganga's workspace
//! (`workspace/<user>/LocalXML/<id>[/<sjid>]/output/`) into ganga-rs's
//! (`<home>/workspace/<id>[/<sjid>]/output/`).
//!
//! Ganga's files are only read (copy) or linked to (link); they are never changed.

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::error::MigrateError;
use crate::report::WorkspaceReport;

/// How a migrated job's outputs are brought over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// Copy every file (the default: the two trees stay independent).
    #[default]
    Copy,
    /// Hard-link each file when both trees are on one filesystem, else copy it. Fast and
    /// takes no space, but the two names share one file: a change made to it in place
    /// through either is seen through both.
    Link,
    /// Leave the outputs where they are (the report lists none).
    None,
}

impl WorkspaceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceMode::Copy => "copy",
            WorkspaceMode::Link => "link",
            WorkspaceMode::None => "none",
        }
    }
}

/// Copies (or links) the tree `from` into `to`, which may exist from an earlier run: a file
/// already there with the same size is left alone. Symbolic links are recreated as links.
/// A directory is made only for something to put in it: Ganga leaves an output directory
/// for every subjob, most of them empty, and a migrated home should not hold thousands of
/// empty directories.
pub(crate) fn bring(
    from: &Path,
    to: &Path,
    mode: WorkspaceMode,
    report: &mut WorkspaceReport,
) -> Result<(), MigrateError> {
    let mut made = false;
    let entries = fs::read_dir(from).map_err(|e| MigrateError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| MigrateError::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(|e| MigrateError::io(&src, e))?;
        let write_err = |e: io::Error| MigrateError::Write {
            path: dst.clone(),
            source: e,
        };
        // A subdirectory makes its own (and `to` with it) when it has something.
        if !made && (meta.is_file() || meta.file_type().is_symlink()) {
            fs::create_dir_all(to).map_err(|e| MigrateError::Write {
                path: to.to_owned(),
                source: e,
            })?;
            made = true;
        }
        if meta.is_dir() {
            bring(&src, &dst, mode, report)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(|e| MigrateError::io(&src, e))?;
            if fs::symlink_metadata(&dst).is_ok() {
                report.files_present += 1;
                continue;
            }
            std::os::unix::fs::symlink(&target, &dst).map_err(write_err)?;
            report.files_copied += 1;
        } else if meta.is_file() {
            if let Ok(existing) = fs::symlink_metadata(&dst) {
                if existing.is_file() && existing.len() == meta.len() {
                    report.files_present += 1;
                    continue;
                }
                fs::remove_file(&dst).map_err(write_err)?;
            }
            let linked = mode == WorkspaceMode::Link && fs::hard_link(&src, &dst).is_ok();
            if linked {
                report.files_linked += 1;
            } else {
                fs::copy(&src, &dst).map_err(|e| {
                    if fs::metadata(&src).is_err() {
                        MigrateError::io(&src, e)
                    } else {
                        write_err(e)
                    }
                })?;
                report.files_copied += 1;
            }
            report.bytes += meta.len();
        }
        // Sockets, fifos, devices: nothing to bring.
    }
    Ok(())
}
