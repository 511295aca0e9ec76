//! The backend's settings: the `[plugin.dirac]` table of the user's config, the environment,
//! and each job's `[backend]` options. Pure functions of their inputs: the caller reads the
//! environment and files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ganga_core::{Options, Value};
use reqwest::Url;

use crate::error::DiracError;

/// DiracX's public client id (what its own CLI uses).
pub(crate) const DEFAULT_CLIENT_ID: &str = "myDIRACClientID";

/// Environment variables the settings read.
pub(crate) const ENV_URL: &str = "GANGA_DIRAC_URL";
pub(crate) const ENV_VO: &str = "GANGA_DIRAC_VO";
pub(crate) const ENV_GROUP: &str = "GANGA_DIRAC_GROUP";
pub(crate) const ENV_TOKEN: &str = "GANGA_DIRAC_TOKEN";
pub(crate) const ENV_TOKEN_FILE: &str = "GANGA_DIRAC_TOKEN_FILE";

/// Which server, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The server's base URL, always ending in `/`.
    pub(crate) url: Url,
    pub(crate) vo: String,
    pub(crate) group: String,
}

impl Identity {
    /// The OAuth scope; without a group (empty), DiracX gives the VO's default group.
    pub(crate) fn scope(&self) -> String {
        if self.group.is_empty() {
            format!("vo:{}", self.vo)
        } else {
            format!("vo:{} group:{}", self.vo, self.group)
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (VO {}, group {})", self.url, self.vo, self.group)
    }
}

/// The parts of an identity the settings give, maybe not all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Partial {
    pub(crate) url: Option<Url>,
    pub(crate) vo: Option<String>,
    pub(crate) group: Option<String>,
}

/// Where the access token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// `<home>/dirac/tokens.json`, written by `ganga dirac login`, refreshed automatically.
    Stored(PathBuf),
    /// A file someone else keeps fresh (CI): a bare token, or JSON with `access_token`.
    /// Read again once when the server refuses the token.
    File(PathBuf),
    /// `GANGA_DIRAC_TOKEN`: the token itself (or the same JSON), never refreshed.
    Env(String),
}

/// Everything the backend needs that is the same for all jobs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) identity: Option<Identity>,
    /// Why `identity` is missing, if it is.
    pub(crate) identity_missing: Option<String>,
    /// What the config and environment say, complete or not (for `ganga dirac login`).
    pub(crate) configured: Partial,
    pub(crate) client_id: String,
    pub(crate) token: TokenSource,
    /// Where `ganga dirac login` keeps tokens, whatever `token` says.
    pub(crate) tokens_path: PathBuf,
    pub(crate) request_timeout: Duration,
    pub(crate) transfer_timeout: Duration,
    pub(crate) retries: u32,
    /// How many submission requests of 20 JDLs are in flight at once.
    pub(crate) submit_in_flight: usize,
    pub(crate) poll_interval_secs: u32,
    /// Rows per page of a search (DiracX gives at most 10,000).
    pub(crate) search_page_size: usize,
    /// Defaults for every job's JDL options.
    pub(crate) defaults: Options,
}

const CONFIG_KEYS: &[&str] = &[
    "url",
    "vo",
    "group",
    "client_id",
    "token_file",
    "request_timeout_secs",
    "transfer_timeout_secs",
    "retries",
    "submit_in_flight",
    "poll_interval_secs",
    "search_page_size",
];

/// The `[backend]` options a job may give (and `[plugin.dirac]` may default).
pub(crate) const JOB_KEYS: &[&str] = &[
    "site",
    "banned_sites",
    "platform",
    "cpu_time",
    "tags",
    "priority",
    "processors",
    "job_group",
    "input_data",
    // Checked against the settings in force: a job never goes to another server than the
    // one ganga will ask about it.
    "url",
    "vo",
    "group",
];

impl Settings {
    /// `config` is the `[plugin.dirac]` table; `env` reads an environment variable;
    /// `stored` is the identity recorded in the tokens file by the last login, if any.
    pub(crate) fn resolve(
        config: &Options,
        env: &dyn Fn(&str) -> Option<String>,
        home: &Path,
        stored: Option<Identity>,
    ) -> Result<Settings, DiracError> {
        for key in config.keys() {
            if !CONFIG_KEYS.contains(&key.as_str()) && !JOB_KEYS.contains(&key.as_str()) {
                return Err(DiracError::Settings(format!(
                    "[plugin.dirac]: unknown setting `{key}` (known: {})",
                    known_keys()
                )));
            }
        }
        let text = |key: &str, var: &str| -> Result<Option<String>, DiracError> {
            if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
                return Ok(Some(v.trim().to_owned()));
            }
            config_string(config, key)
        };
        let tokens_path = home.join("dirac").join("tokens.json");

