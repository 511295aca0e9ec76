//! Test fixture: a backend whose calls panic in different ways. `describe` works, so a
//! test can show the plugin still answers after each panic. With `[plugin.faulty] poll =
//! "hang"` its poll never answers, with `"abort"` it ends the process (SIGABRT), as a
//! plugin with a deadlock or a crash in native code would.

use async_trait::async_trait;
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, OutputsReport, OutputsRequest,
    PeekFile, PollReport, SubmitSpec, Submitted,
};
use ganga_plugin_sdk::PluginContext;

pub struct Faulty {
    poll: Fault,
}

#[derive(Clone, Copy)]
enum Fault {
    Panic,
    Hang,
    Abort,
}

#[async_trait]
impl Backend for Faulty {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            capabilities: Default::default(),
            options: None,
            name: "faulty".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            poll_interval_secs: 1,
            max_batch: 10,
        })
    }

    async fn submit(&self, _jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        panic!("faulty plugin: submit always panics");
    }

    async fn poll(&self, _jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        match self.poll {
            Fault::Hang => std::future::pending().await,
            Fault::Abort => std::process::abort(),
            Fault::Panic => {
                // Panics after an await, on a runtime worker thread of the plugin.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                panic!("faulty plugin: poll always panics");
            }
        }
    }

    async fn kill(&self, _jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        Err(BackendError::failed("faulty plugin: kill always fails"))
    }

    async fn peek(
        &self,
        _job: &BackendRef,
        _file: &PeekFile,
        _max: u64,
    ) -> Result<Vec<u8>, BackendError> {
        Ok(b"peeked".to_vec())
    }

    async fn outputs(
        &self,
        _jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        Err(BackendError::unsupported("outputs"))
    }
}

impl ganga_plugin_sdk::BackendPlugin for Faulty {
    fn create(context: PluginContext) -> Result<Self, String> {
        let poll = match context.config.get("poll").and_then(|v| v.as_str()) {
            Some("hang") => Fault::Hang,
            Some("abort") => Fault::Abort,
            _ => Fault::Panic,
        };
        match context.config.get("on_create").and_then(|v| v.as_str()) {
            Some("panic") => panic!("faulty plugin: asked to panic while starting"),
            Some("fail") => Err("asked to fail while starting".into()),
            _ => Ok(Faulty { poll }),
        }
    }
}

ganga_plugin_sdk::export_backend!(Faulty, "faulty");
