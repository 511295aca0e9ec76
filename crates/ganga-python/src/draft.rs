//! A job being defined in Python (`Job()` before `submit()`): the objects the user
//! changes in place, and how they become a job's spec and back.

use std::path::PathBuf;

use ganga_core::{Application, BackendConfig, JobSpec};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::definition::{self, Backend, Executable};
use crate::{convert, errors};

/// A job being defined: Python objects the user changes in place until `submit()`.
pub(crate) struct Draft {
    pub(crate) name: String,
    pub(crate) comment: String,
    pub(crate) application: Py<Executable>,
    pub(crate) backend: Py<PyAny>,
    pub(crate) splitter: Option<Py<PyAny>>,
    pub(crate) inputfiles: Vec<PathBuf>,
    pub(crate) outputfiles: Vec<String>,
    pub(crate) auto_resubmit: Option<bool>,
}

fn backend_config(obj: &Bound<'_, PyAny>) -> PyResult<BackendConfig> {
    match obj.cast::<Backend>() {
        Ok(b) => Ok(b.borrow().to_core()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "Job.backend: expected a backend (Local(), Slurm(), Dirac(), Backend('name')...), not {}",
            convert::type_name(obj)
        ))),
    }
}

pub(crate) fn draft_spec(py: Python<'_>, d: &Draft) -> PyResult<JobSpec> {
    let splitter = match &d.splitter {
        Some(s) => Some(
            definition::splitter_to_core(s.bind(py))
                .map_err(|m| errors::invalid_job(format!("Job.splitter: {m}")))?,
        ),
        None => None,
    };
    Ok(JobSpec {
        name: d.name.clone(),
        comment: d.comment.clone(),
        application: Application::Executable(d.application.borrow(py).to_core()),
        backend: backend_config(d.backend.bind(py))?,
        input_files: d.inputfiles.clone(),
        output_files: d.outputfiles.clone(),
        splitter,
        auto_resubmit: d.auto_resubmit.map(|on| {
            if on {
                ganga_core::AutoResubmit::DEFAULT
            } else {
                ganga_core::AutoResubmit::OFF
            }
        }),
    })
}

pub(crate) fn draft_from_spec(py: Python<'_>, spec: &JobSpec) -> PyResult<Draft> {
    Ok(Draft {
        name: spec.name.clone(),
        comment: spec.comment.clone(),
        application: Py::new(py, Executable::of(spec.application.executable(), None))?,
        backend: Backend::to_py(py, &spec.backend, None, None)?,
        splitter: spec
            .splitter
            .as_ref()
            .map(|s| definition::splitter_to_py(py, s, None))
            .transpose()?,
        inputfiles: spec.input_files.clone(),
        outputfiles: spec.output_files.clone(),
        auto_resubmit: spec.auto_resubmit.map(|a| a.max_attempts > 0),
    })
}

/// A copy of an `Executable` (assignment copies, as in Ganga).
pub(crate) fn application_from(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Py<Executable>> {
    let e = obj.cast::<Executable>().map_err(|_| {
        PyTypeError::new_err(format!(
            "Job.application: expected an Executable, not {}",
            convert::type_name(obj)
        ))
    })?;
    let copy = Executable::of(&e.borrow().to_core(), None);
    Py::new(py, copy)
}

/// A copy of a backend; a string names a backend plugin (`'Local'`, `'local'`).
pub(crate) fn backend_from(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let config = match obj.cast::<pyo3::types::PyString>() {
        Ok(name) => {
            let name = name.to_str()?.to_ascii_lowercase();
            match name.as_str() {
                "slurm" | "sge" | "pbs" | "lsf" | "condor" => {
                    let mut c = BackendConfig::named("batch");
                    c.options
                        .insert("system".into(), ganga_core::Value::String(name));
                    c
                }
                _ => BackendConfig::named(name),
            }
        }
        Err(_) => backend_config(obj)?,
    };
    Backend::to_py(py, &config, None, None)
}

/// A copy of a splitter.
pub(crate) fn splitter_from(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let core = definition::splitter_to_core(obj).map_err(|m| {
        if obj.cast::<definition::ArgSplitter>().is_ok()
            || obj.cast::<definition::GenericSplitter>().is_ok()
        {
            // A GenericSplitter not set up yet: keep it as it is, it is checked at submit.
            PyValueError::new_err(format!("Job.splitter: {m}"))
        } else {
            PyTypeError::new_err(format!("Job.splitter: {m}"))
        }
    });
    match core {
        Ok(s) => definition::splitter_to_py(py, &s, None).map(Some),
        Err(e) if e.is_instance_of::<PyValueError>(py) => Ok(Some(obj.clone().unbind())),
        Err(e) => Err(e),
    }
}

pub(crate) fn inputfiles_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    convert::sequence(obj, "Job.inputfiles", "a list of paths or LocalFiles")?
        .iter()
        .enumerate()
        .map(|(i, f)| definition::input_file(f, &format!("Job.inputfiles[{i}]")))
        .collect()
}

pub(crate) fn outputfiles_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    convert::sequence(obj, "Job.outputfiles", "a list of patterns or LocalFiles")?
        .iter()
        .enumerate()
        .map(|(i, f)| definition::output_pattern(f, &format!("Job.outputfiles[{i}]")))
        .collect()
}
