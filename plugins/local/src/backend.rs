//! [`LocalBackend`]: the `Backend` calls, each handed to the module that does the work.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, Capabilities, JobRef, Options,
    OutputsReport, OutputsRequest, PeekFile, PollReport, SubmitSpec, Submitted, UnitRun,
};

use ganga_plugin_sdk::blocking;

use crate::config::Config;
use crate::layout::{HomeDirs, QueueDir};
use crate::runners::{self, Runners};
use crate::watch::Watch;
use crate::{kill, outputs, poll, procs, submit};

/// The Local backend. Holds no state about units: everything is in their directories and
/// in the home's queue, so any number of instances, in any number of processes, may work
/// on the same units.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    context: Arc<Context>,
    watch: Arc<Watch>,
}

/// What every call needs: the configuration and where things are.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) home: HomeDirs,
    pub(crate) queue: QueueDir,
    pub(crate) runners: Runners,
    pub(crate) wrapper: PathBuf,
    /// env(1), for the environment variables sh cannot export.
    pub(crate) env_tool: PathBuf,
    pub(crate) host: String,
}

impl LocalBackend {
    /// A backend for the ganga home `home`, configured by the `[plugin.local]` table.
    pub fn new(home: PathBuf, config: &Options) -> Result<LocalBackend, BackendError> {
        let config = Config::from_options(config)?;
        let failed = |what: String| BackendError::failed(format!("local backend: {what}"));
        let dirs = HomeDirs::new(&home);
        check_path_text(&dirs.root).map_err(failed)?;
        dirs.create().map_err(|e| failed(e.to_string()))?;
        let path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        for tool in ["setsid", "mv", "rm", "date"] {
            if runners::find_program(&path, tool).is_none() {
                return Err(failed(format!(
                    "`{tool}` is not installed (not found in PATH): it is needed to run jobs"
                )));
            }
        }
        if runners::find_program(&path, "flock").is_none() {
            tracing::warn!(
                "local backend: `flock` (util-linux) is not installed: a runner that finds \
                 new units just as it ends goes on without its slot, so max_parallel may \
                 briefly be exceeded"
            );
        }
        let env_tool = runners::find_program(&path, "env")
            .ok_or_else(|| failed("`env` is not installed (not found in PATH)".to_owned()))?;
        let (runner, wrapper) =
            runners::install_scripts(&dirs).map_err(|e| failed(e.to_string()))?;
        let context = Context {
            queue: QueueDir { dir: dirs.queue() },
            runners: Runners {
                home: dirs.clone(),
                max_parallel: config.max_parallel,
                runner,
                path,
            },
            home: dirs.clone(),
            wrapper,
            env_tool,
            host: procs::hostname(),
            config,
        };
        Ok(LocalBackend {
            watch: Arc::new(Watch::new(dirs.events())),
            context: Arc::new(context),
        })
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: "local".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            poll_interval_secs: 2,
            max_batch: 10_000,
            capabilities: Capabilities {
                poll_all: true,
                watch: true,
                find: true,
            },
            // The Local backend takes no per-job options.
            options: Some(Vec::new()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let (context, jobs) = (self.context.clone(), jobs.to_vec());
        blocking("local backend: submit", move || {
            submit::submit_batch(&context, &jobs)
        })
        .await
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        let (context, jobs) = (self.context.clone(), jobs.to_vec());
        blocking("local backend: poll", move || {
            poll::poll_batch(&context, &jobs)
        })
        .await
    }

    async fn poll_all(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        // A poll already reads `/proc` at most once for the whole batch.
        self.poll(jobs).await
    }

    async fn changes(&self, wait: Duration) -> Result<Vec<JobRef>, BackendError> {
        self.watch.changes(wait).await
    }

    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        let (context, jobs) = (self.context.clone(), jobs.to_vec());
        blocking("local backend: find", move || {
            poll::find_batch(&context, &jobs)
        })
        .await
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        Ok(kill::kill_batch(&self.context, jobs).await)
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let (owned, file) = (job.clone(), file.clone());
        blocking("local backend: peek", move || {
            outputs::peek(&owned, &file, max_bytes)
        })
        .await?
        .map_err(|e| BackendError::failed(format!("job {}: {e}", job.job)))
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let owned = jobs.to_vec();
        let keep = self.context.config.keep_workdir;
        blocking("local backend: outputs", move || {
            outputs::collect_batch(&owned, keep)
        })
        .await
    }
}

/// The queue's files are read line by line, and name paths under the home.
fn check_path_text(path: &Path) -> Result<(), String> {
    match path.to_str() {
        Some(p) if !p.contains('\n') => Ok(()),
        _ => Err(format!(
            "the ganga home {} must be a path of UTF-8 text without newlines",
            path.display()
        )),
    }
}
