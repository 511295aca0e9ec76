//! Rust errors as Python exceptions: `GangaError` and a subclass where a script may want
//! to catch one kind, each also a subclass of the built-in exception a Python programmer
//! would reach for (`LookupError` for a job that does not exist, `ValueError` for a job
//! that cannot run as described...). The message is the Rust error's, as the CLI says it.

use ganga_monitor::OpError;
use ganga_session::SessionError;
use pyo3::exceptions::{
    PyAttributeError, PyException, PyLookupError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

pyo3::create_exception!(
    ganga_rs,
    GangaError,
    PyException,
    "Every error ganga_rs raises of its own."
);
pyo3::create_exception!(
    ganga_rs,
    JobStatusError,
    GangaError,
    "The job's status does not allow this (kill a completed job, resubmit a running one...)."
);
pyo3::create_exception!(
    ganga_rs,
    SubmitError,
    GangaError,
    "The backend refused some of the units handed to it; the job is stored (`job.id`)."
);

/// Makes the exceptions that have two bases (ours and a built-in one), which
/// `create_exception!` cannot, as Python classes.
fn subclass<'py>(
    py: Python<'py>,
    name: &str,
    builtin: Bound<'py, pyo3::types::PyType>,
    doc: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let bases = PyTuple::new(py, [py.get_type::<GangaError>(), builtin])?;
    let namespace = pyo3::types::PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "ganga_rs")?;
    py.get_type::<pyo3::types::PyType>()
        .call1((name, bases, namespace))
}

/// The two-base exceptions, made once when the module is loaded.
struct Dual {
    no_such_job: Py<PyAny>,
    invalid_job: Py<PyAny>,
    read_only: Py<PyAny>,
    timeout: Py<PyAny>,
}

static DUAL: pyo3::sync::PyOnceLock<Dual> = pyo3::sync::PyOnceLock::new();

fn dual(py: Python<'_>) -> PyResult<&Dual> {
    DUAL.get_or_try_init(py, || {
        Ok(Dual {
            no_such_job: subclass(
                py,
                "NoSuchJob",
                py.get_type::<PyLookupError>(),
                "No job (or subjob) of that id: `jobs(999)`.",
            )?
            .unbind(),
            invalid_job: subclass(
                py,
                "InvalidJob",
                py.get_type::<PyValueError>(),
                "A job that cannot run as described: an unknown backend or option, an argument no process can be given, a splitter that makes no subjobs, a job file with a mistake.",
            )?
            .unbind(),
            read_only: subclass(
                py,
                "ReadOnlyError",
                py.get_type::<PyAttributeError>(),
                "The definition of a stored job cannot change: copy() it.",
            )?
            .unbind(),
            timeout: subclass(
                py,
                "WaitTimeout",
                py.get_type::<PyTimeoutError>(),
                "wait(timeout=...) gave up before the job ended.",
            )?
            .unbind(),
        })
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GangaError", py.get_type::<GangaError>())?;
    m.add("JobStatusError", py.get_type::<JobStatusError>())?;
    m.add("SubmitError", py.get_type::<SubmitError>())?;
    let d = dual(py)?;
    m.add("NoSuchJob", d.no_such_job.bind(py))?;
    m.add("InvalidJob", d.invalid_job.bind(py))?;
    m.add("ReadOnlyError", d.read_only.bind(py))?;
    m.add("WaitTimeout", d.timeout.bind(py))?;
    Ok(())
}

/// An exception of one of the two-base classes, with `message`.
fn raise(pick: fn(&Dual) -> &Py<PyAny>, message: String) -> PyErr {
    Python::attach(|py| match dual(py) {
        Ok(d) => match pick(d).bind(py).call1((message.clone(),)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => e,
    })
}

pub(crate) fn no_such_job(message: String) -> PyErr {
    raise(|d| &d.no_such_job, message)
}

pub(crate) fn invalid_job(message: String) -> PyErr {
    raise(|d| &d.invalid_job, message)
}

pub(crate) fn read_only(message: String) -> PyErr {
    raise(|d| &d.read_only, message)
}

pub(crate) fn timeout(message: String) -> PyErr {
    raise(|d| &d.timeout, message)
}

pub(crate) fn ganga(message: impl Into<String>) -> PyErr {
    GangaError::new_err(message.into())
}

/// An operation's error as the exception a script would catch for it.
pub(crate) fn from_op(e: OpError) -> PyErr {
    let message = e.to_string();
    match e {
        OpError::NoSuchJob(_) => no_such_job(message),
        OpError::Lifecycle(_) | OpError::Busy { .. } => JobStatusError::new_err(message),
        OpError::Unavailable(_) => invalid_job(message),
        _ => GangaError::new_err(message),
    }
}

pub(crate) fn from_session(e: SessionError) -> PyErr {
    let message = e.to_string();
    match e {
        SessionError::NoSuchJob(_) | SessionError::Removed(_) => no_such_job(message),
        SessionError::Definition { .. } | SessionError::File(_) => invalid_job(message),
        SessionError::Op(op) => from_op(op),
        _ => GangaError::new_err(message),
    }
}
