//! `ganga_rs`: ganga-rs from Python, with Ganga's names. A Ganga user's script changes
//! only its import: `Job`, `Executable`, `ArgSplitter`, `GenericSplitter`, `LocalFile`,
//! the backends (`Local`, `Slurm`, `SGE`, `PBS`, `LSF`, `Condor`, `Batch`, `Dirac`, or
//! any plugin's by name with `Backend`), the `jobs` registry (`jobs(3)`, iteration,
//! `select`, slices) and the verbs (`submit`, `kill`, `resubmit`, `remove`, `copy`,
//! `peek`, `force_status`, `wait`). `docs/python.md` shows a Ganga script beside its
//! ganga-rs version.
//!
//! It is composed by `ganga-session`, as the `ganga` command is: the same home, config
//! file and plugins, found the same way, plus the plugins shipped in the package and
//! those beside the `ganga` found on `PATH`. Rust work runs on a tokio runtime the module
//! owns, with the GIL released around every blocking call; `job.subjobs` streams from
//! the store a page at a time. Errors are Python exceptions (`GangaError` and its
//! subclasses) with the CLI's words; nothing a script does may crash the interpreter.
//!
//! It is not a second implementation of anything: verbs are `ganga-monitor`'s
//! operations, checks are `ganga-session`'s, and the only things it knows of its own are
//! Python objects and their `repr`s.

mod convert;
mod definition;
mod draft;
mod errors;
mod job;
mod monitoring;
mod registry;
mod runtime;
mod shared;
mod table;

use pyo3::prelude::*;

/// The native part of the package `ganga_rs` (see its `__init__.py`).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    init_logging();
    errors::register(m)?;
    m.add_class::<definition::Executable>()?;
    m.add_class::<definition::ArgSplitter>()?;
    m.add_class::<definition::GenericSplitter>()?;
    m.add_class::<definition::LocalFile>()?;
    m.add_class::<definition::File>()?;
    m.add_class::<definition::Backend>()?;
    m.add_class::<definition::Local>()?;
    m.add_class::<definition::Batch>()?;
    m.add_class::<definition::Slurm>()?;
    m.add_class::<definition::Sge>()?;
    m.add_class::<definition::Pbs>()?;
    m.add_class::<definition::Lsf>()?;
    m.add_class::<definition::Condor>()?;
    m.add_class::<definition::Dirac>()?;
    m.add_class::<job::Job>()?;
    m.add_class::<registry::JobRegistry>()?;
    m.add_class::<registry::JobIterator>()?;
    m.add_class::<registry::SubjobRegistry>()?;
    m.add_class::<registry::SubjobIterator>()?;
    m.add("jobs", Py::new(py, registry::JobRegistry::everything())?)?;
    m.add_function(wrap_pyfunction!(shared::configure, m)?)?;
    m.add_function(wrap_pyfunction!(shared::session_info, m)?)?;
    m.add_function(wrap_pyfunction!(job::load, m)?)?;
    Ok(())
}

/// `GANGA_LOG` (e.g. `info`, `debug`) shows what ganga-rs does on stderr, as with the
/// `ganga` command; without it the module says nothing of its own.
fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("GANGA_LOG") else {
        return;
    };
    // Another library of the process may have set one already: then it is used.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
