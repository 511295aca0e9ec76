use std::sync::Arc;

use ganga_core::{Backend, Cache, Store, Workspaces};

/// How the service finds a backend by the name a job gives (`local`, `slurm`...).
pub trait Backends: Send + Sync {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String>;
}

/// What operations and the monitor work with.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub backends: Arc<dyn Backends>,
    pub workspaces: Workspaces,
}
