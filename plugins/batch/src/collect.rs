//! Reading a unit's files: collecting its outputs once it ended, peeking while it runs.
//!
//! The working directory is the job's: anything in it may be a link to elsewhere, a FIFO
//! that would block a reader forever, or change while it is read. So only regular files
//! are read, each opened without blocking and checked after it is open, and a link is
//! followed only if it resolves inside the working directory. What is left out is said
//! (`skipped`), never silently dropped.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use ganga_core::{OutputsReport, PeekFile, check_inside_workdir};

use crate::layout::{STDERR, STDOUT};

/// `peek` never returns more than this, whatever it is asked for.
const PEEK_CAP: u64 = 64 * 1024 * 1024;

/// Copies what `patterns` match in `work` (files, or directories with their contents; `*`
/// does not match `/` or a leading `.`), and `stdout` and `stderr`, into `output_dir`.
/// Idempotent: a second call copies the same files again and answers the same.
pub(crate) fn collect_outputs(
    work: &Path,
    output_dir: &Path,
    patterns: &[String],
) -> Result<OutputsReport, String> {
    if fs::symlink_metadata(work).is_err() {
        // It never started (the wrapper makes the directory): nothing to collect.
        return Ok(OutputsReport {
            collected: Vec::new(),
            unmatched: patterns.to_vec(),
            skipped: vec![format!(
                "its working directory {} does not exist: it never ran",
                work.display()
            )],
        });
    }
    let root = work
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", work.display()))?;
    fs::create_dir_all(output_dir)
        .map_err(|e| format!("cannot create {}: {e}", output_dir.display()))?;
    let mut c = Collector {
        root: &root,
        out: output_dir,
        collected: BTreeSet::new(),
        skipped: BTreeSet::new(),
    };
    let mut unmatched = Vec::new();
    for pattern in patterns {
        let found = matches(&root, pattern).unwrap_or_else(|e| {
            c.skipped.insert(format!("pattern `{pattern}`: {e}"));
            Vec::new()
        });
        if found.is_empty() {
            unmatched.push(pattern.clone());
        }
        for rel in found {
            c.take(&rel)?;
        }
    }
    for name in [STDOUT, STDERR] {
        if fs::symlink_metadata(root.join(name)).is_ok() {
            c.take(Path::new(name))?;
        }
    }
    Ok(OutputsReport {
        collected: c.collected.into_iter().collect(),
        unmatched,
        skipped: c.skipped.into_iter().collect(),
    })
}

struct Collector<'a> {
    /// The working directory, resolved.
    root: &'a Path,
    out: &'a Path,
    collected: BTreeSet<String>,
    skipped: BTreeSet<String>,
}

impl Collector<'_> {
    /// Copies `root/rel` (a file, or a directory and what is in it) to `out/rel`.
    fn take(&mut self, rel: &Path) -> Result<(), String> {
        let from = self.root.join(rel);
        let name = name_of(rel);
        let meta = match fs::symlink_metadata(&from) {
            Ok(m) => m,
            Err(e) => {
                self.skipped.insert(format!("{name}: {e}"));
                return Ok(());
            }
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            match resolve_inside(self.root, &from) {
                Ok(target) if target.is_dir() => {
                    self.skipped
                        .insert(format!("{name}: a link to a directory (not followed)"));
                }
                Ok(_) => self.copy_file(&from, rel)?,
                Err(why) => {
                    self.skipped.insert(format!("{name}: {why}"));
                }
            }
        } else if kind.is_dir() {
            let entries =
                fs::read_dir(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
            let mut names: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for entry in names {
                self.take(&rel.join(entry))?;
            }
        } else if kind.is_file() {
            self.copy_file(&from, rel)?;
        } else {
            self.skipped
                .insert(format!("{name}: not a regular file ({})", describe(&kind)));
        }
        Ok(())
    }

    fn copy_file(&mut self, from: &Path, rel: &Path) -> Result<(), String> {
        let name = name_of(rel);
        let mut src = match open_regular(from) {
            Ok(f) => f,
            Err(e) => {
                self.skipped.insert(format!("{name}: {e}"));
                return Ok(());
            }
        };
        let to = self.out.join(rel);
        let fail =
            |e: io::Error| format!("cannot copy {} to {}: {e}", from.display(), to.display());
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        // A link planted where the copy goes would redirect the write: replace it.
        if fs::symlink_metadata(&to).is_ok_and(|m| !m.is_file()) {
            let _ = fs::remove_file(&to);
        }
        let mut dst = File::create(&to).map_err(fail)?;
        io::copy(&mut src, &mut dst).map_err(fail)?;
        self.collected.insert(name);
        Ok(())
    }
}

/// Opens a regular file for reading without blocking on a FIFO, and checks what was
/// opened (the name may have been swapped since it was looked at).
fn open_regular(path: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({})",
            describe(&meta.file_type())
        ));
    }
    Ok(file)
}

/// Where a link inside `root` leads, if that is inside `root` too.
fn resolve_inside(root: &Path, link: &Path) -> Result<PathBuf, String> {
    let target = link
        .canonicalize()
        .map_err(|e| format!("a link that leads nowhere ({e})"))?;
    if target.starts_with(root) {
        Ok(target)
    } else {
        Err("a link leading out of the working directory".to_owned())
    }
}

fn describe(kind: &fs::FileType) -> &'static str {
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a link"
    } else {
        "not a regular file"
    }
}