        let url = text("url", ENV_URL)?.map(|u| parse_url(&u)).transpose()?;
        let vo = text("vo", ENV_VO)?;
        let group = text("group", ENV_GROUP)?;
        let configured = Partial {
            url: url.clone(),
            vo: vo.clone(),
            group: group.clone(),
        };
        let (identity, identity_missing) = match (url, vo) {
            (Some(url), Some(vo)) => {
                let group = group.or_else(|| {
                    stored
                        .as_ref()
                        .filter(|s| s.url == url && s.vo == vo)
                        .map(|s| s.group.clone())
                });
                match group {
                    Some(group) => (Some(Identity { url, vo, group }), None),
                    None => (
                        None,
                        Some(format!(
                            "the DIRAC backend does not know your DIRAC group: set group in \
                             [plugin.dirac] of the config (or {ENV_GROUP}), or log in with \
                             `ganga dirac login`, which learns it"
                        )),
                    ),
                }
            }
            (None, None) if stored.is_some() => (stored, None),
            (url, vo) => {
                let missing = [(url.is_none(), "url"), (vo.is_none(), "vo")]
                    .iter()
                    .filter(|(m, _)| *m)
                    .map(|(_, k)| *k)
                    .collect::<Vec<_>>()
                    .join(" and ");
                (
                    None,
                    Some(format!(
                        "the DIRAC backend is not set up: set {missing} in [plugin.dirac] of the \
                         config (or {ENV_URL} and {ENV_VO}), or log in with \
                         `ganga dirac login --url URL --vo VO`"
                    )),
                )
            }
        };

        let token = if let Some(t) = env(ENV_TOKEN).filter(|t| !t.trim().is_empty()) {
            TokenSource::Env(t)
        } else if let Some(f) = env(ENV_TOKEN_FILE).filter(|f| !f.trim().is_empty()) {
            TokenSource::File(PathBuf::from(f))
        } else if let Some(f) = config_string(config, "token_file")? {
            TokenSource::File(PathBuf::from(f))
        } else {
            TokenSource::Stored(tokens_path.clone())
        };

