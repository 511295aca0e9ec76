//! The records in a unit's control directory: `key=value` lines, unknown keys ignored,
//! one file per kind and run (`exit-2`), each naming its run inside as well. The format is
//! described in the crate documentation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ganga_core::Timestamp;

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

    fn parse(kv: &HashMap<&str, &str>) -> Result<Queued, String> {
        Ok(Queued {
            run: required(kv, "run")?,
            seq: required(kv, "seq")?,
            queue: PathBuf::from(kv.get("queue").ok_or("no `queue`")?),
            time: time_of(kv),
        })
    }
}

/// The `key=value`s of a `queued` record: its `#` lines after the queue lines.
fn queued_lines(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .skip(QUEUE_LINES)
        .map_while(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

impl Started {
    fn parse(kv: &HashMap<&str, &str>) -> Result<Started, String> {
        Ok(Started {
            pgid: required(kv, "pgid")?,
            start_ticks: kv
                .get("start_ticks")
                .and_then(|v| v.parse().ok())
                .filter(|&t| t > 0),
            time: time_of(kv),
        })
    }
}

impl Exit {
    fn parse(kv: &HashMap<&str, &str>) -> Result<Exit, String> {
        Ok(Exit {
            code: required(kv, "exit_code")?,
            signal: kv.get("signal").and_then(|v| v.parse().ok()),
            error: kv.get("error").map(|e| (*e).to_owned()),
            time: time_of(kv),
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
    read(&dirs.record(STARTED, run), run, parse_lines, Started::parse)
}

pub(crate) fn read_exit(dirs: &UnitDirs, run: u32) -> io::Result<Option<Exit>> {
    read(&dirs.record(EXIT, run), run, parse_lines, Exit::parse)
}

pub(crate) fn read_killed(dirs: &UnitDirs, run: u32) -> io::Result<Option<Killed>> {
    read(&dirs.record(KILLED, run), run, parse_lines, |kv| {
        Ok(Killed { time: time_of(kv) })
    })
}

/// Writes `text` to `path` through a temporary file and a rename, so that a reader sees
/// the whole record or none.
pub(crate) fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    // Unique to this call: two threads (two backend instances in one process) may write
    // the same file at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}-{call}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    write_private(&tmp, text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Writes a new file (replacing one of the same name) readable by the owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The current time, as the records keep it.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// Reads a record: `None` if it does not exist, an `InvalidData` error naming the file if
/// it cannot be understood or names another run.
fn read<T>(
    path: &Path,
    run: u32,
    lines: fn(&str) -> HashMap<&str, &str>,
    parse: impl FnOnce(&HashMap<&str, &str>) -> Result<T, String>,
) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let kv = lines(&text);
            let named: Option<u32> = kv.get("run").and_then(|r| r.parse().ok());
            if named != Some(run) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not say it is of run {run}", path.display()),
                ));
            }
            parse(&kv).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is unreadable: {e}", path.display()),
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn parse_lines(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn required<T: std::str::FromStr>(kv: &HashMap<&str, &str>, key: &str) -> Result<T, String> {
    let v = kv.get(key).ok_or_else(|| format!("no `{key}`"))?;
    v.parse()
        .map_err(|_| format!("`{key}={v}` is not an integer"))
}

/// The record's time, from `time_ms`, `time_s` or `time`. Whatever the key says, the unit
/// is taken from the magnitude (seconds, ms, µs or ns since the epoch), because `date`
/// implementations differ in what `%s%N` prints.
fn time_of(kv: &HashMap<&str, &str>) -> Option<Timestamp> {
    let v = ["time_ms", "time_s", "time"]
        .iter()
        .find_map(|k| kv.get(k))?;
    let n: i64 = v.parse().ok()?;
    if n < 0 {
        return None;
    }
    let ms = match n {
        n if n < 100_000_000_000 => n.saturating_mul(1000),
        n if n < 100_000_000_000_000 => n,
        n if n < 100_000_000_000_000_000 => n / 1000,
        n => n / 1_000_000,
    };
    Some(Timestamp::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Option<i64> {
        time_of(&parse_lines(text)).map(Timestamp::as_millis)
    }

    #[test]
    fn times_in_any_unit() {
        assert_eq!(t("time_s=1700000000"), Some(1_700_000_000_000));
        assert_eq!(t("time_ms=1700000000123"), Some(1_700_000_000_123));
        assert_eq!(t("time=1700000000123456"), Some(1_700_000_000_123));
        assert_eq!(t("time_ms=1700000000123456789"), Some(1_700_000_000_123));
        assert_eq!(t("time_s=17000N"), None);
        assert_eq!(t("time_s="), None);
        assert_eq!(t("nothing"), None);
    }

    #[test]
    fn exit_records() {
        let e = Exit::parse(&parse_lines(
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
        assert!(Exit::parse(&parse_lines("exit_code=\n")).is_err());
        assert!(Exit::parse(&parse_lines("")).is_err());
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
