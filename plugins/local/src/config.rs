//! The backend's configuration: the `[plugin.local]` table of the user's config file.

use std::time::Duration;

use ganga_core::{BackendError, BackendErrorKind, Options, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// At most this many Local jobs run at once on this machine (for this ganga home).
    pub(crate) max_parallel: u32,
    /// Keep a job's working directory after its outputs were collected.
    pub(crate) keep_workdir: bool,
    /// How long `kill` waits after SIGTERM before it sends SIGKILL.
    pub(crate) kill_grace: Duration,
}

const KEYS: [&str; 3] = ["max_parallel", "keep_workdir", "kill_grace_secs"];

impl Config {
    pub(crate) fn from_options(options: &Options) -> Result<Config, BackendError> {
        // A typo must not silently mean the default.
        if let Some(key) = options.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(BackendError::new(
                BackendErrorKind::InvalidOptions,
                format!(
                    "[plugin.local]: unknown setting `{key}` (the known ones: {})",
                    KEYS.join(", ")
                ),
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_parallel = match options.get("max_parallel") {
            None => u32::try_from(cpus).unwrap_or(u32::MAX),
            Some(v) => v
                .as_integer()
                .filter(|&n| n >= 1)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .ok_or_else(|| invalid("max_parallel", "a positive integer", v))?,
        };
        let keep_workdir = match options.get("keep_workdir") {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid("keep_workdir", "true or false", v))?,
        };
        let kill_grace = match options.get("kill_grace_secs") {
            None => Duration::from_secs(2),
            Some(v) => match v {
                Value::Integer(n) if *n >= 0 => Duration::from_secs(n.unsigned_abs()),
                Value::Float(x) if x.is_finite() && *x >= 0.0 && *x < 86_400.0 => {
                    Duration::from_secs_f64(*x)
                }
                _ => return Err(invalid("kill_grace_secs", "a number of seconds", v)),
            },
        };
        Ok(Config {
            max_parallel,
            keep_workdir,
            kill_grace,
        })
    }
}

fn invalid(key: &str, expected: &str, got: &Value) -> BackendError {
    BackendError::new(
        BackendErrorKind::InvalidOptions,
        format!(
            "[plugin.local]: `{key}` must be {expected}, not {} ({got})",
            got.kind()
        ),
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
        let c = Config::from_options(&Options::new());
        assert!(matches!(c, Ok(Config { max_parallel: n, keep_workdir: true, .. }) if n >= 1));
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("max_parallel", Value::Integer(0)),
            ("max_parallel", Value::String("4".into())),
            ("keep_workdir", Value::Integer(1)),
            ("kill_grace_secs", Value::Integer(-1)),
        ] {
            let e = Config::from_options(&options(&[(k, v)]));
            assert!(
                matches!(&e, Err(e) if e.kind == BackendErrorKind::InvalidOptions && e.message.contains(k)),
                "{k}: {e:?}"
            );
        }
    }

    #[test]
    fn unknown_settings_are_refused() {
        let e = Config::from_options(&options(&[("max_paralel", Value::Integer(2))]));
        assert!(
            matches!(&e, Err(e) if e.kind == BackendErrorKind::InvalidOptions
                && e.message.contains("`max_paralel`")
                && e.message.contains("max_parallel, keep_workdir, kill_grace_secs")),
            "{e:?}"
        );
    }

    #[test]
    fn values_are_read() {
        let c = Config::from_options(&options(&[
            ("max_parallel", Value::Integer(3)),
            ("keep_workdir", Value::Bool(false)),
            ("kill_grace_secs", Value::Float(0.5)),
        ]));
        assert_eq!(
            c,
            Ok(Config {
                max_parallel: 3,
                keep_workdir: false,
                kill_grace: Duration::from_millis(500),
            })
        );
    }
}