        let secs = |key: &str, default: u64, max: u64| -> Result<Duration, DiracError> {
            Ok(Duration::from_secs(config_int(
                config, key, default, 1, max,
            )?))
        };
        Ok(Settings {
            identity,
            identity_missing,
            configured,
            client_id: config_string(config, "client_id")?
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
            token,
            tokens_path,
            request_timeout: secs("request_timeout_secs", 60, 3600)?,
            transfer_timeout: secs("transfer_timeout_secs", 900, 86_400)?,
            retries: u32::try_from(config_int(config, "retries", 3, 0, 20)?).unwrap_or(3),
            submit_in_flight: usize::try_from(config_int(config, "submit_in_flight", 4, 1, 64)?)
                .unwrap_or(4),
            poll_interval_secs: u32::try_from(config_int(
                config,
                "poll_interval_secs",
                30,
                1,
                86_400,
            )?)
            .unwrap_or(30),
            search_page_size: usize::try_from(config_int(
                config,
                "search_page_size",
                10_000,
                1,
                10_000,
            )?)
            .unwrap_or(10_000),
            defaults: config
                .iter()
                .filter(|(k, _)| JOB_KEYS.contains(&k.as_str()))
                .filter(|(k, _)| !matches!(k.as_str(), "url" | "vo" | "group"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    pub(crate) fn identity(&self) -> Result<&Identity, DiracError> {
        self.identity.as_ref().ok_or_else(|| {
            DiracError::Settings(
                self.identity_missing
                    .clone()
                    .unwrap_or_else(|| "the DIRAC backend is not set up".to_owned()),
            )
        })
    }
}

fn known_keys() -> String {
    let mut keys: Vec<&str> = CONFIG_KEYS.iter().chain(JOB_KEYS).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.join(", ")
}

/// A server URL from a user: http or https, with a host; always ends in `/` so that
/// joining `api/...` keeps any path prefix.
pub(crate) fn parse_url(text: &str) -> Result<Url, DiracError> {
    let bad = |why: &str| DiracError::Settings(format!("DiracX URL `{text}`: {why}"));
    let mut url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            "must start with https:// (or http:// for a test server)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn config_string(config: &Options, key: &str) -> Result<Option<String>, DiracError> {
    match config.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(v) => Err(DiracError::Settings(format!(
            "[plugin.dirac]: `{key}` must be a non-empty string, not {} ({v})",
            v.kind()
        ))),
    }
}

fn config_int(
    config: &Options,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, DiracError> {
    match config.get(key) {
        None => Ok(default),
        Some(Value::Integer(n)) if (min..=max).contains(&n.unsigned_abs()) && *n >= 0 => {
            Ok(n.unsigned_abs())
        }
        Some(v) => Err(DiracError::Settings(format!(
            "[plugin.dirac]: `{key}` must be an integer from {min} to {max}, not {v}"
        ))),
    }
}

/// A job's JDL options, merged over the settings' defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobOptions {
    pub(crate) sites: Vec<String>,
    pub(crate) banned_sites: Vec<String>,
    pub(crate) platform: Option<String>,
    pub(crate) cpu_time: Option<u64>,
    pub(crate) tags: Vec<String>,
    pub(crate) priority: Option<i64>,
    pub(crate) processors: Option<u32>,
    pub(crate) job_group: Option<String>,
    pub(crate) input_data: Vec<String>,
}

impl JobOptions {
    /// The job's `[backend]` options over the defaults. Errors name the option.
    pub(crate) fn parse(
        job: &Options,
        defaults: &Options,
        identity: Option<&Identity>,
    ) -> Result<JobOptions, String> {
        for key in job.keys() {
            if !JOB_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown [backend] option `{key}` for the DIRAC backend (known: {})",
                    JOB_KEYS.join(", ")
                ));
            }
        }
        if let Some(identity) = identity {
            check_same(
                job,
                "url",
                |v| parse_url(v).map(|u| u == identity.url).unwrap_or(false),
                identity.url.as_str(),
            )?;
            check_same(job, "vo", |v| v == identity.vo, &identity.vo)?;
            check_same(job, "group", |v| v == identity.group, &identity.group)?;
        }
        let get = |key: &str| job.get(key).or_else(|| defaults.get(key));
        let words = |key: &str| -> Result<Vec<String>, String> {
            match get(key) {
                None => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::List(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(format!(
                            "option `{key}` must be a string or a list of strings, not a list holding {} ({other})",
                            other.kind()
                        )),
                    })
                    .collect(),
                Some(v) => Err(format!(
                    "option `{key}` must be a string or a list of strings, not {} ({v})",
                    v.kind()
                )),
            }
        };
        let word = |key: &str| -> Result<Option<String>, String> {
            match get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(format!(
                    "option `{key}` must be a string, not {} ({v})",
                    v.kind()
                )),
            }
        };
        let int = |key: &str, min: i64, max: i64| -> Result<Option<i64>, String> {
            match get(key) {
                None => Ok(None),
                Some(Value::Integer(n)) if (min..=max).contains(n) => Ok(Some(*n)),
                Some(v) => Err(format!(
                    "option `{key}` must be an integer from {min} to {max}, not {v}"
                )),
            }
        };
        Ok(JobOptions {
            sites: words("site")?,
            banned_sites: words("banned_sites")?,
            platform: word("platform")?,
            cpu_time: int("cpu_time", 1, i64::from(u32::MAX))?.map(i64::unsigned_abs),
            tags: words("tags")?,
            priority: int("priority", 0, 10)?,
            processors: int("processors", 1, 4096)?.and_then(|n| u32::try_from(n).ok()),
            job_group: word("job_group")?,
            input_data: words("input_data")?,
        })
    }
}

