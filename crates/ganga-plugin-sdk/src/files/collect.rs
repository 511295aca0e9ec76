//! Collecting a working directory's outputs: matching patterns beneath it and copying
//! regular files and directories, and nothing else, into the output directory.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ganga_core::{OutputsReport, check_inside_workdir};
use rustix::fs::{AtFlags, Dir, FileType};

use super::FilesError;
use super::beneath::{Denied, Purpose, Root, file_type, show};

/// Deeper than this, a directory is not copied (a guard; real outputs are never this deep).
const MAX_DEPTH: usize = 64;
/// At most this many things left out are named one by one; the rest are counted.
const MAX_SKIPPED: usize = 50;

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

pub(crate) fn collect(
    workdir: &Path,
    patterns: &[String],
    output_dir: &Path,
) -> Result<OutputsReport, FilesError> {
    let root = Root::open(workdir).map_err(|source| FilesError::Workdir {
        dir: workdir.to_path_buf(),
        source,
    })?;
    make_dirs(output_dir)?;
    let mut run = Collection {
        root: &root,
        out: output_dir,
        collected: BTreeSet::new(),
        skipped: BTreeSet::new(),
        copied: HashSet::new(),
        walking: Vec::new(),
    };
    let mut unmatched = Vec::new();
    for pattern in patterns {
        let found = match check_inside_workdir(pattern) {
            Ok(()) => {
                let mut found = BTreeSet::new();
                let parts: Vec<&str> = pattern
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .collect();
                run.expand(Path::new(""), &parts, 0, &mut found);
                let mut any = false;
                for rel in found {
                    any |= run.take(&rel)?;
                }
                any
            }
            Err(e) => {
                run.skip(format!("pattern `{pattern}`"), e);
                false
            }
        };
        if !found {
            unmatched.push(pattern.clone());
        }
    }
    Ok(OutputsReport {
        collected: run.collected.into_iter().collect(),
        unmatched,
        skipped: capped(run.skipped),
    })
}

struct Collection<'a> {
    root: &'a Root,
    out: &'a Path,
    collected: BTreeSet<String>,
    skipped: BTreeSet<String>,
    /// Files already copied in this call (two patterns may match one file).
    copied: HashSet<PathBuf>,
    /// The directories being walked (device, inode), outermost first: a guard against
    /// loops (links to directories are not followed, but bind mounts can loop too).
    walking: Vec<(u64, u64)>,
}

/// One entry of a directory listing.
struct Entry {
    name: OsString,
    kind: FileType,
}

