//! The records in a unit's control directory: `key=value` lines, unknown keys ignored,
//! one file per kind and run (`exit-2`), each naming its run inside as well. The format is
//! described in the crate documentation.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use ganga_core::Timestamp;
use ganga_plugin_sdk::records::Record;
pub(crate) use ganga_plugin_sdk::records::{now, write_atomic, write_private};

use crate::layout::{EXIT, KILLED, QUEUE_FORMAT, QUEUED, STARTED, UnitDirs};

/// Written by `submit` when the run is queued, before the queue entry: the run's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) run: u32,
    /// The queue sequence number, which is also the id `submit` returns.
    pub(crate) seq: u64,
    /// The queue it is in.
    pub(crate) queue: PathBuf,
    pub(crate) time: Option<Timestamp>,
}

/// Written by the wrapper when it starts, before it runs the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
    /// The wrapper's pid, which is also its process group and session id.
    pub(crate) pgid: i32,
    /// The wrapper's start time in clock ticks since boot (`/proc/<pid>/stat` field 22):
    /// tells the wrapper from a later process with its pid.
    pub(crate) start_ticks: Option<u64>,
    pub(crate) time: Option<Timestamp>,
}

/// Written by the wrapper when the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) code: i32,
    /// The signal that ended the program, as sh reports it (exit code 128+n).
    pub(crate) signal: Option<i32>,
    /// Why the wrapper could not run the program at all.
    pub(crate) error: Option<String>,
    pub(crate) time: Option<Timestamp>,
}

/// Written by `kill` (or a resubmission) before it stops the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Killed {
    pub(crate) time: Option<Timestamp>,
}

/// The lines of a `queued-<run>` file before its `key=value` lines: what a runner reads
/// from the queue entry (a hard link to the file), each after a `#`.
const QUEUE_LINES: usize = 5;

impl Queued {
    /// The head of the `queued-<run>` file, which is also the queue entry and, after the
    /// head, the shell text the wrapper sources: the queue format, the control directory,
    /// the run, the unit and the wrapper, then this record's `key=value`s, all as shell
    /// comments. (A queue path has no newline: the home's path is checked when the backend
    /// starts, the workspace's at submit.)
    pub(crate) fn head(&self, control: &Path, job: ganga_core::JobRef, wrapper: &Path) -> String {
        let mut s = format!(
            "#{QUEUE_FORMAT}\n#{}\n#{}\n#{job}\n#{}\n",
            control.display(),
            self.run,
            wrapper.display()
        );
        let _ = writeln!(s, "#run={}\n#seq={}", self.run, self.seq);
        let _ = writeln!(s, "#queue={}", self.queue.display());
        if let Some(t) = self.time {
            let _ = writeln!(s, "#time_ms={}", t.as_millis());
        }
        s
    }

    fn parse(r: &Record) -> Result<Queued, String> {
        Ok(Queued {
            run: r.required("run")?,
            seq: r.required("seq")?,
            queue: PathBuf::from(r.get("queue").ok_or("no `queue`")?),
            time: r.time(""),
        })
    }
}

/// The `key=value`s of a `queued` record: its `#` lines after the queue lines.
fn queued_lines(text: &str) -> Record<'_> {
    Record::from_lines(
        text.lines()
            .skip(QUEUE_LINES)
            .map_while(|l| l.strip_prefix('#')),
    )
}

impl Started {
    fn parse(r: &Record) -> Result<Started, String> {
        Ok(Started {
            pgid: r.required("pgid")?,
            start_ticks: r.optional("start_ticks").filter(|&t| t > 0),
            time: r.time(""),
        })
    }
}

impl Exit {
    fn parse(r: &Record) -> Result<Exit, String> {
        Ok(Exit {
            code: r.required("exit_code")?,
            signal: r.optional("signal"),
            error: r.get("error").map(str::to_owned),
            time: r.time(""),
        })
    }
}

impl Killed {
    pub(crate) fn to_text(run: u32) -> String {
        format!("run={run}\ntime_ms={}\n", now().as_millis())
    }
}

pub(crate) fn read_queued(dirs: &UnitDirs, run: u32) -> io::Result<Option<Queued>> {
    read(&dirs.record(QUEUED, run), run, queued_lines, Queued::parse)
}

pub(crate) fn read_started(dirs: &UnitDirs, run: u32) -> io::Result<Option<Started>> {
    read(
        &dirs.record(STARTED, run),
        run,
        |t| Record::parse(t),
        Started::parse,
    )
}

pub(crate) fn read_exit(dirs: &UnitDirs, run: u32) -> io::Result<Option<Exit>> {
    read(
        &dirs.record(EXIT, run),
        run,
        |t| Record::parse(t),
        Exit::parse,
    )
}

pub(crate) fn read_killed(dirs: &UnitDirs, run: u32) -> io::Result<Option<Killed>> {
    read(
        &dirs.record(KILLED, run),
        run,
        |t| Record::parse(t),
        |r| Ok(Killed { time: r.time("") }),
    )
}

/// Reads a record: `None` if it does not exist, an `InvalidData` error naming the file if
/// it cannot be understood or names another run.
fn read<T>(
    path: &Path,
    run: u32,
    record: for<'a> fn(&'a str) -> Record<'a>,
    parse: impl FnOnce(&Record) -> Result<T, String>,
) -> io::Result<Option<T>> {
    let Some(text) = ganga_plugin_sdk::records::read(path)? else {
        return Ok(None);
    };
    let r = record(&text);
    if r.run() != Some(run) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not say it is of run {run}", path.display()),
        ));
    }
    parse(&r).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is unreadable: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records() {
        let e = Exit::parse(&Record::parse(
            "run=1\nexit_code=137\nsignal=9\ntime_ms=1700000000123\nnew_key=x\n",
        ));
        assert_eq!(
            e,
            Ok(Exit {
                code: 137,
                signal: Some(9),
                error: None,
                time: Some(Timestamp::from_millis(1_700_000_000_123)),
            })
        );
        assert!(Exit::parse(&Record::parse("exit_code=\n")).is_err());
        assert!(Exit::parse(&Record::parse("")).is_err());
    }

    #[test]
    fn queued_round_trip() {
        let q = Queued {
            run: 3,
            seq: 1234,
            queue: PathBuf::from("/home/u/.ganga/local/queue"),
            time: Some(Timestamp::from_millis(1_700_000_000_000)),
        };
        // A control directory whose name looks like a record line changes nothing.
        let head = q.head(
            Path::new("/w/run=9/local"),
            ganga_core::JobRef::subjob(12, 3),
            Path::new("/h/bin/wrapper-1.sh"),
        );
        let text = format!("{head}# a comment\nganga_job='12.3'\n");
        assert_eq!(Queued::parse(&queued_lines(&text)), Ok(q));
    }

    #[test]
    fn a_record_of_another_run_is_not_read() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let dirs = UnitDirs::new(dir.path());
        std::fs::create_dir_all(&dirs.control).expect("control");
        std::fs::write(dirs.record(EXIT, 2), "run=1\nexit_code=0\n").expect("record");
        let e = read_exit(&dirs, 2).expect_err("another run's record");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_exit(&dirs, 3).expect("none"), None);
        std::fs::write(dirs.record(EXIT, 2), "run=2\nexit_code=0\n").expect("record");
        assert!(
            read_exit(&dirs, 2)
                .expect("read")
                .is_some_and(|e| e.code == 0)
        );
    }
}
