//! A gangadir on disk, read-only: its users, registries, object directories, `data` files
//! (with Ganga's `data~` fallback), session files and job tree folders.
//!
//! Nothing here creates, changes or removes a file: every access is `read_dir`,
//! `metadata` or a read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::MigrateError;
use crate::pyliteral::PyValue;
use crate::xml::{self, Object};

/// The repository layout version this tool reads (`repository/<user>/LocalXML/6.0`).
pub(crate) const LAYOUT: &str = "6.0";

/// A session file touched more recently than this means Ganga is probably running
/// (Ganga touches it about every 15 s and reaps sessions after 45 s without a touch).
pub(crate) const SESSION_FRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub(crate) struct Gangadir {
    /// As given, made absolute and canonical.
    pub(crate) root: PathBuf,
    pub(crate) users: Vec<UserRepo>,
    /// Repository directories that are not a `LocalXML/6.0` layout: (path, why skipped).
    pub(crate) unsupported: Vec<(PathBuf, String)>,
}

/// One user's repository and workspace in a gangadir.
#[derive(Debug, Clone)]
pub(crate) struct UserRepo {
    pub(crate) user: String,
    /// `repository/<user>/LocalXML/6.0`
    pub(crate) repo: PathBuf,
    /// `workspace/<user>/LocalXML`
    pub(crate) workspace: PathBuf,
    /// `shared/<user>`
    pub(crate) shared: PathBuf,
}

/// One object directory of a registry: `<registry>/<k>xxx/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
}

/// A parsed object, and whether it came from `data~` because `data` was unreadable.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) object: Object,
    /// Why `data` could not be used, when `data~` was.
    pub(crate) fell_back: Option<String>,
}

impl Gangadir {
    pub(crate) fn open(path: &Path) -> Result<Gangadir, MigrateError> {
        let root = fs::canonicalize(path).map_err(|e| MigrateError::io(path, e))?;
        let repository = root.join("repository");
        let mut users = Vec::new();
        let mut unsupported = Vec::new();
        let user_dirs = match sorted_dir(&repository) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(MigrateError::NotAGangadir { path: root });
            }
            Err(e) => return Err(MigrateError::io(&repository, e)),
        };
        for (user, user_dir) in user_dirs {
            if !user_dir.is_dir() {
                continue;
            }
            for (kind, kind_dir) in
                sorted_dir(&user_dir).map_err(|e| MigrateError::io(&user_dir, e))?
            {
                if !kind_dir.is_dir() {
                    continue;
                }
                if kind != "LocalXML" {
                    unsupported.push((
                        kind_dir,
                        format!("repository type {kind} (only LocalXML is read)"),
                    ));
                    continue;
                }
                for (layout, layout_dir) in
                    sorted_dir(&kind_dir).map_err(|e| MigrateError::io(&kind_dir, e))?
                {
                    if !layout_dir.is_dir() {
                        continue;
                    }
                    if layout == LAYOUT {
                        users.push(UserRepo {
                            user: user.clone(),
                            workspace: root.join("workspace").join(&user).join("LocalXML"),
                            shared: root.join("shared").join(&user),
                            repo: layout_dir,
                        });
                    } else {
                        unsupported.push((
                            layout_dir,
                            format!("repository layout {layout} (only {LAYOUT} is read)"),
                        ));
                    }
                }
            }
        }
        if users.is_empty() {
            return Err(MigrateError::NotAGangadir { path: root });
        }
        Ok(Gangadir {
            root,
            users,
            unsupported,
        })
    }

    /// Session files touched within [`SESSION_FRESH`] of `now`, with their age. A file
    /// dated in the future counts as fresh.
    pub(crate) fn live_sessions(&self, now: SystemTime) -> Vec<(PathBuf, Duration)> {
        let mut live = Vec::new();
        for u in &self.users {
            let dir = u.repo.join("sessions");
            let Ok(entries) = sorted_dir(&dir) else {
                continue;
            };
            for (name, path) in entries {
                if !name.ends_with(".session") {
                    continue;
                }
                let Ok(modified) = fs::metadata(&path).and_then(|m| m.modified()) else {
                    continue;
                };
                let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
                if age < SESSION_FRESH {
                    live.push((path, age));
                }
            }
        }
        live
    }
}

