//! Test fixture: the template backend with one bug, the one a detached backend that forgets
//! its kill record has: a killed job is reported `Failed` (exit code 143, as if it had died
//! of SIGTERM on its own), never `Killed`. Everything else it does right, so `ganga
//! plugins check` must fail on it naming exactly the check `kill_running`.

use async_trait::async_trait;
use ganga_backend_template::TemplateBackend;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, OutputsReport, OutputsRequest,
    PeekFile, PollReport, RemoteStatus, SubmitSpec, Submitted,
};
use ganga_plugin_sdk::PluginContext;

pub struct Forgetful(TemplateBackend);

#[async_trait]
impl Backend for Forgetful {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        let mut description = self.0.describe().await?;
        description.name = "forgetful".into();
        Ok(description)
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        self.0.submit(jobs).await
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        let mut answers = self.0.poll(jobs).await?;
        for (_, answer) in &mut answers {
            if let Ok(report) = answer
                && report.status == RemoteStatus::Killed
            {
                *report = PollReport {
                    exit_code: Some(143),
                    reason: Some("exit code 143".into()),
                    ..PollReport::new(RemoteStatus::Failed, "exited 143")
                };
            }
        }
        Ok(answers)
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        self.0.kill(jobs).await
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.0.peek(job, file, max_bytes).await
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        self.0.outputs(jobs).await
    }
}

impl ganga_plugin_sdk::BackendPlugin for Forgetful {
    fn create(context: PluginContext) -> Result<Self, String> {
        <TemplateBackend as ganga_plugin_sdk::BackendPlugin>::create(context).map(Forgetful)
    }
}

ganga_plugin_sdk::export_backend!(Forgetful, "forgetful");
