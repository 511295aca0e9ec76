//! The records (marker files) in a job's control directory: `key=value` lines, unknown
//! keys ignored, so that wrappers of an older or newer format still read. The format is
//! described in the crate documentation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ganga_core::Timestamp;

use crate::layout::{EXIT, JobDirs, KILLED, LAUNCH, STARTED};

/// Written by `submit` once the wrapper runs: how to recognise its processes later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    /// The wrapper's pid, which is also its process group and session id.
    pub(crate) pgid: i32,
    /// The wrapper's start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// where the system has `/proc`: tells the wrapper from a later process with its pid.
    pub(crate) start_ticks: Option<u64>,
    pub(crate) host: Option<String>,
    pub(crate) submitted: Option<Timestamp>,
}

/// Written by the wrapper when it got a slot and starts the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
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

/// Written by `kill` before it signals the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Killed {
    pub(crate) time: Option<Timestamp>,
}

impl Launch {
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!("format=1\npgid={}\n", self.pgid);
        if let Some(t) = self.start_ticks {
            let _ = writeln!(s, "start_ticks={t}");
        }
        if let Some(h) = &self.host {
            // A hostname has no newline; if one ever had, the rest would only be dropped.
            let _ = writeln!(s, "host={}", h.lines().next().unwrap_or_default());
        }
        if let Some(t) = self.submitted {
            let _ = writeln!(s, "time_ms={}", t.as_millis());
        }
        s
    }

    fn parse(text: &str) -> Result<Launch, String> {
        let kv = parse_lines(text);
        Ok(Launch {
            pgid: required_int(&kv, "pgid")?,
            start_ticks: kv.get("start_ticks").and_then(|v| v.parse().ok()),
            host: kv.get("host").map(|h| (*h).to_owned()),
            submitted: time_of(&kv),
        })
    }
}

impl Exit {
    fn parse(text: &str) -> Result<Exit, String> {
        let kv = parse_lines(text);
        Ok(Exit {
            code: required_int(&kv, "exit_code")?,
            signal: kv.get("signal").and_then(|v| v.parse().ok()),
            error: kv.get("error").map(|e| (*e).to_owned()),
            time: time_of(&kv),
        })
    }
}

impl Killed {
    pub(crate) fn now() -> Killed {
        Killed { time: Some(now()) }
    }

    pub(crate) fn to_text(&self) -> String {
        match self.time {
            Some(t) => format!("time_ms={}\n", t.as_millis()),
            None => String::new(),
        }
    }
}

pub(crate) fn read_launch(dirs: &JobDirs) -> io::Result<Option<Launch>> {
    read(&dirs.control_file(LAUNCH), Launch::parse)
}

pub(crate) fn read_started(dirs: &JobDirs) -> io::Result<Option<Started>> {
    read(&dirs.control_file(STARTED), |text| {
        Ok(Started {
            time: time_of(&parse_lines(text)),
        })
    })
}

pub(crate) fn read_exit(dirs: &JobDirs) -> io::Result<Option<Exit>> {
    read(&dirs.control_file(EXIT), Exit::parse)
}

pub(crate) fn read_killed(dirs: &JobDirs) -> io::Result<Option<Killed>> {
    read(&dirs.control_file(KILLED), |text| {
        Ok(Killed {
            time: time_of(&parse_lines(text)),
        })
    })
}

/// Writes `text` to `path` through a temporary file and a rename, so that a reader sees
/// the whole record or none.
pub(crate) fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
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
/// it cannot be understood.
fn read<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T, String>) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse(&text).map(Some).map_err(|e| {
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

fn required_int(kv: &HashMap<&str, &str>, key: &str) -> Result<i32, String> {
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
        let e = Exit::parse("exit_code=137\nsignal=9\ntime_ms=1700000000123\nnew_key=x\n");
        assert_eq!(
            e,
            Ok(Exit {
                code: 137,
                signal: Some(9),
                error: None,
                time: Some(Timestamp::from_millis(1_700_000_000_123)),
            })
        );
        assert!(Exit::parse("exit_code=\n").is_err());
        assert!(Exit::parse("").is_err());
    }

    #[test]
    fn launch_round_trip() {
        let l = Launch {
            pgid: 1234,
            start_ticks: Some(99),
            host: Some("node1".into()),
            submitted: Some(Timestamp::from_millis(1_700_000_000_000)),
        };
        assert_eq!(Launch::parse(&l.to_text()), Ok(l));
    }
}
