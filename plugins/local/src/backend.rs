//! [`LocalBackend`]: the `Backend` calls, each handed to the module that does the work.

use std::path::PathBuf;

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendErrorKind, BackendRef, Capabilities,
    Options, OutputsReport, OutputsRequest, PeekFile, PollReport, SubmitSpec, Submitted,
};

use crate::config::Config;
use crate::submit::Launcher;
use crate::{collect, kill, poll, procs};

/// The Local backend. Holds no state about jobs: everything is in their directories, so
/// any number of instances, in any number of processes, may work on the same jobs.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    config: Config,
    launcher: Launcher,
}

impl LocalBackend {
    /// A backend for the ganga home `home`, configured by the `[plugin.local]` table.
    pub fn new(home: PathBuf, config: &Options) -> Result<LocalBackend, BackendError> {
        let config = Config::from_options(config)?;
        let slots = home.join("local").join("slots");
        std::fs::create_dir_all(&slots).map_err(|e| {
            BackendError::failed(format!(
                "local backend: cannot create {}: {e}",
                slots.display()
            ))
        })?;
        let max_parallel = if has_flock() {
            config.max_parallel
        } else {
            tracing::warn!(
                "local backend: `flock` (util-linux) is not installed, so max_parallel = {} \
                 cannot be enforced: jobs run without a limit",
                config.max_parallel
            );
            0
        };
        Ok(LocalBackend {
            launcher: Launcher {
                slots,
                max_parallel,
                host: procs::hostname(),
            },
            config,
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
            max_batch: 1000,
            capabilities: Capabilities::default(),
            // The Local backend takes no per-job options.
            options: Some(Vec::new()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let mut results = Vec::with_capacity(jobs.len());
        for spec in jobs {
            results.push((spec.job, self.launcher.submit(spec).await));
        }
        Ok(results)
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        let owned = jobs.to_vec();
        let host = self.launcher.host.clone();
        blocking("poll", move || poll::poll_batch(&owned, &host)).await
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        Ok(kill::kill_batch(jobs, self.config.kill_grace).await)
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let (owned, file) = (job.clone(), file.clone());
        blocking("peek", move || collect::peek(&owned, &file, max_bytes))
            .await?
            .map_err(|e| BackendError::failed(format!("job {}: {e}", job.job)))
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let owned = jobs.to_vec();
        let keep = self.config.keep_workdir;
        blocking("outputs", move || collect::collect_batch(&owned, keep)).await
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        let kind = if e.is_panic() {
            BackendErrorKind::Panicked
        } else {
            BackendErrorKind::Failed
        };
        BackendError::new(kind, format!("local backend: {what} failed: {e}"))
    })
}

/// Whether `flock` is an executable somewhere on `PATH`.
fn has_flock() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("flock"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}
