//! Settings: the `[plugin.batch]` table of the user's config (for every job), and a job's
//! own `[backend]` options (for that job). Unknown keys are refused, naming the known
//! ones, so that a typo is never silently a different setting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ganga_core::{BackendError, BackendErrorKind, Options, Value};

use crate::flavour::{self, Flavour};

/// The keys of `[plugin.batch]`.
pub(crate) const CONFIG_KEYS: [&str; 11] = [
    "system",
    "queue",
    "extra_submit_options",
    "commands",
    "array_size",
    "submit_timeout_secs",
    "status_timeout_secs",
    "kill_timeout_secs",
    "poll_interval_secs",
    "pbs_history",
    "sge_accounting",
];

/// The keys of a job's `[backend]` table (besides `type`, which the CLI takes).
pub(crate) const JOB_OPTIONS: [&str; 3] = ["system", "queue", "extra_options"];

/// Status commands get at least this long: a Slurm client takes up to 18 s to report
/// that slurmctld is down, and a busy controller answers slowly.
const MIN_STATUS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The flavour of jobs that do not name one.
    pub(crate) system: &'static Flavour,
    pub(crate) queue: Option<String>,
    pub(crate) extra_submit_options: Vec<String>,
    /// Where the commands are, by name (`sbatch = "/opt/slurm/bin/sbatch"`).
    pub(crate) commands: BTreeMap<String, PathBuf>,
    /// The most units one submission (an array) carries.
    pub(crate) array_size: u32,
    pub(crate) submit_timeout: Duration,
    pub(crate) status_timeout: Duration,
    pub(crate) kill_timeout: Duration,
    pub(crate) poll_interval_secs: u32,
    pub(crate) pbs_history: bool,
    /// Grid Engine's accounting file; `None`: not read.
    pub(crate) sge_accounting: Option<PathBuf>,
}

/// What one job asks for: its flavour, queue and extra submit options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobSettings {
    pub(crate) flavour: &'static str,
    pub(crate) queue: Option<String>,
    pub(crate) extra: Vec<String>,
}

impl Config {
    pub(crate) fn from_options(options: &Options) -> Result<Config, BackendError> {
        for key in options.keys() {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "unknown key `{key}` (known: {})",
                    CONFIG_KEYS.join(", ")
                )));
            }
        }
        let system = match options.get("system") {
            None => flavour::by_name("slurm").ok_or_else(|| invalid("no slurm flavour".into()))?,
            Some(v) => flavour_of(v).map_err(|m| invalid(format!("`system`: {m}")))?,
        };
        let queue = match options.get("queue") {
            None => None,
            Some(v) => Some(word(v).map_err(|m| invalid(format!("`queue`: {m}")))?),
        };
        let extra_submit_options = match options.get("extra_submit_options") {
            None => Vec::new(),
            Some(v) => words(v).map_err(|m| invalid(format!("`extra_submit_options`: {m}")))?,
        };
        let mut commands = BTreeMap::new();
        if let Some(v) = options.get("commands") {
            let table = v.as_table().ok_or_else(|| {
                invalid(format!(
                    "`commands` must be a table of command paths, not {}",
                    v.kind()
                ))
            })?;
            for (name, path) in table {
                let path = path.as_str().filter(|p| !p.is_empty()).ok_or_else(|| {
                    invalid(format!("`commands.{name}` must be a path, not {path}"))
                })?;
                if !known_command(name) {
                    return Err(invalid(format!(
                        "`commands.{name}`: no flavour uses a command of that name (known: {})",
                        all_commands().join(", ")
                    )));
                }
                commands.insert(name.clone(), PathBuf::from(path));
            }
        }
        let array_size = match options.get("array_size") {
            None => 1000,
            Some(v) => v
                .as_integer()
                .filter(|n| (1..=100_000).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("`array_size` must be 1 to 100000, not {v}")))?,
        };
        let submit_timeout = seconds(options, "submit_timeout_secs", 120, Duration::from_secs(1))?;
        let status_timeout = seconds(options, "status_timeout_secs", 60, MIN_STATUS_TIMEOUT)?;
        let kill_timeout = seconds(options, "kill_timeout_secs", 60, Duration::from_secs(1))?;
        // Ganga's own interval for its batch backends (LSF, PBS): a listing per home every
        // 20 s is cheap for any scheduler.
        let poll_interval_secs = match options.get("poll_interval_secs") {
            None => 20,
            Some(v) => v
                .as_integer()
                .filter(|n| (1..=86_400).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    invalid(format!("`poll_interval_secs` must be 1 to 86400, not {v}"))
                })?,
        };
        let pbs_history = match options.get("pbs_history") {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid(format!("`pbs_history` must be true or false, not {v}")))?,
        };
        let sge_accounting = match options.get("sge_accounting") {
            None => Some(default_sge_accounting()),
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(v) => {
                return Err(invalid(format!(
                    "`sge_accounting` must be a path (or \"\" not to read one), not {v}"
                )));
            }
        };
        Ok(Config {
            system,
            queue,
            extra_submit_options,
            commands,
            array_size,
            submit_timeout,
            status_timeout,
            kill_timeout,
            poll_interval_secs,
            pbs_history,
            sge_accounting,
        })
    }

    /// What a job asks for, from its `[backend]` options over this config.
    pub(crate) fn job_settings(&self, options: &Options) -> Result<JobSettings, String> {
        for key in options.keys() {
            if !JOB_OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown backend option `{key}` (the batch backend knows: {})",
                    JOB_OPTIONS.join(", ")
                ));
            }
        }
        let flavour = match options.get("system") {
            None => self.system,
            Some(v) => flavour_of(v).map_err(|m| format!("backend option `system`: {m}"))?,
        };
        let queue = match options.get("queue") {
            None => self.queue.clone(),
            Some(v) => Some(word(v).map_err(|m| format!("backend option `queue`: {m}"))?),
        };
        let mut extra = self.extra_submit_options.clone();
        if let Some(v) = options.get("extra_options") {
            extra.extend(words(v).map_err(|m| format!("backend option `extra_options`: {m}"))?);
        }
        Ok(JobSettings {
            flavour: flavour.name,
            queue,
            extra,
        })
    }

    /// The program to run for a flavour's command `name`.
    pub(crate) fn command(&self, name: &str) -> PathBuf {
        self.commands
            .get(name)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(name))
    }
}

