//! The records in a unit's control directory: text files of `key=value` lines, unknown
//! keys ignored, each naming the run it belongs to (`run=N`), so that a record of an
//! earlier run never counts for a later one. Times are `time_ms=` (or `time_s=` where the
//! shell's `date` has no `%N`); the unit is taken from the magnitude, whatever the key.
//!
//! | file | written by, when | keys |
//! |---|---|---|
//! | `started` | the wrapper, when the unit starts on a worker | `run`, `id`, `host`, time |
//! | `exit` | the wrapper, when the program ended | `run`, `exit_code`, `signal` (for exit codes 129..=192), `error` (could not run it), `id`, `host`, `started_time_ms`, time |
//! | `killed` | `kill`, before the kill command runs | `run`, time |
//!
//! Every record is written to a temporary file and renamed, so a reader sees all of it
//! or nothing. What a submission handed over is recorded per chunk instead
//! (`submissions.rs`).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use ganga_core::Timestamp;
use ganga_plugin_sdk::records::Record;
pub(crate) use ganga_plugin_sdk::records::{now, write_atomic};

use crate::layout::{EXIT, KILLED, STARTED, UnitDirs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
    pub(crate) run: u32,
    /// The batch system's id of the task, as the wrapper saw it (`${SLURM_ARRAY_JOB_ID}_...`).
    pub(crate) id: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) run: u32,
    pub(crate) code: i32,
    pub(crate) signal: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) started: Option<Timestamp>,
    pub(crate) time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Killed {
    pub(crate) run: u32,
    pub(crate) time: Option<Timestamp>,
}

impl Started {
    fn parse(text: &str) -> Result<Started, String> {
        let r = Record::parse(text);
        Ok(Started {
            run: r.required("run")?,
            id: r.text("id"),
            host: r.text("host"),
            time: r.time(""),
        })
    }
}

impl Exit {
    fn parse(text: &str) -> Result<Exit, String> {
        let r = Record::parse(text);
        Ok(Exit {
            run: r.required("run")?,
            code: r.required("exit_code")?,
            signal: r.optional("signal"),
            error: r.text("error"),
            id: r.text("id"),
            host: r.text("host"),
            started: r.time("started_"),
            time: r.time(""),
        })
    }
}

impl Killed {
    pub(crate) fn now(run: u32) -> Killed {
        Killed {
            run,
            time: Some(now()),
        }
    }

    pub(crate) fn to_text(&self) -> String {
        let mut s = format!("run={}\n", self.run);
        push_time(&mut s, self.time);
        s
    }

    fn parse(text: &str) -> Result<Killed, String> {
        let r = Record::parse(text);
        Ok(Killed {
            run: r.required("run")?,
            time: r.time(""),
        })
    }
}

/// What a unit's control directory says about one run. A record of another run is left
/// out, as if it were not there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunRecords {
    pub(crate) started: Option<Started>,
    pub(crate) exit: Option<Exit>,
    pub(crate) killed: Option<Killed>,
    /// A record of this run (by its name) that could not be read: said in reports.
    pub(crate) unreadable: Option<String>,
}

/// Which records to read: polls need a run's end (and its start while it runs); `find`
/// needs whether it started, with the id the wrapper saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    Ends,
    Beginnings,
}

