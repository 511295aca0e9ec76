//! [`BatchBackend`]: the `Backend` calls, each handed to the module that does the work,
//! and what they share (the configuration, the home's tag, running a flavour's listing).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendErrorKind, BackendRef, Capabilities,
    Options, OutputsReport, OutputsRequest, PeekFile, PollReport, SubmitSpec, Submitted, UnitRun,
};

use ganga_plugin_sdk::blocking;

use crate::accounting::Accounting;
use crate::command::{self, CommandError, Locale};
use crate::config::{Config, JOB_OPTIONS};
use crate::flavour::{self, CommandOutput, Flavour, Row, StatusRequest};
use crate::layout::{HomeDirs, UnitDirs};
use crate::{collect, find, kill, poll, submit};

/// The Batch backend. It keeps nothing about units in memory: everything is in their
/// workspaces and at the batch system, so any number of instances, in any number of
/// processes, may work on the same units.
#[derive(Debug, Clone)]
pub struct BatchBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) dirs: HomeDirs,
    /// The name (or name prefix) every job of this home carries: `ganga-<home id>`.
    pub(crate) tag: String,
    /// Whose jobs a listing shows, where the command wants a user (`*`: everyone's).
    pub(crate) user: String,
    /// Grid Engine's accounting, read as it grows.
    pub(crate) accounting: Option<Mutex<Accounting>>,
    keys: AtomicU64,
}

impl BatchBackend {
    /// A backend for the ganga home `home` (whose id is `home_id`; empty: derived from
    /// the path), configured by the `[plugin.batch]` table.
    pub fn new(
        home: PathBuf,
        home_id: &str,
        options: &Options,
    ) -> Result<BatchBackend, BackendError> {
        let config = Config::from_options(options)?;
        let tag = format!("ganga-{}", home_tag(&home, home_id));
        let accounting = config
            .sge_accounting
            .clone()
            .map(|path| Mutex::new(Accounting::new(path, &tag)));
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| {
                std::env::var(v)
                    .ok()
                    .filter(|u| !u.is_empty() && !u.contains(char::is_whitespace))
            })
            .unwrap_or_else(|| "*".to_owned());
        Ok(BatchBackend {
            inner: Arc::new(Inner {
                config,
                dirs: HomeDirs::new(&home),
                tag,
                user,
                accounting,
                keys: AtomicU64::new(0),
            }),
        })
    }
}

/// The home's id as a job-name-safe word: the given id if it is one (at most 16 letters,
/// digits, `-`, `_`), else a hash of the home's path.
fn home_tag(home: &Path, home_id: &str) -> String {
    let safe = !home_id.is_empty()
        && home_id.len() <= 16
        && home_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        return home_id.to_owned();
    }
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in home
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .chain(home_id.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

impl Inner {
    /// A key for a new chunk, unique in this home: time, process and a counter.
    pub(crate) fn new_key(&self) -> String {
        let n = self.keys.fetch_add(1, Ordering::Relaxed);
        let ms = crate::records::now().as_millis();
        format!("k{ms:x}{:x}{n:x}", std::process::id())
    }

    pub(crate) fn status_request(&self) -> StatusRequest<'_> {
        StatusRequest {
            tag: &self.tag,
            user: &self.user,
            pbs_history: self.config.pbs_history,
        }
    }

    /// Runs `flavour`'s kill command on `ids` (the system's ids), under the kill timeout.
    pub(crate) async fn run_kill(
        &self,
        flavour: &Flavour,
        ids: &[&str],
    ) -> Result<CommandOutput, CommandError> {
        command::run(
            &self.config.command(flavour.kill_command),
            &(flavour.kill_args)(ids),
            None,
            self.config.kill_timeout,
            Locale::C,
        )
        .await
    }

    /// One listing of this home's jobs on `flavour`'s system. The system not answering,
    /// or answering what cannot be read, fails the whole call: a unit missing from a
    /// listing would look lost.
    pub(crate) async fn listing(
        &self,
        flavour: &'static Flavour,
    ) -> Result<Vec<Row>, BackendError> {
        let req = self.status_request();
        let program = self.config.command(flavour.status_command);
        let out = command::run(
            &program,
            &(flavour.status_args)(&req),
            None,
            self.config.status_timeout,
            Locale::C,
        )
        .await
        .map_err(|e| command_error(flavour, &e))?;
        if !out.success() {
            if (flavour.status_is_empty)(&out) {
                return Ok(Vec::new());
            }
            return Err(BackendError::failed(format!(
                "batch backend ({}): {} failed{}: {}",
                flavour.title,
                program.display(),
                code_of(&out),
                flavour::excerpt(&out.text())
            )));
        }
        (flavour.parse_status)(&out.stdout, &req)
            .map_err(|e| BackendError::failed(format!("batch backend ({}): {e}", flavour.title)))
    }

    /// What `flavour`'s history command says of `ids` (for those it has).
    pub(crate) async fn history(
        &self,
        flavour: &'static Flavour,
        ids: &[&str],
    ) -> Result<Vec<Row>, String> {
        let Some(history) = &flavour.history else {
            return Ok(Vec::new());
        };
        let program = self.config.command(history.command);
        let out = command::run(
            &program,
            &(history.args)(ids),
            None,
            self.config.status_timeout,
            Locale::C,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "{} failed{}: {}",
                program.display(),
                code_of(&out),
                flavour::excerpt(&out.text())
            ));
        }
        (history.parse)(&out.stdout).map_err(|e| e.to_string())
    }
}