fn flavour_of(v: &Value) -> Result<&'static Flavour, String> {
    let name = v
        .as_str()
        .ok_or_else(|| format!("must be the name of a batch system, not {v}"))?;
    flavour::by_name(name).ok_or_else(|| {
        format!(
            "unknown batch system `{name}` (known: {})",
            flavour::names()
        )
    })
}

/// A queue name: a non-empty string without whitespace or NUL.
fn word(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '\0') => {
            Ok(s.to_owned())
        }
        _ => Err(format!("must be a name without spaces, not {v}")),
    }
}

/// Options for a submit command: a list of strings (one argument each), or one string
/// split as the shell would (`"--time=10 --mem=1G"`).
fn words(v: &Value) -> Result<Vec<String>, String> {
    let list = match v {
        Value::String(s) => {
            shlex::split(s).ok_or_else(|| format!("{v} cannot be split into arguments"))?
        }
        Value::List(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("must be strings, not {i}"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("must be a list of strings, not {}", v.kind())),
    };
    if list.iter().any(|w| w.contains('\0')) {
        return Err("an option contains a NUL character".to_owned());
    }
    Ok(list)
}

fn seconds(
    options: &Options,
    key: &str,
    default: u64,
    min: Duration,
) -> Result<Duration, BackendError> {
    let value = match options.get(key) {
        None => return Ok(Duration::from_secs(default)),
        Some(v) => v,
    };
    let d = match value {
        Value::Integer(n) if *n >= 0 => Some(Duration::from_secs(n.unsigned_abs())),
        Value::Float(x) if x.is_finite() && *x >= 0.0 && *x < 86_400.0 => {
            Some(Duration::from_secs_f64(*x))
        }
        _ => None,
    };
    match d {
        Some(d) if d >= min && d <= Duration::from_secs(86_400) => Ok(d),
        _ => Err(invalid(format!(
            "`{key}` must be a number of seconds from {} to 86400, not {value}",
            min.as_secs()
        ))),
    }
}

fn all_commands() -> Vec<&'static str> {
    let mut names: Vec<&str> = flavour::FLAVOURS
        .iter()
        .flat_map(|f| {
            [
                Some(f.submit_command),
                Some(f.status_command),
                Some(f.kill_command),
                f.history.map(|h| h.command),
            ]
        })
        .flatten()
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn known_command(name: &str) -> bool {
    all_commands().contains(&name)
}

/// Where Debian's (and most) Grid Engine installations keep the accounting file.
fn default_sge_accounting() -> PathBuf {
    let root = std::env::var_os("SGE_ROOT").unwrap_or_else(|| "/var/lib/gridengine".into());
    let cell = std::env::var_os("SGE_CELL").unwrap_or_else(|| "default".into());
    PathBuf::from(root)
        .join(cell)
        .join("common")
        .join("accounting")
}

fn invalid(message: String) -> BackendError {
    BackendError::new(
        BackendErrorKind::InvalidOptions,
        format!("[plugin.batch]: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, Value)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_options(&Options::new()).expect("defaults are fine");
        assert_eq!(c.system.name, "slurm");
        assert_eq!(c.array_size, 1000);
        assert!(c.status_timeout >= MIN_STATUS_TIMEOUT);
        assert_eq!(c.command("sbatch"), PathBuf::from("sbatch"));
    }

    #[test]
    fn values_are_read() {
        let mut commands = BTreeMap::new();
        commands.insert("qsub".to_owned(), Value::from("/opt/t/qsub"));
        let c = Config::from_options(&options(&[
            ("system", "pbs".into()),
            ("queue", "short".into()),
            (
                "extra_submit_options",
                "-l walltime=1:00 -A 'my project'".into(),
            ),
            ("commands", Value::Table(commands)),
            ("array_size", Value::Integer(50)),
            ("status_timeout_secs", Value::Integer(45)),
            ("pbs_history", Value::Bool(false)),
            ("sge_accounting", "".into()),
        ]))
        .expect("valid");
        assert_eq!(c.system.name, "pbs");
        assert_eq!(
            c.extra_submit_options,
            ["-l", "walltime=1:00", "-A", "my project"]
        );
        assert_eq!(c.command("qsub"), PathBuf::from("/opt/t/qsub"));
        assert_eq!(c.array_size, 50);
        assert_eq!(c.status_timeout, Duration::from_secs(45));
        assert!(!c.pbs_history);
        assert_eq!(c.sge_accounting, None);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut bad_cmd = BTreeMap::new();
        bad_cmd.insert("sbtach".to_owned(), Value::from("/x"));
        for (key, value, says) in [
            ("sytem", Value::from("slurm"), "unknown key `sytem`"),
            (
                "system",
                Value::from("torque"),
                "unknown batch system `torque`",
            ),
            ("queue", Value::from("a b"), "`queue`"),
            ("array_size", Value::Integer(0), "`array_size`"),
            (
                "status_timeout_secs",
                Value::Integer(5),
                "`status_timeout_secs`",
            ),
            ("commands", Value::Table(bad_cmd), "`commands.sbtach`"),
            (
                "extra_submit_options",
                Value::Integer(3),
                "`extra_submit_options`",
            ),
            ("pbs_history", Value::from("yes"), "`pbs_history`"),
        ] {
            let e = Config::from_options(&options(&[(key, value)])).expect_err(key);
            assert_eq!(e.kind, BackendErrorKind::InvalidOptions);
            assert!(
                e.message.contains(says) && e.message.starts_with("[plugin.batch]"),
                "{e}"
            );
        }
        let e = Config::from_options(&options(&[("sytem", "x".into())])).expect_err("unknown");
        assert!(e.message.contains("known: system, queue"), "{e}");
    }

    #[test]
    fn job_options() {
        let c = Config::from_options(&options(&[
            ("queue", "debug".into()),
            ("extra_submit_options", Value::List(vec!["--a".into()])),
        ]))
        .expect("valid");
        let s = c.job_settings(&Options::new()).expect("no options");
        assert_eq!((s.flavour, s.queue.as_deref()), ("slurm", Some("debug")));
        let s = c
            .job_settings(&options(&[
                ("system", "sge".into()),
                ("queue", "all.q".into()),
                (
                    "extra_options",
                    Value::List(vec!["-l".into(), "h_rt=60".into()]),
                ),
            ]))
            .expect("valid");
        assert_eq!(s.flavour, "sge");
        assert_eq!(s.queue.as_deref(), Some("all.q"));
        assert_eq!(s.extra, ["--a", "-l", "h_rt=60"]);
        let e = c
            .job_settings(&options(&[("queu", "x".into())]))
            .expect_err("typo");
        assert!(
            e.contains("unknown backend option `queu`")
                && e.contains("system, queue, extra_options")
        );
        assert!(
            c.job_settings(&options(&[("system", "lsf2".into())]))
                .is_err()
        );
    }
}