/// The paths, relative to `root`, that `pattern` matches there.
fn matches(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    check_inside_workdir(pattern)?;
    let base = root
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", root.display()))?;
    let full = format!("{}/{pattern}", glob::Pattern::escape(base));
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut found = Vec::new();
    for entry in glob::glob_with(&full, options).map_err(|e| e.to_string())? {
        let Ok(path) = entry else { continue };
        if let Ok(rel) = path.strip_prefix(root) {
            let rel: PathBuf = rel
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            if !rel.as_os_str().is_empty() {
                found.push(rel);
            }
        }
    }
    Ok(found)
}

fn name_of(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The last `max_bytes` of a unit's `stdout`, `stderr` or a file of its working
/// directory. Before the unit started, stdout and stderr are empty.
pub(crate) fn peek(work: &Path, file: &PeekFile, max_bytes: u64) -> Result<Vec<u8>, String> {
    let (rel, missing_is_empty) = match file {
        PeekFile::Stdout => (STDOUT, true),
        PeekFile::Stderr => (STDERR, true),
        PeekFile::Path(p) => {
            check_inside_workdir(p).map_err(|e| {
                format!("cannot peek at {e}: only files inside the working directory can be read")
            })?;
            (p.as_str(), false)
        }
    };
    let path = work.join(rel);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && missing_is_empty => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("{rel} does not exist in {}", work.display()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        Ok(_) => {}
    }
    let root = work
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", work.display()))?;
    resolve_inside(&root, &path).map_err(|e| format!("cannot peek at {rel}: {e}"))?;
    let mut f = open_regular(&path).map_err(|e| format!("cannot peek at {rel}: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let n = len.min(max_bytes.min(PEEK_CAP));
    f.seek(SeekFrom::Start(len - n))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    f.take(n)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let work = dir.path().join("work");
        let out = dir.path().join("out");
        fs::create_dir_all(work.join("sub")).expect("created");
        fs::write(work.join("a.txt"), "a").expect("written");
        fs::write(work.join("sub/b.txt"), "b").expect("written");
        fs::write(work.join("stdout"), "out").expect("written");
        fs::write(dir.path().join("secret"), "SECRET").expect("written");
        (dir, work, out)
    }

    #[test]
    fn files_and_directories_are_copied_and_repeating_is_harmless() {
        let (_dir, work, out) = setup();
        let patterns = vec!["*.txt".to_owned(), "sub".to_owned(), "none-*".to_owned()];
        let first = collect_outputs(&work, &out, &patterns).expect("collected");
        assert_eq!(first.collected, ["a.txt", "stdout", "sub/b.txt"]);
        assert_eq!(first.unmatched, ["none-*"]);
        assert!(first.skipped.is_empty());
        assert_eq!(
            fs::read_to_string(out.join("sub/b.txt")).expect("copied"),
            "b"
        );
        assert_eq!(collect_outputs(&work, &out, &patterns), Ok(first));
    }

    #[test]
    fn links_out_and_special_files_are_skipped_and_said() {
        let (dir, work, out) = setup();
        symlink(dir.path().join("secret"), work.join("leak.txt")).expect("link");
        symlink(work.join("a.txt"), work.join("alias.txt")).expect("link");
        let fifo = work.join("pipe.txt");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("no NUL");
        // SAFETY: mkfifo only reads the NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let report = collect_outputs(&work, &out, &["*.txt".to_owned()]).expect("collected");
        assert_eq!(report.collected, ["a.txt", "alias.txt", "stdout"]);
        assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.starts_with("leak.txt: a link leading out"))
        );
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.starts_with("pipe.txt: not a regular file (a FIFO)"))
        );
        assert!(!out.join("leak.txt").exists());
        assert_eq!(
            fs::read_to_string(out.join("alias.txt")).expect("copied"),
            "a"
        );
    }

    #[test]
    fn a_unit_that_never_ran_has_nothing_to_collect() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let work = dir.path().join("work");
        let report = collect_outputs(&work, &dir.path().join("out"), &["*.txt".to_owned()])
            .expect("an answer");
        assert_eq!(report.unmatched, ["*.txt"]);
        assert!(report.collected.is_empty());
        assert_eq!(report.skipped.len(), 1);
    }

    #[test]
    fn patterns_that_leave_match_nothing() {
        let (_dir, work, out) = setup();
        let report = collect_outputs(
            &work,
            &out,
            &["../secret".to_owned(), "/etc/passwd".to_owned()],
        )
        .expect("collected");
        assert_eq!(report.unmatched.len(), 2);
        assert!(!out.join("secret").exists());
    }

    #[test]
    fn peeking() {
        let (dir, work, _out) = setup();
        assert_eq!(peek(&work, &PeekFile::Stdout, 2), Ok(b"ut".to_vec()));
        assert_eq!(peek(&work, &PeekFile::Stderr, 10), Ok(Vec::new()));
        assert_eq!(
            peek(&work, &PeekFile::Path("sub/b.txt".into()), 10),
            Ok(b"b".to_vec())
        );
        symlink(dir.path().join("secret"), work.join("leak")).expect("link");
        for bad in ["../secret", "/etc/passwd", "leak", "missing"] {
            assert!(
                peek(&work, &PeekFile::Path(bad.into()), 10).is_err(),
                "{bad}"
            );
        }
    }
}