/// ` (exit code N)`, or the signal that ended it.
pub(crate) fn code_of(out: &CommandOutput) -> String {
    match out.code {
        Some(c) => format!(" (exit code {c})"),
        None => " (ended by a signal)".to_owned(),
    }
}

pub(crate) fn command_error(flavour: &Flavour, e: &CommandError) -> BackendError {
    let kind = match e {
        CommandError::Timeout { .. } => BackendErrorKind::Timeout,
        _ => BackendErrorKind::Failed,
    };
    BackendError::new(kind, format!("batch backend ({}): {e}", flavour.title))
}

/// A unit's id as this backend gives it: `<flavour>:<the batch system's id>`, so that
/// later calls know which system to ask, whatever the configuration says by then.
pub(crate) fn unit_id(flavour: &Flavour, native: &str) -> String {
    format!("{}:{native}", flavour.name)
}

/// [`unit_id`] undone.
pub(crate) fn parse_unit_id(id: &str) -> Option<(&'static Flavour, &str)> {
    let (name, native) = id.split_once(':')?;
    let flavour = flavour::by_name(name)?;
    (!native.is_empty()).then_some((flavour, native))
}

#[async_trait]
impl Backend for BatchBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: "batch".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            poll_interval_secs: self.inner.config.poll_interval_secs,
            max_batch: 1000,
            capabilities: Capabilities {
                poll_all: true,
                watch: false,
                find: true,
            },
            options: Some(JOB_OPTIONS.iter().map(|s| (*s).to_owned()).collect()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        submit::submit(&self.inner, jobs).await
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        poll::poll(&self.inner, jobs).await
    }

    async fn poll_all(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        poll::poll(&self.inner, jobs).await
    }

    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        find::find(&self.inner, jobs).await
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        kill::kill(&self.inner, jobs).await
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let work = UnitDirs::new(&job.workspace).work;
        let file = file.clone();
        let unit = job.job;
        blocking("batch backend: peek", move || {
            collect::peek(&work, &file, max_bytes)
        })
        .await?
        .map_err(|e| BackendError::failed(format!("job {unit}: {e}")))
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let owned = jobs.to_vec();
        blocking("batch backend: outputs", move || {
            owned
                .iter()
                .map(|req| {
                    let unit = req.job.job;
                    let work = UnitDirs::new(&req.job.workspace).work;
                    let report = collect::collect_outputs(&work, &req.output_dir, &req.patterns)
                        .map_err(|e| format!("job {unit}: {e}"));
                    (unit, report)
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_tags_are_safe_words() {
        assert_eq!(home_tag(Path::new("/h"), "1a2b3c4d"), "1a2b3c4d");
        let derived = home_tag(Path::new("/home/me/gangadir"), "");
        assert_eq!(derived.len(), 8);
        assert_eq!(
            derived,
            home_tag(Path::new("/home/me/gangadir"), ""),
            "stable"
        );
        assert_ne!(derived, home_tag(Path::new("/home/you/gangadir"), ""));
        assert_ne!(home_tag(Path::new("/h"), "a b; rm -rf"), "a b; rm -rf");
    }

    #[test]
    fn unit_ids() {
        let slurm = flavour::by_name("slurm").expect("slurm");
        let id = unit_id(slurm, "12_3");
        assert_eq!(id, "slurm:12_3");
        let (f, native) = parse_unit_id(&id).expect("parses");
        assert_eq!((f.name, native), ("slurm", "12_3"));
        assert!(parse_unit_id("12_3").is_none());
        assert!(parse_unit_id("nosuch:12").is_none());
        assert!(parse_unit_id("slurm:").is_none());
    }
}