impl UserRepo {
    /// The objects of a registry (`jobs`, `templates`, `box`, `jobs.metadata`...), in id
    /// order. A registry that does not exist has none.
    pub(crate) fn entries(&self, registry: &str) -> Result<Vec<Entry>, MigrateError> {
        let dir = self.repo.join(registry);
        let chunks = match sorted_dir(&dir) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(MigrateError::io(&dir, e)),
        };
        let mut entries = Vec::new();
        for (chunk, chunk_dir) in chunks {
            let Some(k) = chunk.strip_suffix("xxx") else {
                continue;
            };
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) || !chunk_dir.is_dir() {
                continue;
            }
            for (name, obj_dir) in
                sorted_dir(&chunk_dir).map_err(|e| MigrateError::io(&chunk_dir, e))?
            {
                if let Some(id) = numeric(&name)
                    && obj_dir.is_dir()
                {
                    entries.push(Entry { id, dir: obj_dir });
                }
            }
        }
        entries.sort_by_key(|e| e.id);
        entries.dedup_by_key(|e| e.id);
        Ok(entries)
    }

    /// The folders of a registry's job tree (`jobs.metadata` or `templates.metadata`):
    /// (job id, folder path) pairs, e.g. `(9, "/small/analysis")`.
    pub(crate) fn jobtree(&self, registry: &str) -> Result<Vec<(u64, String)>, String> {
        let entries = self
            .entries(&format!("{registry}.metadata"))
            .map_err(|e| e.to_string())?;
        let Some(entry) = entries.iter().find(|e| e.id == 0) else {
            return Ok(Vec::new());
        };
        let loaded = load(&entry.dir)?;
        let Some(folders) = loaded.object.value("folders") else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        walk_tree(folders, "", &mut out);
        out.sort();
        Ok(out)
    }

    /// The names of box entries (from `box.metadata`), by id.
    pub(crate) fn box_names(&self) -> Vec<(u64, String)> {
        let Ok(entries) = self.entries("box.metadata") else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let loaded = load(&e.dir).ok()?;
                Some((e.id, loaded.object.str("name")?.to_owned()))
            })
            .collect()
    }

    /// `workspace/<user>/LocalXML/<id>[/<sjid>]/output`
    pub(crate) fn output_dir(&self, job: u64, subjob: Option<u32>) -> PathBuf {
        let dir = self.workspace.join(job.to_string());
        match subjob {
            Some(s) => dir.join(s.to_string()).join("output"),
            None => dir.join("output"),
        }
    }
}

fn walk_tree(node: &PyValue, path: &str, out: &mut Vec<(u64, String)>) {
    let PyValue::Dict(items) = node else {
        return;
    };
    for (key, value) in items {
        let Some(key) = key.py_str() else { continue };
        match value {
            PyValue::Dict(_) => {
                let child = if key == "/" {
                    "/".to_owned()
                } else if path == "/" || path.is_empty() {
                    format!("/{key}")
                } else {
                    format!("{path}/{key}")
                };
                walk_tree(value, &child, out);
            }
            leaf => {
                // Leaves map str(id) to str(id).
                if let Some(id) = leaf.py_str().and_then(|s| s.parse().ok()) {
                    out.push((
                        id,
                        if path.is_empty() {
                            "/".to_owned()
                        } else {
                            path.to_owned()
                        },
                    ));
                }
            }
        }
    }
}

/// The numbered subjob directories of a job directory, in index order. Ganga counts every
/// all-digit subdirectory as a subjob.
pub(crate) fn subjob_dirs(job_dir: &Path) -> Result<Vec<(u32, PathBuf)>, MigrateError> {
    let mut out = Vec::new();
    for (name, path) in sorted_dir(job_dir).map_err(|e| MigrateError::io(job_dir, e))? {
        if let Some(i) = numeric(&name).and_then(|i| u32::try_from(i).ok())
            && path.is_dir()
        {
            out.push((i, path));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Reads `<dir>/data`, or `<dir>/data~` when `data` is missing or does not parse (what
/// Ganga does). The error names both failures.
pub(crate) fn load(dir: &Path) -> Result<StoredObject, String> {
    let first = read_one(&dir.join("data"));
    match first {
        Ok(object) => Ok(StoredObject {
            object,
            fell_back: None,
        }),
        Err(why) => match read_one(&dir.join("data~")) {
            Ok(object) => Ok(StoredObject {
                object,
                fell_back: Some(why),
            }),
            Err(backup) => Err(format!("{why}; and {backup}")),
        },
    }
}

fn read_one(path: &Path) -> Result<Object, String> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let bytes = fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{name} is missing")
        } else {
            format!("{name} is unreadable: {e}")
        }
    })?;
    xml::parse(&bytes).map_err(|e| {
        let ends = bytes.trim_ascii_end().ends_with(b"</root>");
        let hint = if ends || e.message.contains("truncated") {
            ""
        } else {
            "; the file ends before </root>: truncated?"
        };
        format!("{name} is not valid Ganga XML ({e}{hint})")
    })
}

fn numeric(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// A directory's entries with UTF-8 names, sorted by name.
fn sorted_dir(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::pyliteral::parse;

    #[test]
    fn job_tree_folders() {
        let v = parse("{'/': {'small': {'analysis': {'9': '9', '11': '11'}, 'failed': {'10': '10'}}, '3': '3'}}").unwrap();
        let mut out = Vec::new();
        walk_tree(&v, "", &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                (3, "/".to_owned()),
                (9, "/small/analysis".to_owned()),
                (10, "/small/failed".to_owned()),
                (11, "/small/analysis".to_owned()),
            ]
        );
    }

    #[test]
    fn numeric_names() {
        assert_eq!(numeric("12"), Some(12));
        assert_eq!(numeric("0"), Some(0));
        assert_eq!(numeric("12_1700000000.5__to_be_deleted_"), None);
        assert_eq!(numeric("data"), None);
        assert_eq!(numeric(""), None);
    }
}
