//! Submission records: what one chunk handed over, kept beside the units of one job (in
//! the job's workspace, which holds its subjobs' workspaces), so that a submission cut
//! off before ganga recorded its ids can be found (`find`) without touching a thousand
//! unit directories at submit time.
//!
//! `<job workspace>/batch-submissions/<chunk key>`, `key=value` lines:
//!
//! ```text
//! format=1
//! key=k18c2...        the chunk's key, also in the job's name or comment at the system
//! system=slurm
//! id=4711             the submission's id, once the submit command answered it
//! unit=7.3 1 3        a unit of this job in the chunk: job ref, run, task index
//! ```
//!
//! Written before the submit command runs (without `id`), then again with `id`; removed
//! when the command refused the chunk. A unit of a job appears in at most one record per
//! run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ganga_core::JobRef;

/// The records' directory, in a job's workspace.
const DIR: &str = "batch-submissions";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submission {
    pub(crate) key: String,
    pub(crate) system: String,
    pub(crate) id: Option<String>,
    /// The units of one job in the chunk: job ref, run, task index.
    pub(crate) units: Vec<(JobRef, u32, u32)>,
}

/// Where the records of `job`'s submissions are: in its job's workspace (a subjob's
/// workspace is inside its job's).
pub(crate) fn dir_of(job: JobRef, workspace: &Path) -> PathBuf {
    let job_dir = match job.subjob {
        Some(_) => workspace.parent().unwrap_or(workspace),
        None => workspace,
    };
    job_dir.join(DIR)
}

impl Submission {
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!("format=1\nkey={}\nsystem={}\n", self.key, self.system);
        if let Some(id) = &self.id {
            s.push_str(&format!("id={id}\n"));
        }
        for (job, run, index) in &self.units {
            s.push_str(&format!("unit={job} {run} {index}\n"));
        }
        s
    }

    pub(crate) fn parse(text: &str) -> Result<Submission, String> {
        let mut key = None;
        let mut system = None;
        let mut id = None;
        let mut units = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "key" => key = Some(v.to_owned()),
                "system" => system = Some(v.to_owned()),
                "id" => id = Some(v.to_owned()).filter(|i| !i.is_empty()),
                "unit" => {
                    let mut words = v.split_whitespace();
                    let (Some(j), Some(r), Some(i)) = (words.next(), words.next(), words.next())
                    else {
                        return Err(format!("bad unit line `{line}`"));
                    };
                    let parsed = (j.parse::<JobRef>().ok(), r.parse().ok(), i.parse().ok());
                    let (Some(j), Some(r), Some(i)) = parsed else {
                        return Err(format!("bad unit line `{line}`"));
                    };
                    units.push((j, r, i));
                }
                _ => {}
            }
        }
        Ok(Submission {
            key: key.ok_or("no `key`")?,
            system: system.ok_or("no `system`")?,
            id,
            units,
        })
    }
}

/// Writes the record of `sub` in `dir` (atomically: it may be rewritten while a `find`
/// reads it).
pub(crate) fn write(dir: &Path, sub: &Submission) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    crate::records::write_atomic(&dir.join(&sub.key), &sub.to_text())
}

pub(crate) fn remove(dir: &Path, key: &str) {
    let _ = fs::remove_file(dir.join(key));
}

/// The submission that holds run `run` of `job`, and the unit's task index in it.
/// Records that cannot be read are passed over (one cut off while being written is
/// rewritten from scratch only by a new submission).
pub(crate) fn find_unit(
    job: JobRef,
    run: u32,
    workspace: &Path,
) -> io::Result<Option<(Submission, u32)>> {
    let dir = dir_of(job, workspace);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().contains(".tmp") {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(sub) = Submission::parse(&text) else {
            continue;
        };
        if let Some(&(_, _, index)) = sub.units.iter().find(|(j, r, _)| *j == job && *r == run) {
            return Ok(Some((sub, index)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_found() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let job_ws = dir.path().join("7");
        let sub = Submission {
            key: "kabc".into(),
            system: "slurm".into(),
            id: None,
            units: vec![(JobRef::subjob(7, 0), 1, 0), (JobRef::subjob(7, 1), 2, 1)],
        };
        assert_eq!(Submission::parse(&sub.to_text()), Ok(sub.clone()));
        let unit_ws = job_ws.join("1");
        let records = dir_of(JobRef::subjob(7, 1), &unit_ws);
        assert_eq!(records, job_ws.join(DIR));
        write(&records, &sub).expect("written");
        let found = find_unit(JobRef::subjob(7, 1), 2, &unit_ws).expect("read");
        assert_eq!(found, Some((sub.clone(), 1)));
        assert_eq!(
            find_unit(JobRef::subjob(7, 1), 1, &unit_ws).expect("read"),
            None,
            "another run"
        );
        let with_id = Submission {
            id: Some("4711".into()),
            ..sub
        };
        write(&records, &with_id).expect("rewritten");
        let found = find_unit(JobRef::subjob(7, 0), 1, &job_ws.join("0")).expect("read");
        assert_eq!(
            found.map(|(s, i)| (s.id, i)),
            Some((Some("4711".into()), 0))
        );
        remove(&records, "kabc");
        assert_eq!(
            find_unit(JobRef::subjob(7, 0), 1, &job_ws.join("0")).expect("read"),
            None
        );
        assert!(Submission::parse("key=k\nsystem=s\nunit=x 1 2\n").is_err());
    }
}