impl Collection<'_> {
    fn skip(&mut self, what: String, why: impl std::fmt::Display) {
        self.skipped.insert(format!("{what}: {why}"));
    }

    /// Adds to `found` the paths beneath `base` that the pattern components `parts`
    /// match. Like the shell, `*` does not match `/` or a leading `.`; `**` matches any
    /// number of directories, but never descends into a link (it could loop).
    fn expand(&mut self, base: &Path, parts: &[&str], depth: usize, found: &mut BTreeSet<PathBuf>) {
        let Some((first, rest)) = parts.split_first() else {
            if !base.as_os_str().is_empty() {
                found.insert(base.to_path_buf());
            }
            return;
        };
        if depth > MAX_DEPTH {
            self.skip(show(base), "nested too deeply to look further");
            return;
        }
        if *first == "**" {
            // No directory at all, then one more level (with `**` still to match).
            let rest_or_all: &[&str] = if rest.is_empty() { &["*"] } else { rest };
            self.expand(base, rest_or_all, depth + 1, found);
            for entry in self.list(base) {
                if entry.kind == FileType::Directory
                    && !entry.name.as_encoded_bytes().starts_with(b".")
                {
                    self.expand(&base.join(&entry.name), parts, depth + 1, found);
                }
            }
        } else if !first.contains(['*', '?', '[']) {
            let path = base.join(first);
            if self.root.kind_of_link(&path).is_some() {
                self.expand(&path, rest, depth + 1, found);
            } else if !rest.is_empty() {
                // A directory on the way that does not exist, or cannot be entered
                // beneath the working directory (say so: it may be a link out of it).
                self.note_unreachable(&path);
            }
        } else {
            let pattern = match glob::Pattern::new(first) {
                Ok(p) => p,
                Err(e) => {
                    self.skip(format!("pattern component `{first}`"), e);
                    return;
                }
            };
            for entry in self.list(base) {
                let name = entry.name.to_string_lossy();
                if pattern.matches_with(&name, MATCH) {
                    self.expand(&base.join(&entry.name), rest, depth + 1, found);
                }
            }
        }
    }

    /// The entries of directory `rel` beneath the root; nothing if it cannot be listed
    /// (and a note if that is because it leads out of the working directory).
    fn list(&mut self, rel: &Path) -> Vec<Entry> {
        let fd = match self.root.open_beneath(rel, Purpose::List) {
            Ok(fd) => fd,
            Err(Denied::Missing | Denied::NotDir) => return Vec::new(),
            Err(denied) => {
                self.note_denied(rel, denied);
                return Vec::new();
            }
        };
        let dir = match Dir::read_from(&fd) {
            Ok(dir) => dir,
            Err(e) => {
                self.skip(show(rel), format!("cannot list it: {}", io::Error::from(e)));
                return Vec::new();
            }
        };
        let mut entries = Vec::new();
        for entry in dir {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.skip(show(rel), format!("cannot list it: {}", io::Error::from(e)));
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsString::from(std::ffi::OsStr::from_bytes(name));
            let kind = match entry.file_type() {
                FileType::Unknown => rustix::fs::statat(&fd, &*name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode)),
                kind => kind,
            };
            entries.push(Entry { name, kind });
        }
        entries
    }

    fn note_unreachable(&mut self, rel: &Path) {
        if let Err(denied) = self.root.open_beneath(rel, Purpose::Look)
            && !matches!(denied, Denied::Missing | Denied::NotDir)
        {
            self.note_denied(rel, denied);
        }
    }

    fn note_denied(&mut self, rel: &Path, denied: Denied) {
        let why = match denied {
            Denied::Escapes => {
                "a symbolic link leading out of the working directory (not followed)".to_owned()
            }
            Denied::Link => {
                "a symbolic link (not followed: this kernel cannot resolve links safely)".to_owned()
            }
            Denied::Loop => "a loop of symbolic links".to_owned(),
            Denied::Missing => {
                if self.root.kind_of_link(rel) == Some(FileType::Symlink) {
                    "a dangling symbolic link".to_owned()
                } else {
                    // It vanished while we looked: nothing to say.
                    return;
                }
            }
            Denied::NotDir => "not a directory".to_owned(),
            Denied::Io(e) => format!("cannot open it: {e}"),
        };
        self.skip(show(rel), why);
    }

    /// Collects one matched path. `Ok(true)` if it is a regular file or a directory
    /// beneath the working directory (the pattern matched something), `Ok(false)` if it
    /// was left out (and noted). `Err` only when the output directory cannot be written.
    fn take(&mut self, rel: &Path) -> Result<bool, FilesError> {
        match self.root.open_beneath(rel, Purpose::Look) {
            Ok(fd) => match file_type(&fd) {
                Ok(FileType::RegularFile) => {
                    self.copy_file(rel)?;
                    Ok(true)
                }
                Ok(FileType::Directory) => {
                    if self.is_link_to_ancestor(rel, &fd) {
                        self.skip(show(rel), "a link to a directory that contains it (a loop)");
                        return Ok(false);
                    }
                    drop(fd);
                    self.copy_dir(rel, 0)?;
                    Ok(true)
                }
                Ok(kind) => {
                    self.skip(show(rel), left_out(kind));
                    Ok(false)
                }
                Err(e) => {
                    self.skip(show(rel), format!("cannot look at it: {e}"));
                    Ok(false)
                }
            },
            Err(denied) => {
                self.note_denied(rel, denied);
                Ok(false)
            }
        }
    }

    /// Whether `rel` is a link to the working directory or to a directory on the way to
    /// the link itself: copying it would copy the tree into itself once more.
    fn is_link_to_ancestor(&self, rel: &Path, target: &OwnedFd) -> bool {
        if self.root.kind_of_link(rel) != Some(FileType::Symlink) {
            return false;
        }
        let Ok(target) = rustix::fs::fstat(target) else {
            return true;
        };
        rel.ancestors().skip(1).any(|dir| {
            self.root
                .open_beneath(dir, Purpose::Look)
                .ok()
                .and_then(|fd| rustix::fs::fstat(&fd).ok())
                .is_some_and(|st| (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino))
        })
    }

    fn copy_file(&mut self, rel: &Path) -> Result<(), FilesError> {
        if self.copied.contains(rel) {
            return Ok(());
        }
        let fd = match self.root.open_beneath(rel, Purpose::Read) {
            Ok(fd) => fd,
            Err(denied) => {
                self.note_denied(rel, denied);
                return Ok(());
            }
        };
        // Looked at before, but it may have been replaced since: look again.
        let stat = match rustix::fs::fstat(&fd) {
            Ok(stat) => stat,
            Err(e) => {
                self.skip(
                    show(rel),
                    format!("cannot look at it: {}", io::Error::from(e)),
                );
                return Ok(());
            }
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            self.skip(show(rel), left_out(kind));
            return Ok(());
        }
        let dest = self.out.join(rel);
        if let Some(parent) = dest.parent() {
            make_dirs(parent)?;
        }
        clear_destination(&dest)?;
        // The job's own permissions, as the process's umask allows (ganga's is the user's
        // `[home] umask`: private unless configured otherwise).
        let mode = stat.st_mode & 0o777;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&dest)
            .map_err(|source| FilesError::Io {
                path: dest.clone(),
                source,
            })?;
        let mut from = File::from(fd);
        if let Err(e) = io::copy(&mut from, &mut to) {
            drop(to);
            let _ = fs::remove_file(&dest);
            // A read error is this file's problem; a write error is the output
            // directory's, and every later file would meet it too.
            return match e.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Err(FilesError::Io {
                    path: dest,
                    source: e,
                }),
                _ => {
                    self.skip(show(rel), format!("cannot copy it: {e}"));
                    Ok(())
                }
            };
        }
        self.copied.insert(rel.to_path_buf());
        self.collected.insert(show(rel));
        Ok(())
    }

    fn copy_dir(&mut self, rel: &Path, depth: usize) -> Result<(), FilesError> {
        if depth > MAX_DEPTH {
            self.skip(show(rel), "nested too deeply to copy");
            return Ok(());
        }
        let fd = match self.root.open_beneath(rel, Purpose::List) {
            Ok(fd) => fd,
            Err(denied) => {
                self.note_denied(rel, denied);
                return Ok(());
            }
        };
        let id = match rustix::fs::fstat(&fd) {
            Ok(st) => (st.st_dev, st.st_ino),
            Err(e) => {
                self.skip(
                    show(rel),
                    format!("cannot look at it: {}", io::Error::from(e)),
                );
                return Ok(());
            }
        };
        drop(fd);
        if self.walking.contains(&id) {
            self.skip(show(rel), "a directory inside itself (a loop)");
            return Ok(());
        }
        make_dirs(&self.out.join(rel))?;
        self.walking.push(id);
        let copied = self.copy_entries(rel, depth);
        self.walking.pop();
        copied
    }

    fn copy_entries(&mut self, rel: &Path, depth: usize) -> Result<(), FilesError> {
        // The listing is read whole first, so that at most one directory is open at a
        // time however deep the tree.
        for entry in self.list(rel) {
            let child = rel.join(&entry.name);
            match entry.kind {
                FileType::Directory => self.copy_dir(&child, depth + 1)?,
                FileType::RegularFile => self.copy_file(&child)?,
                FileType::Symlink => match self.root.open_beneath(&child, Purpose::Look) {
                    Ok(fd) => match file_type(&fd) {
                        Ok(FileType::RegularFile) => self.copy_file(&child)?,
                        Ok(FileType::Directory) => {
                            self.skip(show(&child), "a link to a directory (not followed)");
                        }
                        Ok(kind) => self.skip(show(&child), left_out(kind)),
                        Err(e) => self.skip(show(&child), format!("cannot look at it: {e}")),
                    },
                    Err(denied) => self.note_denied(&child, denied),
                },
                kind => self.skip(show(&child), left_out(kind)),
            }
        }
        Ok(())
    }
}

