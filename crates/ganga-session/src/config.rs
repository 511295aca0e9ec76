//! The user's config file: defaults for every command, and a table per plugin.
//!
//! ```toml
//! plugin_dirs = ["/opt/ganga/plugins"]
//! [store]
//! plugin = "lmdb"
//! cache_budget_mib = 64
//! [monitor]
//! background = true     # `ganga submit` starts a monitor when none runs
//! idle_exit_secs = 60   # ... which stops after this long with nothing to do
//! lost_grace_secs = 60
//! auto_resubmit = false # or true (Ganga's limits), or { max_attempts = 3, max_failed_fraction = 0.5 }
//! [monitor.backend.local]
//! interval_secs = 1.0   # instead of the backend's own
//! [defaults]
//! backend = "local"
//! [home]
//! umask = "077"         # files ganga and its jobs create are the user's alone
//! [plugin.local]        # given to the `local` plugin when it starts
//! max_parallel = 4
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ganga_core::{AutoResubmit, Options, Value};
use serde::Deserialize;

use crate::SessionError;
use crate::tomlfile;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// More directories to look for plugins in.
    pub plugin_dirs: Vec<PathBuf>,
    pub store: StoreConfig,
    pub monitor: MonitorConfig,
    pub defaults: Defaults,
    pub home: HomeConfig,
    /// Each plugin's own settings, by plugin name.
    pub plugin: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store plugin to use.
    pub plugin: String,
    /// The most memory the job cache may hold, in MiB.
    pub cache_budget_mib: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// The poll interval of every backend, instead of each backend's own.
    pub interval_secs: Option<f64>,
    /// Per backend: `[monitor.backend.NAME] interval_secs = ...`.
    pub backend: BTreeMap<String, BackendPace>,
    /// `ganga submit` starts a monitor in the background when none runs.
    pub background: bool,
    /// A background monitor stops after this long with no active job.
    pub idle_exit_secs: f64,
    /// How long a unit may be unknown to its backend, with no record of its end, before
    /// it is failed as lost.
    pub lost_grace_secs: f64,
    /// The longest a backend call may take.
    pub call_timeout_secs: f64,
    /// Calls to one backend in flight at once, and output collections per backend.
    pub poll_concurrency: usize,
    pub finalise_concurrency: usize,
    /// While nothing changes, a backend's interval grows up to this many times its own.
    pub quiet_factor: u32,
    /// The longest wait between polls of a backend that fails.
    pub error_backoff_max_secs: f64,
    /// Ganga's auto-resubmit for jobs that do not set it.
    pub auto_resubmit: Option<AutoResubmitConfig>,
    /// Accepted from configs written for earlier versions, where it bounded how long a
    /// unit could stay `submitting`; interrupted submissions are now asked about instead.
    pub submit_grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendPace {
    pub interval_secs: Option<f64>,
}

/// `auto_resubmit = true | false | { max_attempts = N, max_failed_fraction = F }`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected true, false, or a table with max_attempts and max_failed_fraction"
)]
pub enum AutoResubmitConfig {
    Switch(bool),
    Limits {
        #[serde(default)]
        max_attempts: Option<u32>,
        #[serde(default)]
        max_failed_fraction: Option<f64>,
    },
}

impl AutoResubmitConfig {
    pub fn policy(&self) -> Option<AutoResubmit> {
        let d = AutoResubmit::DEFAULT;
        match self {
            AutoResubmitConfig::Switch(false) => None,
            AutoResubmitConfig::Switch(true) => Some(d),
            AutoResubmitConfig::Limits {
                max_attempts,
                max_failed_fraction,
            } => Some(AutoResubmit {
                max_attempts: max_attempts.unwrap_or(d.max_attempts),
                max_failed_fraction: max_failed_fraction
                    .unwrap_or(d.max_failed_fraction)
                    .clamp(0.0, 1.0),
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// The backend of a job file without `[backend]`.
    pub backend: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeConfig {
    /// The umask ganga runs with, and so its jobs: what they create is private by default.
    pub umask: Umask,
}

/// A umask, written as octal digits (`"077"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Umask(pub u32);

impl Default for Umask {
    fn default() -> Self {
        Umask(0o077)
    }
}

impl<'de> Deserialize<'de> for Umask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_umask(&text)
            .map(Umask)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_umask(text: &str) -> Result<u32, String> {
    let not = || format!("`{text}` is not a umask: expected up to four octal digits, e.g. \"077\"");
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| matches!(b, b'0'..=b'7')) {
        return Err(not());
    }
    let mask = u32::from_str_radix(text, 8).map_err(|_| not())?;
    if mask > 0o777 {
        return Err(not());
    }
    Ok(mask)
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            plugin: "lmdb".into(),
            cache_budget_mib: 64,
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval_secs: None,
            backend: BTreeMap::new(),
            background: true,
            idle_exit_secs: 60.0,
            lost_grace_secs: 60.0,
            call_timeout_secs: 120.0,
            poll_concurrency: 4,
            finalise_concurrency: 4,
            quiet_factor: 4,
            error_backoff_max_secs: 300.0,
            auto_resubmit: None,
            submit_grace_secs: None,
        }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            backend: "local".into(),
        }
    }
}

impl Config {
    /// Reads the config file: `explicit` if given (it must exist), else
    /// `<home>/config.toml`, else `<XDG config dir>/ganga/config.toml`; none is fine.
    pub fn load(
        explicit: Option<&Path>,
        home: &Path,
    ) -> Result<(Config, Option<PathBuf>), SessionError> {
        let path = match explicit {
            Some(p) => Some(p.to_owned()),
            None => [
                Some(home.join("config.toml")),
                dirs::config_dir().map(|d| d.join("ganga").join("config.toml")),
            ]
            .into_iter()
            .flatten()
            .find(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok((Config::default(), None));
        };
        let text = std::fs::read_to_string(&path).map_err(|cause| SessionError::ReadConfig {
            path: path.clone(),
            cause,
        })?;
        let config = tomlfile::parse(&path, &text)?;
        Ok((config, Some(path)))
    }

    /// The settings of one plugin, as it receives them.
    pub fn plugin_options(&self, name: &str) -> Options {
        self.plugin
            .get(name)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
            .unwrap_or_default()
    }
}

/// A TOML value as the core's loosely typed value (dates become text).
pub(crate) fn to_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Integer(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::List(a.iter().map(to_value).collect()),
        toml::Value::Table(t) => {
            Value::Table(t.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umasks_are_octal_digits() {
        assert_eq!(parse_umask("077"), Ok(0o077));
        assert_eq!(parse_umask("0022"), Ok(0o022));
        assert_eq!(parse_umask("7"), Ok(0o7));
        for bad in ["", "8", "0988", "77777", "-1", "0o77", " 77", "1777"] {
            assert!(parse_umask(bad).is_err(), "{bad}");
        }
    }
}
