//! Opening paths beneath a directory, never through a symbolic link that leads out of it.
//!
//! With `openat2(2)` (Linux 5.6 and later) the kernel resolves the path with
//! `RESOLVE_BENEATH`: links that stay inside the directory are followed, links out of it
//! (absolute, or with too many `..`) fail with `EXDEV`. Where the kernel has no `openat2`,
//! the path is walked one component at a time with `O_NOFOLLOW`, and no link is followed
//! at all: stricter, never wider.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Set once `openat2` answered `ENOSYS`: this kernel does not have it.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// How many times a resolution that raced with a rename is tried again.
const RACE_RETRIES: usize = 8;

/// What a path beneath the root is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Only to learn what it is (`O_PATH`): opens FIFOs and devices without touching them.
    Look,
    /// To read a regular file. Non-blocking, so that a FIFO put in its place after a look
    /// cannot block the reader; the caller checks the type again on the descriptor.
    Read,
    /// To list a directory.
    List,
}

impl Purpose {
    fn flags(self) -> OFlags {
        let base = OFlags::CLOEXEC | OFlags::NOCTTY;
        match self {
            // openat2 refuses O_PATH with any flag but these.
            Purpose::Look => OFlags::CLOEXEC | OFlags::PATH,
            Purpose::Read => base | OFlags::RDONLY | OFlags::NONBLOCK,
            Purpose::List => base | OFlags::RDONLY | OFlags::DIRECTORY,
        }
    }
}

/// Why a path could not be opened beneath the root.
#[derive(Debug)]
pub(crate) enum Denied {
    /// A symbolic link on the way leads out of the directory.
    Escapes,
    /// A symbolic link that is not followed (a kernel without `openat2`).
    Link,
    /// Symbolic links that loop, or too many of them.
    Loop,
    /// Nothing there (or a dangling link).
    Missing,
    /// A component on the way is not a directory.
    NotDir,
    Io(std::io::Error),
}

impl Denied {
    fn from_errno(e: Errno) -> Denied {
        match e {
            Errno::XDEV => Denied::Escapes,
            Errno::LOOP => Denied::Loop,
            Errno::NOENT => Denied::Missing,
            Errno::NOTDIR => Denied::NotDir,
            e => Denied::Io(e.into()),
        }
    }
}

/// A directory, held open, that paths are resolved beneath.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `dir` itself without following a link in its last component: a working
    /// directory replaced by a link (to `/etc`, say) is refused, not read through.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: dir.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (relative, no `..`: the caller checked) beneath the root.
    pub(crate) fn open_beneath(&self, rel: &Path, purpose: Purpose) -> Result<OwnedFd, Denied> {
        if rel.as_os_str().is_empty() {
            return rustix::fs::openat(&self.fd, ".", purpose.flags(), Mode::empty())
                .map_err(Denied::from_errno);
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            for _ in 0..RACE_RETRIES {
                match rustix::fs::openat2(&self.fd, rel, purpose.flags(), Mode::empty(), resolve) {
                    Ok(fd) => return Ok(fd),
                    // The kernel saw a rename race and wants the lookup done again.
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(Denied::from_errno(e)),
                }
            }
            if !NO_OPENAT2.load(Ordering::Relaxed) {
                return Err(Denied::Io(std::io::Error::other(
                    "the path kept changing while it was opened",
                )));
            }
        }
        walk_without_links(self.fd.as_fd(), rel, purpose)
    }

    /// What `rel` itself is, without following it if it is a link (`lstat` beneath the
    /// root: the components before the last are resolved as [`Root::open_beneath`] does).
    pub(crate) fn kind_of_link(&self, rel: &Path) -> Option<FileType> {
        let (parent, name) = split_last(rel)?;
        let dir = self.open_beneath(parent, Purpose::Look).ok()?;
        rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }
}

/// The parent and the last component of a relative path.
fn split_last(rel: &Path) -> Option<(&Path, &OsStr)> {
    let name = rel.file_name()?;
    Some((rel.parent().unwrap_or(Path::new("")), name))
}

/// Resolution without `openat2`: every component is opened with `O_NOFOLLOW`, so a link
/// anywhere on the way is refused. Also used by tests, to cover kernels without `openat2`.
pub(crate) fn walk_without_links(
    root: BorrowedFd<'_>,
    rel: &Path,
    purpose: Purpose,
) -> Result<OwnedFd, Denied> {
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return rustix::fs::openat(root, ".", purpose.flags(), Mode::empty())
            .map_err(Denied::from_errno);
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let at = current.as_ref().map_or(root, |fd| fd.as_fd());
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // O_DIRECTORY|O_NOFOLLOW on a link gives ENOTDIR: say what it is.
            Errno::NOTDIR if is_link(at, part) => Denied::Link,
            e => Denied::from_errno(e),
        })?;
        current = Some(next);
    }
    let at = current.as_ref().map_or(root, |fd| fd.as_fd());
    let fd = rustix::fs::openat(at, *last, purpose.flags() | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| match e {
            Errno::LOOP => Denied::Link,
            Errno::NOTDIR if is_link(at, last) => Denied::Link,
            e => Denied::from_errno(e),
        })?;
    // With O_PATH|O_NOFOLLOW a link is opened itself rather than refused.
    if purpose == Purpose::Look && file_type(&fd).is_ok_and(|t| t == FileType::Symlink) {
        return Err(Denied::Link);
    }
    Ok(fd)
}

fn is_link(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// The type of an open file.
pub(crate) fn file_type(fd: &OwnedFd) -> std::io::Result<FileType> {
    Ok(FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode))
}

/// A file name as text, for reports (not valid UTF-8: replaced characters).
pub(crate) fn show(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(String::from_utf8_lossy(p.as_bytes()).into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
}