fn check_same(
    job: &Options,
    key: &str,
    same: impl Fn(&str) -> bool,
    in_force: &str,
) -> Result<(), String> {
    match job.get(key) {
        None => Ok(()),
        Some(Value::String(v)) if same(v) => Ok(()),
        Some(v) => Err(format!(
            "option `{key}` = {v} differs from the DIRAC backend's setting {in_force}: set it in \
             [plugin.dirac] of the config (or log in with `ganga dirac login`) rather than per job"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn opts(pairs: &[(&str, Value)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn config_gives_identity_and_env_wins() {
        let config = opts(&[
            ("url", s("https://dx.example.org/base")),
            ("vo", s("lhcb")),
            ("group", s("lhcb_user")),
        ]);
        let settings = Settings::resolve(&config, &no_env, Path::new("/h"), None).expect("valid");
        let id = settings.identity().expect("set");
        assert_eq!(id.url.as_str(), "https://dx.example.org/base/");
        assert_eq!(id.group, "lhcb_user");
        assert_eq!(
            settings.token,
            TokenSource::Stored(PathBuf::from("/h/dirac/tokens.json"))
        );

        let env = |k: &str| match k {
            ENV_GROUP => Some("prod".to_owned()),
            ENV_TOKEN_FILE => Some("/ci/token".to_owned()),
            _ => None,
        };
        let settings = Settings::resolve(&config, &env, Path::new("/h"), None).expect("valid");
        assert_eq!(settings.identity().expect("set").group, "prod");
        assert_eq!(
            settings.token,
            TokenSource::File(PathBuf::from("/ci/token"))
        );
    }

    #[test]
    fn missing_identity_is_a_clear_error_at_use() {
        let settings =
            Settings::resolve(&BTreeMap::new(), &no_env, Path::new("/h"), None).expect("valid");
        let err = settings.identity().expect_err("not set up").to_string();
        assert!(err.contains("url and vo"), "{err}");
        assert!(err.contains("ganga dirac login"), "{err}");
    }

    #[test]
    fn without_a_group_the_last_login_gives_it() {
        let config = opts(&[("url", s("https://dx.example.org")), ("vo", s("lhcb"))]);
        let settings = Settings::resolve(&config, &no_env, Path::new("/h"), None).expect("valid");
        let err = settings.identity().expect_err("no group").to_string();
        assert!(err.contains("DIRAC group"), "{err}");
        assert_eq!(settings.configured.vo.as_deref(), Some("lhcb"));
        let stored = Identity {
            url: parse_url("https://dx.example.org").expect("url"),
            vo: "lhcb".into(),
            group: "lhcb_prod".into(),
        };
        let settings =
            Settings::resolve(&config, &no_env, Path::new("/h"), Some(stored)).expect("valid");
        assert_eq!(settings.identity().expect("set").group, "lhcb_prod");
    }

    #[test]
    fn the_last_login_sets_the_identity() {
        let stored = Identity {
            url: parse_url("http://127.0.0.1:1").expect("url"),
            vo: "v".into(),
            group: "g".into(),
        };
        let settings = Settings::resolve(
            &BTreeMap::new(),
            &no_env,
            Path::new("/h"),
            Some(stored.clone()),
        )
        .expect("valid");
        assert_eq!(settings.identity().expect("set"), &stored);
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (config, needle) in [
            (opts(&[("urll", s("x"))]), "unknown setting `urll`"),
            (opts(&[("url", s("ftp://x")), ("vo", s("v"))]), "https://"),
            (opts(&[("retries", Value::Integer(-1))]), "`retries`"),
            (opts(&[("vo", Value::Integer(3))]), "`vo` must be"),
        ] {
            let err = Settings::resolve(&config, &no_env, Path::new("/h"), None)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn job_options_override_defaults_and_refuse_unknown_keys() {
        let defaults = opts(&[
            ("site", s("LCG.CERN.cern")),
            ("cpu_time", Value::Integer(100)),
        ]);
        let job = opts(&[
            ("site", Value::List(vec![s("A"), s("B")])),
            ("tags", s("GPU")),
        ]);
        let o = JobOptions::parse(&job, &defaults, None).expect("valid");
        assert_eq!(o.sites, ["A", "B"]);
        assert_eq!(o.cpu_time, Some(100));
        assert_eq!(o.tags, ["GPU"]);

        let err =
            JobOptions::parse(&opts(&[("queue", s("x"))]), &defaults, None).expect_err("unknown");
        assert!(err.contains("`queue`"), "{err}");
        let err = JobOptions::parse(&opts(&[("cpu_time", s("x"))]), &defaults, None)
            .expect_err("bad type");
        assert!(err.contains("`cpu_time`"), "{err}");
    }

    #[test]
    fn a_job_cannot_go_to_another_server() {
        let id = Identity {
            url: parse_url("https://a.example").expect("url"),
            vo: "v".into(),
            group: "g".into(),
        };
        assert!(
            JobOptions::parse(
                &opts(&[("url", s("https://a.example/"))]),
                &BTreeMap::new(),
                Some(&id)
            )
            .is_ok()
        );
        let err = JobOptions::parse(&opts(&[("vo", s("other"))]), &BTreeMap::new(), Some(&id))
            .expect_err("other vo");
        assert!(err.contains("differs"), "{err}");
    }
}
