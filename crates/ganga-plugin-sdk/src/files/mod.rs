//! A unit's working directory, read safely: collecting outputs ([`collect`]), showing the
//! end of a file ([`tail`]) and removing the directory ([`remove_tree`]), for any backend
//! whose jobs leave their files in a directory this machine can read.
//!
//! A working directory is written by the job, so nothing in it is trusted:
//!
//! - **Paths are resolved beneath the directory.** A symbolic link that stays inside is
//!   followed; one that leads out (`ln -s /etc link`, `ln -s ../../secret s`) is not, and
//!   what it would have given is reported as left out. The kernel does the resolution
//!   (`openat2` with `RESOLVE_BENEATH`, Linux 5.6 and later); on older kernels no link is
//!   followed at all. A working directory that is itself a link is refused.
//! - **Only regular files and directories are read.** A FIFO, a socket or a device that a
//!   pattern matches is reported and skipped, never opened for reading (a FIFO would
//!   block the caller, and with it every other unit). Files are opened non-blocking.
//! - **Nothing loops.** Inside a collected directory, links to directories are not
//!   followed, `**` never descends into a link, and depth is bounded.
//! - **What was left out is said**, in [`OutputsReport::skipped`], so that the unit's
//!   reason can name it.
//! - **Reading a file's end reads only its end**, whatever its size.
//!
//! Copies are private to the owner (directories `0700`, files `0600`, keeping the owner's
//! execute bit).
//!
//! It is not: a transfer tool for remote files, or a sandbox for the job itself (a job can
//! still write anywhere its user can).
//!
//! ```no_run
//! use std::path::Path;
//! use ganga_plugin_sdk::files;
//!
//! let work = Path::new("/data/ganga/workspace/12/3/work");
//! // The patterns of the job, and the unit's stdout and stderr if they are there.
//! let mut patterns = vec!["*.root".to_owned()];
//! patterns.extend(["stdout".to_owned(), "stderr".to_owned()]);
//! let mut report = files::collect(work, &patterns, Path::new("/data/ganga/workspace/12/3/output"))?;
//! report.unmatched.retain(|p| p != "stdout" && p != "stderr");
//! let last_kib = files::tail(work, "stdout", 1024)?;
//! # Ok::<(), files::FilesError>(())
//! ```

mod beneath;
mod collect;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ganga_core::{OutputsReport, check_inside_workdir};
use rustix::fs::FileType;

use self::beneath::{Denied, Purpose, Root};

/// Why a file of a working directory could not be read, or outputs not collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The path given leaves the working directory: by its text (`..`, absolute), or
    /// through a symbolic link that leads out.
    #[error("`{path}` is not inside the working directory: {reason}")]
    Outside { path: String, reason: String },
    #[error("`{path}` does not exist in {}", dir.display())]
    NotFound { path: String, dir: PathBuf },
    /// It exists but is not a regular file (a directory, a FIFO...).
    #[error("`{path}` is {kind}, not a regular file")]
    NotAFile { path: String, kind: &'static str },
    /// The working directory itself cannot be opened (missing, or not a directory: a
    /// link in its place is refused too).
    #[error("cannot open the working directory {}: {source}", dir.display())]
    Workdir { dir: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Copies into `output_dir` what each pattern matches in `workdir`: regular files, and
/// directories with the regular files in them, at the same relative paths.
///
/// Patterns are relative glob patterns (`*.root`, `sub/*.txt`, `logs/**/*.log`); like the
/// shell's, `*` matches neither `/` nor a leading `.`. A pattern is `unmatched` when
/// nothing it matches is a regular file or a directory beneath `workdir` (what it matched
/// but left out is in `skipped`, with the reason). Can be called again: files are copied
/// afresh, replacing earlier copies.
///
/// `Err` only when nothing can be collected at all (the working directory cannot be
/// opened) or the output directory cannot be written; everything about single files is in
/// the report.
pub fn collect(
    workdir: &Path,
    patterns: &[String],
    output_dir: &Path,
) -> Result<OutputsReport, FilesError> {
    collect::collect(workdir, patterns, output_dir)
}

/// The last `max_bytes` bytes (at most) of the regular file `path`, relative to
/// `workdir`, reading only those bytes. The caller bounds `max_bytes`: that much is
/// allocated when the file is as large.
pub fn tail(workdir: &Path, path: &str, max_bytes: u64) -> Result<Vec<u8>, FilesError> {
    check_inside_workdir(path).map_err(|reason| FilesError::Outside {
        path: path.to_owned(),
        reason,
    })?;
    let root = Root::open(workdir).map_err(|source| FilesError::Workdir {
        dir: workdir.to_path_buf(),
        source,
    })?;
    let fd = root
        .open_beneath(Path::new(path), Purpose::Read)
        .map_err(|denied| denied_error(&root, path, denied))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| FilesError::Io {
        path: workdir.join(path),
        source: e.into(),
    })?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(FilesError::NotAFile {
            path: path.to_owned(),
            kind: kind_name(kind),
        });
    }
    let len = u64::try_from(stat.st_size).unwrap_or(0);
    let n = len.min(max_bytes);
    let io_error = |source| FilesError::Io {
        path: workdir.join(path),
        source,
    };
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(len - n)).map_err(io_error)?;
    let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    file.take(n).read_to_end(&mut buf).map_err(io_error)?;
    Ok(buf)
}

/// Removes the directory `dir` and everything in it, so that an interrupted removal is
/// never mistaken for the directory: `dir` is first renamed to a sibling
/// `.<name>.removing`, then that is deleted. Calling it again finishes a removal a crash
/// cut short (and does nothing when both are gone). Links inside are removed, never
/// followed.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let name = dir.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no name to rename", dir.display()),
        )
    })?;
    let mut aside_name = std::ffi::OsString::from(".");
    aside_name.push(name);
    aside_name.push(".removing");
    let aside = dir.with_file_name(aside_name);
    remove_if_there(&aside)?;
    match std::fs::rename(dir, &aside) {
        Ok(()) => remove_if_there(&aside),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot move {} aside: {e}", dir.display()),
        )),
    }
}

fn remove_if_there(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", dir.display()),
        )),
    }
}

fn denied_error(root: &Root, path: &str, denied: Denied) -> FilesError {
    let outside = |reason: &str| FilesError::Outside {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    match denied {
        Denied::Escapes => outside("a symbolic link on the way leads out of it"),
        Denied::Link => outside("symbolic links are not followed on this kernel"),
        Denied::Loop => outside("symbolic links on the way loop"),
        Denied::Missing | Denied::NotDir => FilesError::NotFound {
            path: path.to_owned(),
            dir: root.path().to_path_buf(),
        },
        Denied::Io(source) => FilesError::Io {
            path: root.path().join(path),
            source,
        },
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        _ => "of an unknown kind",
    }
}

#[cfg(test)]
mod tests;
