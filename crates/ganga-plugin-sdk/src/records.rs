//! Records: the small text files a detached backend and the wrapper around each job write
//! beside the job (it started, it ended with this exit code, it was killed), as
//! `key=value` lines. Readers ignore keys they do not know, so a wrapper of an older or
//! newer format still reads; every record names its run (`run=N`), so that one left by
//! an earlier run never decides a later one.
//!
//! Times are `time_ms=` (or `time_s=`, where the shell's `date` has no `%N`); a reader
//! takes the unit from the magnitude, whatever the key says, because `date`
//! implementations differ in what `%s%N` prints.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ganga_core::{PollReport, RemoteStatus, Timestamp};

/// The `key=value` lines of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    fields: HashMap<&'a str, &'a str>,
}

impl<'a> Record<'a> {
    /// Every `key=value` line of `text` (others are skipped; keys and values trimmed).
    pub fn parse(text: &'a str) -> Record<'a> {
        Record::from_lines(text.lines())
    }

    /// The `key=value`s among `lines`.
    pub fn from_lines(lines: impl Iterator<Item = &'a str>) -> Record<'a> {
        Record {
            fields: lines
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields.get(key).copied()
    }

    /// The value of `key`, which must be there and be a `T`.
    pub fn required<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let v = self.get(key).ok_or_else(|| format!("no `{key}`"))?;
        v.parse().map_err(|_| format!("`{key}={v}` cannot be read"))
    }

    /// The value of `key` as a `T`, if it is there and is one.
    pub fn optional<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// The non-empty text of `key`.
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// The run the record names.
    pub fn run(&self) -> Option<u32> {
        self.optional("run")
    }

    /// The time under `<prefix>time_ms`, `<prefix>time_s` or `<prefix>time`, its unit
    /// (seconds, ms, µs or ns since the epoch) taken from its magnitude.
    pub fn time(&self, prefix: &str) -> Option<Timestamp> {
        let v = ["time_ms", "time_s", "time"]
            .iter()
            .find_map(|k| self.get(&format!("{prefix}{k}")))?;
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
}

/// The text of a record file: `None` if there is none, an error naming the file for
/// other failures.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so that a reader sees
/// the whole record or none. The file is the owner's alone (a record may hold a job's
/// environment).
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
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
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The current time, as records keep it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// What a poll says of a run whose exit record its wrapper wrote: `code` as the shell
/// saw it, the `signal` that ended the program (sh reports it as 128+n), the wrapper's
/// `error` when it could not start the program at all, and when it ended.
pub fn exit_report(
    code: i32,
    signal: Option<i32>,
    error: Option<&str>,
    ended: Option<Timestamp>,
) -> PollReport {
    let (status, native, reason) = match (code, signal, error) {
        (_, _, Some(error)) => (
            RemoteStatus::Failed,
            format!("exited {code}"),
            Some(format!("{error} (exit code {code})")),
        ),
        (0, _, None) => (RemoteStatus::Succeeded, "exited 0".to_owned(), None),
        (code, Some(sig), None) => (
            RemoteStatus::Failed,
            format!("killed by signal {sig}"),
            Some(format!("killed by signal {sig} (exit code {code})")),
        ),
        (code, None, None) => (
            RemoteStatus::Failed,
            format!("exited {code}"),
            Some(format!("exit code {code}")),
        ),
    };
    PollReport {
        exit_code: Some(code),
        reason,
        ended,
        ..PollReport::new(status, native)
    }
}

/// What a poll says of a run killed on request (its kill record written at `ended`).
pub fn killed_report(ended: Option<Timestamp>) -> PollReport {
    PollReport {
        reason: Some("killed on request".to_owned()),
        ended,
        ..PollReport::new(RemoteStatus::Killed, "killed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Option<i64> {
        Record::parse(text).time("").map(Timestamp::as_millis)
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
        let r = Record::parse("started_time_ms=5000000000000\nrun=3\n");
        assert_eq!(
            r.time("started_"),
            Some(Timestamp::from_millis(5_000_000_000_000))
        );
        assert_eq!(r.run(), Some(3));
    }

    #[test]
    fn values_are_read_or_refused_by_name() {
        let r = Record::parse("exit_code=3\nsignal=x\nerror=\nnew_key=1\n");
        assert_eq!(r.required::<i32>("exit_code"), Ok(3));
        assert!(r.required::<i32>("pid").is_err_and(|e| e.contains("`pid`")));
        assert_eq!(r.optional::<i32>("signal"), None);
        assert_eq!(r.text("error"), None);
    }

    #[test]
    fn a_record_is_written_whole_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("exit-1");
        write_atomic(&path, "run=1\nexit_code=0\n").expect("written");
        assert_eq!(
            read(&path).expect("read").as_deref(),
            Some("run=1\nexit_code=0\n")
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&dir.path().join("none")).expect("read"), None);
    }
}
