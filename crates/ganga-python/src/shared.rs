//! The session the module works in: opened on first use from the environment, as the
//! `ganga` command opens its own (`$GANGA_HOME`, `$GANGA_CONFIG`, `$GANGA_PLUGIN_PATH`),
//! or by `configure()`. Objects made in one session (a job, a registry slice) keep it
//! when another is configured.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ganga_session::{Session, SessionOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;
use crate::monitoring::Background;

/// A session and the monitor this process runs for it, if any.
pub(crate) struct Shared {
    pub(crate) session: Session,
    pub(crate) background: Mutex<Option<Background>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(b) = self
            .background
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            b.stop();
        }
    }
}

static CURRENT: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

fn lock_current() -> std::sync::MutexGuard<'static, Option<Arc<Shared>>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current session, opened from the environment if none is.
pub(crate) fn current(py: Python<'_>) -> PyResult<Arc<Shared>> {
    if let Some(s) = lock_current().as_ref() {
        return Ok(s.clone());
    }
    let opened = open(py, SessionOptions::default())?;
    let mut slot = lock_current();
    // Another thread may have opened one meanwhile: the first stays.
    Ok(slot.get_or_insert(opened).clone())
}

/// Opens a session as the module does: `options`, plus the plugins shipped in the
/// package (`ganga_rs/plugins`) and those beside the `ganga` command on `PATH`.
fn open(py: Python<'_>, mut options: SessionOptions) -> PyResult<Arc<Shared>> {
    if let Some(dir) = package_dir(py) {
        options.host_dirs.push(dir);
    }
    let session = py
        .detach(move || {
            if let Some(dir) = ganga_session::ganga_on_path() {
                options.host_dirs.push(dir);
            }
            Session::open(&options)
        })
        .map_err(errors::from_session)?;
    Ok(Arc::new(Shared {
        session,
        background: Mutex::new(None),
    }))
}

/// The directory of the `ganga_rs` package, where packagers may put a `plugins` folder.
fn package_dir(py: Python<'_>) -> Option<PathBuf> {
    let file: PathBuf = py
        .import("ganga_rs")
        .ok()?
        .getattr("__file__")
        .ok()?
        .extract()
        .ok()?;
    file.parent().map(|p| p.to_owned())
}

/// Opens the session later calls work in, instead of the one from the environment.
/// Anything left out is found as the `ganga` command finds it. The session before it
/// stops the monitor it ran in this process, if any.
#[pyfunction]
#[pyo3(signature = (home = None, config = None, plugin_dirs = None, plugins = None, cache_mib = None))]
pub(crate) fn configure(
    py: Python<'_>,
    home: Option<PathBuf>,
    config: Option<PathBuf>,
    plugin_dirs: Option<Vec<PathBuf>>,
    plugins: Option<Vec<PathBuf>>,
    cache_mib: Option<u64>,
) -> PyResult<()> {
    let options = SessionOptions {
        home,
        config,
        plugin_dirs: plugin_dirs.unwrap_or_default(),
        plugin_files: plugins.unwrap_or_default(),
        cache_mib,
        host_dirs: Vec::new(),
    };
    let opened = open(py, options)?;
    let previous = lock_current().replace(opened);
    // Dropped here, outside the lock: stops its monitor.
    drop(previous);
    Ok(())
}

/// Where the current session is and what it loaded: `home`, `config_file`,
/// `search_path`, `plugins` (name, kind, version, file) and `refused`.
#[pyfunction]
pub(crate) fn session_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let shared = current(py)?;
    let s = &shared.session;
    let d = PyDict::new(py);
    d.set_item("home", s.home())?;
    d.set_item("config_file", s.config_file())?;
    d.set_item("search_path", s.search_path().to_vec())?;
    let plugins = pyo3::types::PyList::empty(py);
    for p in s.catalog().plugins() {
        let e = PyDict::new(py);
        e.set_item("name", &p.name)?;
        e.set_item("kind", p.kind.to_string())?;
        e.set_item("version", &p.version)?;
        e.set_item("file", p.file.clone())?;
        plugins.append(e)?;
    }
    d.set_item("plugins", plugins)?;
    let refused: Vec<String> = s
        .catalog()
        .refusals()
        .iter()
        .map(|r| r.to_string())
        .collect();
    d.set_item("refused", refused)?;
    Ok(d)
}
