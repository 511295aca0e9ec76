//! What operations and the monitor work with: the jobs, the backends, where files go.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ganga_core::{Backend, BackendDescription, JobId, Workspaces};

use crate::{OpError, StoreHandle};

/// How the service finds a backend by the name a job gives (`local`, `batch`...).
pub trait Backends: Send + Sync {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String>;
}

/// A backend, and what it said of itself (asked once).
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) description: BackendDescription,
}

impl Instance {
    pub(crate) fn max_batch(&self) -> usize {
        self.description.max_batch.max(1) as usize
    }
}

/// What operations and the monitor work with.
#[derive(Clone)]
pub struct Context {
    pub store: StoreHandle,
    pub backends: Arc<dyn Backends>,
    pub workspaces: Workspaces,
    /// Where the locks of submissions in progress are kept.
    pub locks: PathBuf,
    /// The longest any backend call may take before it counts as failed.
    pub call_timeout: Duration,
    instances: Arc<Mutex<HashMap<String, Arc<Instance>>>>,
}

impl Context {
    pub fn new(
        store: StoreHandle,
        backends: Arc<dyn Backends>,
        workspaces: Workspaces,
        locks: PathBuf,
    ) -> Context {
        Context {
            store,
            backends,
            workspaces,
            locks,
            call_timeout: Duration::from_secs(120),
            instances: Arc::default(),
        }
    }

    /// The same, with another timeout for backend calls.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Context {
        self.call_timeout = timeout;
        self
    }

    /// The backend of that name with its description, made and described once.
    pub(crate) async fn instance(&self, name: &str) -> Result<Arc<Instance>, String> {
        if let Some(i) = self.lock().get(name) {
            return Ok(i.clone());
        }
        let backend = self.backends.backend(name)?;
        let description = backend
            .describe()
            .await
            .map_err(|e| format!("backend `{name}` cannot describe itself: {e}"))?;
        let instance = Arc::new(Instance {
            name: name.to_owned(),
            backend,
            description,
        });
        Ok(self
            .lock()
            .entry(name.to_owned())
            .or_insert(instance)
            .clone())
    }

    /// The backend a job names, or why there is none (naming the job).
    pub(crate) async fn instance_for(
        &self,
        job: JobId,
        name: &str,
    ) -> Result<Arc<Instance>, OpError> {
        self.instance(name)
            .await
            .map_err(|message| OpError::NoBackend {
                job: ganga_core::JobRef::job(job),
                backend: name.to_owned(),
                message,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }
}