impl RunRecords {
    /// Reads the records of `run`. Unreadable files give `unreadable` rather than an
    /// error; only I/O errors other than "not found" fail (the file system is unwell,
    /// and nothing can be told this time).
    pub(crate) fn read(dirs: &UnitDirs, run: u32, what: Reading) -> io::Result<RunRecords> {
        let mut r = RunRecords::default();
        let mut unreadable: Option<String> = None;
        // Keeps the record if it is of this run; notes it if it cannot be read.
        fn of_run<T>(
            found: Option<Result<T, String>>,
            run_of: impl Fn(&T) -> u32,
            run: u32,
            path: &Path,
            unreadable: &mut Option<String>,
        ) -> Option<T> {
            match found? {
                Ok(record) => (run_of(&record) == run).then_some(record),
                Err(e) => {
                    unreadable.get_or_insert(format!("{} is unreadable: {e}", path.display()));
                    None
                }
            }
        }
        // One look at the directory first: a unit that has not started has none (the
        // wrapper makes it), and a poll of many pending units then costs one lookup each.
        let present: Vec<std::ffi::OsString> = match std::fs::read_dir(&dirs.control) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(r),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", dirs.control.display()),
                ));
            }
        };
        let has = |name: &str| present.iter().any(|p| p == name);
        let exit = dirs.file(EXIT);
        r.exit = of_run(
            if has(EXIT) {
                read(&exit, Exit::parse)?
            } else {
                None
            },
            |e| e.run,
            run,
            &exit,
            &mut unreadable,
        );
        let started = dirs.file(STARTED);
        if has(STARTED) && (r.exit.is_none() || what == Reading::Beginnings) {
            r.started = of_run(
                read(&started, Started::parse)?,
                |s| s.run,
                run,
                &started,
                &mut unreadable,
            );
        }
        if has(KILLED) && what == Reading::Ends {
            let killed = dirs.file(KILLED);
            r.killed = of_run(
                read(&killed, Killed::parse)?,
                |k| k.run,
                run,
                &killed,
                &mut unreadable,
            );
        }
        r.unreadable = unreadable;
        Ok(r)
    }
}

pub(crate) fn read_killed(dirs: &UnitDirs) -> io::Result<Option<Killed>> {
    Ok(read(&dirs.file(KILLED), Killed::parse)?.and_then(Result::ok))
}

pub(crate) fn read_exit(dirs: &UnitDirs) -> io::Result<Option<Result<Exit, String>>> {
    read(&dirs.file(EXIT), Exit::parse)
}

/// Reads a record: `None` if the file does not exist, `Some(Err)` if it cannot be
/// understood, an error only for I/O failures other than "not found".
fn read<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> io::Result<Option<Result<T, String>>> {
    Ok(ganga_plugin_sdk::records::read(path)?.map(|text| parse(&text)))
}

fn push_time(s: &mut String, time: Option<Timestamp>) {
    if let Some(t) = time {
        let _ = writeln!(s, "time_ms={}", t.as_millis());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records() {
        let e = Exit::parse(
            "run=2\nexit_code=137\nsignal=9\nid=12_3\nhost=vm\nstarted_time_ms=1700000000000\ntime_ms=1700000000123\nnew_key=x\n",
        );
        assert_eq!(
            e,
            Ok(Exit {
                run: 2,
                code: 137,
                signal: Some(9),
                error: None,
                id: Some("12_3".into()),
                host: Some("vm".into()),
                started: Some(Timestamp::from_millis(1_700_000_000_000)),
                time: Some(Timestamp::from_millis(1_700_000_000_123)),
            })
        );
        assert!(
            Exit::parse("exit_code=0\n").is_err(),
            "a record without its run"
        );
        assert!(Exit::parse("run=1\nexit_code=\n").is_err());
        assert!(Exit::parse("").is_err());
    }

    #[test]
    fn kill_records_round_trip() {
        let k = Killed::now(4);
        assert_eq!(Killed::parse(&k.to_text()), Ok(k));
    }

    #[test]
    fn records_of_other_runs_do_not_count() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dirs = UnitDirs::new(dir.path());
        std::fs::create_dir_all(&dirs.control).expect("created");
        write_atomic(&dirs.file(EXIT), "run=1\nexit_code=0\n").expect("written");
        write_atomic(&dirs.file(KILLED), "garbage\n").expect("written");
        let one = RunRecords::read(&dirs, 1, Reading::Ends).expect("read");
        assert_eq!(one.exit.map(|e| e.code), Some(0));
        assert!(one.unreadable.is_some_and(|u| u.contains("killed")));
        let two = RunRecords::read(&dirs, 2, Reading::Ends).expect("read");
        assert_eq!(two.exit, None);
    }
}