/// Why something that is not a regular file or a directory was left out.
fn left_out(kind: FileType) -> String {
    let what = match kind {
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        _ => "of an unknown kind",
    };
    format!("{what} (only regular files and directories are collected)")
}

/// Creates a directory and its parents, as the process's umask allows.
fn make_dirs(dir: &Path) -> Result<(), FilesError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o777)
        .create(dir)
        .map_err(|source| FilesError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Removes what a previous collection left at `dest` (a file, or a link someone put
/// there), so that the copy is a new file and never written through a link.
fn clear_destination(dest: &Path) -> Result<(), FilesError> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(FilesError::Io {
            path: dest.to_path_buf(),
            source: io::Error::other("a directory is in the way of a file of the same name"),
        }),
        Ok(_) => fs::remove_file(dest).map_err(|source| FilesError::Io {
            path: dest.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FilesError::Io {
            path: dest.to_path_buf(),
            source,
        }),
    }
}

/// The notes, at most [`MAX_SKIPPED`] of them and a count of the rest.
fn capped(skipped: BTreeSet<String>) -> Vec<String> {
    let total = skipped.len();
    let mut list: Vec<String> = skipped.into_iter().take(MAX_SKIPPED).collect();
    if total > MAX_SKIPPED {
        list.push(format!("and {} more left out", total - MAX_SKIPPED));
    }
    list
}
