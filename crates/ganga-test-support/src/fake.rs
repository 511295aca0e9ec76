//! [`FakeBackend`]: a backend that runs nothing and answers at once, for measuring the
//! monitor at a scale no real backend reaches on one machine (100,000 active units). It
//! is for benchmarks and tests only: it never starts a process, and every unit is in the
//! state the caller last set for all of them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, Capabilities, OutputsReport,
    OutputsRequest, PeekFile, PollReport, RemoteStatus, SubmitSpec, Submitted,
};

/// Answers every call at once; every unit is in the state last set with
/// [`FakeBackend::set_state`] (`Queued` at first). It declares `poll_all`, so the monitor
/// asks about all its units in one call, as it would a batch system.
pub struct FakeBackend {
    name: String,
    state: Mutex<RemoteStatus>,
    /// Calls made, by kind.
    pub polls: AtomicU64,
    pub polled_units: AtomicU64,
    pub submitted: AtomicU64,
    pub collected: AtomicU64,
}

impl FakeBackend {
    pub fn new(name: impl Into<String>) -> FakeBackend {
        FakeBackend {
            name: name.into(),
            state: Mutex::new(RemoteStatus::Queued),
            polls: AtomicU64::new(0),
            polled_units: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            collected: AtomicU64::new(0),
        }
    }

    /// What every unit is from now on.
    pub fn set_state(&self, status: RemoteStatus) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    fn state(&self) -> RemoteStatus {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: self.name.clone(),
            version: "fake".into(),
            poll_interval_secs: 1,
            max_batch: 10_000,
            capabilities: Capabilities {
                poll_all: true,
                ..Capabilities::default()
            },
            options: Some(Vec::new()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        let first = self
            .submitted
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        Ok(jobs
            .iter()
            .zip(first..)
            .map(|(s, n)| (s.job, Ok(Submitted::id(n.to_string()))))
            .collect())
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.polled_units
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let status = self.state();
        let report = PollReport {
            exit_code: matches!(status, RemoteStatus::Succeeded).then_some(0),
            ..PollReport::new(status, format!("fake {status:?}"))
        };
        Ok(jobs.iter().map(|r| (r.job, Ok(report.clone()))).collect())
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        Ok(jobs.iter().map(|r| (r.job, Ok(()))).collect())
    }

    async fn peek(&self, _: &BackendRef, _: &PeekFile, _: u64) -> Result<Vec<u8>, BackendError> {
        Ok(Vec::new())
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        self.collected
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        Ok(jobs
            .iter()
            .map(|r| {
                let report = OutputsReport {
                    collected: vec!["stdout".into()],
                    ..OutputsReport::default()
                };
                (r.job.job, Ok(report))
            })
            .collect())
    }
}
