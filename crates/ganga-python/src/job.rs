//! Ganga's `Job`: one class for a job being defined (`Job()`, not stored yet), a stored
//! job (`jobs(3)`, or a defined one once submitted) and a subjob (`jobs(3).subjobs[1]`),
//! as in Ganga, where subjobs are jobs too.
//!
//! A definition is the user's to change until `submit()`, which checks it as a job file
//! is checked, stores it and hands it to its backend. Assigning an object to a job's
//! attribute copies it, as Ganga's GPI does. What a stored job says is read from the
//! store when asked: `status` as it is now; a subjob met while iterating carries the
//! status it had when its page was read.

use std::path::PathBuf;
use std::sync::Arc;

use ganga_core::{BackendInfo, JobId, JobRef, JobSpec, PeekFile, Status, Subjob, SubjobIndex};
use ganga_monitor::SubmitReport;
use ganga_session::{JobDefinition, WaitOutcome};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::definition::{self, Backend, Executable, Frozen};
use crate::draft::{
    Draft, application_from, backend_from, draft_from_spec, draft_spec, inputfiles_from,
    outputfiles_from, splitter_from,
};
use crate::errors::{self, JobStatusError, SubmitError};
use crate::registry::SubjobRegistry;
use crate::runtime::{block_on, block_on_stoppable};
use crate::shared::{self, Shared};
use crate::{convert, monitoring, table};

/// A subjob, with its status as read, and the rest of it once asked for.
struct Sub {
    shared: Arc<Shared>,
    job: JobId,
    index: SubjobIndex,
    status: Status,
    full: Option<Arc<Subjob>>,
}

enum State {
    Draft(Draft),
    Stored { shared: Arc<Shared>, id: JobId },
    Sub(Sub),
}

/// Ganga's `Job`. Define it (`Job(name=..., application=Executable(...),
/// splitter=ArgSplitter(...), backend=Local())`, or by attribute), then `submit()` it.
#[pyclass(name = "Job", module = "ganga_rs")]
pub(crate) struct Job {
    state: State,
    /// How many subjobs a stored job has, when it was met in a listing of summaries (so
    /// `job.subjobs` need not read the master: a job's subjobs never change once it has
    /// been submitted).
    listed_subjobs: Option<u32>,
}

impl Job {
    pub(crate) fn stored(shared: Arc<Shared>, id: JobId) -> Job {
        Job {
            state: State::Stored { shared, id },
            listed_subjobs: None,
        }
    }

    /// A stored job as a listing of summaries showed it.
    pub(crate) fn listed(shared: Arc<Shared>, summary: &ganga_core::JobSummary) -> Job {
        // A `new` job (a copy not submitted yet) is split when it is submitted.
        let known = summary.status != Status::New;
        Job {
            state: State::Stored {
                shared,
                id: summary.id,
            },
            listed_subjobs: known
                .then(|| u32::try_from(summary.subjobs.total()).ok())
                .flatten(),
        }
    }

    pub(crate) fn subjob(
        shared: Arc<Shared>,
        job: JobId,
        index: SubjobIndex,
        status: Status,
    ) -> Job {
        Job {
            state: State::Sub(Sub {
                shared,
                job,
                index,
                status,
                full: None,
            }),
            listed_subjobs: None,
        }
    }

    /// The job or subjob this is, once stored.
    fn job_ref(&self) -> Option<JobRef> {
        match &self.state {
            State::Draft(_) => None,
            State::Stored { id, .. } => Some(JobRef::job(*id)),
            State::Sub(s) => Some(JobRef::subjob(s.job, s.index)),
        }
    }

    fn shared(&self) -> Option<&Arc<Shared>> {
        match &self.state {
            State::Draft(_) => None,
            State::Stored { shared, .. } => Some(shared),
            State::Sub(s) => Some(&s.shared),
        }
    }

    /// The session and reference of a stored job or subjob, or why there are none.
    fn target(&self, verb: &str) -> PyResult<(Arc<Shared>, JobRef)> {
        match (self.shared(), self.job_ref()) {
            (Some(s), Some(r)) => Ok((s.clone(), r)),
            _ => Err(JobStatusError::new_err(format!(
                "cannot {verb} a job that was never submitted (call submit() first)"
            ))),
        }
    }

    fn frozen_why(&self) -> Frozen {
        self.job_ref().map(|r| {
            format!("job {r} is stored: its definition cannot change (copy() it to make a new job)")
        })
    }

    fn draft(&self) -> PyResult<&Draft> {
        match &self.state {
            State::Draft(d) => Ok(d),
            _ => Err(errors::read_only(self.frozen_why().unwrap_or_default())),
        }
    }

    fn draft_mut(&mut self) -> PyResult<&mut Draft> {
        let why = self.frozen_why();
        match &mut self.state {
            State::Draft(d) => Ok(d),
            _ => Err(errors::read_only(why.unwrap_or_default())),
        }
    }

    /// The stored job (a subjob's master), as cached.
    fn record(&self, py: Python<'_>) -> PyResult<Arc<ganga_core::Job>> {
        let (shared, r) = self.target("read")?;
        read_job(py, &shared, r.job, false)
    }

    /// A subjob's stored record, read once.
    fn subjob_record(&mut self, py: Python<'_>) -> PyResult<Option<Arc<Subjob>>> {
        let State::Sub(s) = &mut self.state else {
            return Ok(None);
        };
        if let Some(full) = &s.full {
            return Ok(Some(full.clone()));
        }
        let (shared, job, index) = (s.shared.clone(), s.job, s.index);
        let ctx = shared.session.context().map_err(errors::from_session)?;
        let found = py
            .detach(|| {
                ctx.store
                    .cache()
                    .subjobs(job, index..index.saturating_add(1))
            })
            .map_err(|e| errors::ganga(e.to_string()))?;
        let sj = found
            .into_iter()
            .find(|sj| sj.index == index)
            .ok_or_else(|| errors::no_such_job(format!("job {job}.{index} does not exist")))?;
        let sj = Arc::new(sj);
        s.full = Some(sj.clone());
        Ok(Some(sj))
    }

    /// The spec this job or subjob runs (a draft's as it would be stored).
    fn spec(&mut self, py: Python<'_>) -> PyResult<JobSpec> {
        if let State::Draft(d) = &self.state {
            return draft_spec(py, d);
        }
        let job = self.record(py)?;
        Ok(match self.subjob_record(py)? {
            Some(sj) => sj.effective_spec(&job.spec),
            None => (*job.spec).clone(),
        })
    }

    /// What the backend said about this job or subjob (`None` for a draft or a master).
    fn run_state(&mut self, py: Python<'_>) -> PyResult<Option<ganga_core::RunState>> {
        match &self.state {
            State::Draft(_) => Ok(None),
            State::Stored { shared, id } => {
                let job = read_job(py, shared, *id, true)?;
                Ok(Some(job.run.clone()))
            }
            State::Sub(_) => Ok(self.subjob_record(py)?.map(|sj| sj.run.clone())),
        }
    }

    /// A new definition with this one's values, objects copied.
    fn copied(&mut self, py: Python<'_>) -> PyResult<Job> {
        let spec = self.spec(py)?;
        let mut copy = draft_from_spec(py, &spec)?;
        if let State::Draft(d) = &self.state {
            // A draft's input files are kept as given (relative ones stay relative).
            copy.inputfiles = d.inputfiles.clone();
        }
        Ok(Job {
            state: State::Draft(copy),
            listed_subjobs: None,
        })
    }
}

/// Freezes a draft's parts once it is stored as job `id`: changing them would change
/// nothing.
fn freeze(py: Python<'_>, d: &Draft, id: JobId) {
    let why =
        format!("job {id} is stored: its definition cannot change (copy() it to make a new job)");
    d.application.borrow_mut(py).frozen = Some(why.clone());
    if let Ok(b) = d.backend.bind(py).cast::<Backend>() {
        b.borrow_mut().frozen = Some(why.clone());
    }
    if let Some(s) = &d.splitter {
        let s = s.bind(py);
        if let Ok(a) = s.cast::<definition::ArgSplitter>() {
            a.borrow_mut().frozen = Some(why);
        } else if let Ok(g) = s.cast::<definition::GenericSplitter>() {
            g.borrow_mut().frozen = Some(why);
        }
    }
}

/// A stored job, fresh from the store or as cached.
pub(crate) fn read_job(
    py: Python<'_>,
    shared: &Arc<Shared>,
    id: JobId,
    fresh: bool,
) -> PyResult<Arc<ganga_core::Job>> {
    let ctx = shared.session.context().map_err(errors::from_session)?;
    let found = py
        .detach(|| {
            let cache = ctx.store.cache();
            if fresh {
                cache.forget(id);
            }
            cache.job(id)
        })
        .map_err(|e| errors::ganga(e.to_string()))?;
    found.ok_or_else(|| errors::no_such_job(format!("job {id} does not exist")))
}

/// The status of a stored job as it is now: its summary, read from the store itself.
fn current_status(py: Python<'_>, shared: &Arc<Shared>, id: JobId) -> PyResult<Status> {
    let ctx = shared.session.context().map_err(errors::from_session)?;
    let page = py
        .detach(|| ctx.store.store().summaries(id, 1))
        .map_err(|e| errors::ganga(e.to_string()))?;
    match page.into_iter().next() {
        Some(ganga_core::SummaryEntry::Readable(s)) if s.id == id => Ok(s.status),
        Some(ganga_core::SummaryEntry::Unreadable { id: got, error }) if got == id => {
            Err(errors::ganga(format!("job {id} is unreadable: {error}")))
        }
        _ => Err(errors::no_such_job(format!("job {id} does not exist"))),
    }
}

/// A `UserWarning` for the script's user.
fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
    PyErr::warn(
        py,
        py.get_type::<pyo3::exceptions::PyUserWarning>().as_any(),
        &message,
        1,
    )
}

/// Says what a submission did: the undecided units as warnings, the refused ones as a
/// `SubmitError`.
fn outcome(py: Python<'_>, report: &SubmitReport) -> PyResult<()> {
    for (unit, reason) in &report.undecided {
        let message = format!(
            "job {unit}: not known whether its backend took it ({reason}); the monitor will ask"
        );
        warn(py, &message)?;
    }
    if report.failed.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let mut lines: Vec<String> = report
        .failed
        .iter()
        .take(SHOWN)
        .map(|(unit, reason)| format!("job {unit}: submission failed: {reason}"))
        .collect();
    if report.failed.len() > SHOWN {
        lines.push(format!(
            "... and {} more (they are `failed`: job.subjobs.select(status='failed'))",
            report.failed.len() - SHOWN
        ));
    }
    let err = SubmitError::new_err(format!(
        "job {}: {} of {} units refused by the backend:\n{}",
        report.job,
        report.failed.len(),
        report.failed.len() + report.submitted + report.undecided.len(),
        lines.join("\n")
    ));
    err.value(py).setattr("job_id", report.job)?;
    Err(err)
}

/// Hands the submitted jobs to a monitor; says so when none will drive them.
fn after_submit(py: Python<'_>, shared: &Arc<Shared>, jobs: Vec<JobId>) -> PyResult<()> {
    let s = shared.clone();
    if let Some(note) = block_on(
        py,
        async move { monitoring::ensure_monitor(&s, jobs).await },
    )? {
        warn(py, &note)?;
    }
    Ok(())
}

#[pymethods]
impl Job {
    #[new]
    #[pyo3(signature = (name = None, comment = None, application = None, backend = None, splitter = None, inputfiles = None, outputfiles = None, do_auto_resubmit = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Option<&Bound<'_, PyAny>>,
        comment: Option<&Bound<'_, PyAny>>,
        application: Option<&Bound<'_, PyAny>>,
        backend: Option<&Bound<'_, PyAny>>,
        splitter: Option<&Bound<'_, PyAny>>,
        inputfiles: Option<&Bound<'_, PyAny>>,
        outputfiles: Option<&Bound<'_, PyAny>>,
        do_auto_resubmit: Option<bool>,
    ) -> PyResult<Job> {
        let backend = match backend {
            Some(b) => backend_from(py, b)?,
            None => {
                // The config's default backend, as a job file without [backend] gets.
                let shared = shared::current(py)?;
                let name = shared.session.config().defaults.backend.clone();
                backend_from(py, pyo3::types::PyString::new(py, &name).as_any())?
            }
        };
        let application = match application {
            Some(a) => application_from(py, a)?,
            None => Py::new(
                py,
                Executable::of(
                    &ganga_core::Executable {
                        exe: "echo".into(),
                        args: vec!["Hello World".into()],
                        env: Default::default(),
                    },
                    None,
                ),
            )?,
        };
        Ok(Job {
            state: State::Draft(Draft {
                name: name
                    .map(|n| convert::text(n, "Job.name"))
                    .transpose()?
                    .unwrap_or_default(),
                comment: comment
                    .map(|c| convert::text(c, "Job.comment"))
                    .transpose()?
                    .unwrap_or_default(),
                application,
                backend,
                splitter: match splitter {
                    Some(s) => splitter_from(py, s)?,
                    None => None,
                },
                inputfiles: inputfiles
                    .map(inputfiles_from)
                    .transpose()?
                    .unwrap_or_default(),
                outputfiles: outputfiles
                    .map(outputfiles_from)
                    .transpose()?
                    .unwrap_or_default(),
                auto_resubmit: do_auto_resubmit,
            }),
            listed_subjobs: None,
        })
    }

    /// The job's id (a subjob's index within its master); `None` until submitted.
    #[getter]
    fn id(&self) -> Option<u64> {
        match &self.state {
            State::Draft(_) => None,
            State::Stored { id, .. } => Some(*id),
            State::Sub(s) => Some(u64::from(s.index)),
        }
    }

    /// `3`, or `3.1` for a subjob; `None` until submitted.
    #[getter]
    pub(crate) fn fqid(&self) -> Option<String> {
        self.job_ref().map(|r| r.to_string())
    }

    /// Ganga's status: `new`, `submitting`, `submitted`, `running`, `completing`,
    /// `completed`, `failed`, `killed`... A job's is read now; a subjob's is as it was
    /// when it was read (ask `job.subjobs` again for a newer one).
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyString>> {
        let status = match &self.state {
            State::Draft(_) => Status::New,
            State::Stored { shared, id } => current_status(py, shared, *id)?,
            State::Sub(s) => s.status,
        };
        Ok(convert::status_str(py, status))
    }

    #[getter]
    fn name(&mut self, py: Python<'_>) -> PyResult<String> {
        match &self.state {
            State::Draft(d) => Ok(d.name.clone()),
            _ => Ok(self.spec(py)?.name),
        }
    }

    #[setter]
    fn set_name(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = convert::text(value, "Job.name")?;
        self.draft_mut()?.name = name;
        Ok(())
    }

    #[getter]
    fn comment(&mut self, py: Python<'_>) -> PyResult<String> {
        match &self.state {
            State::Draft(d) => Ok(d.comment.clone()),
            _ => Ok(self.spec(py)?.comment),
        }
    }

    #[setter]
    fn set_comment(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let comment = convert::text(value, "Job.comment")?;
        self.draft_mut()?.comment = comment;
        Ok(())
    }

    /// What runs: an `Executable`. A draft's is changed in place
    /// (`j.application.args = [...]`); a stored job's is read-only.
    #[getter]
    fn application(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let State::Draft(d) = &self.state {
            return Ok(d.application.clone_ref(py).into_any());
        }
        let spec = self.spec(py)?;
        Ok(Py::new(
            py,
            Executable::of(spec.application.executable(), self.frozen_why()),
        )?
        .into_any())
    }

    #[setter]
    fn set_application(&mut self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.draft()?;
        let app = application_from(py, value)?;
        self.draft_mut()?.application = app;
        Ok(())
    }

    /// Where it runs: `Local()`, `Slurm(queue=...)`, `Dirac(...)`... For a stored job or
    /// subjob it also says what the backend said (`id`, `exitcode`, `actualCE`).
    #[getter]
    fn backend(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let State::Draft(d) = &self.state {
            return Ok(d.backend.clone_ref(py));
        }
        let spec = self.spec(py)?;
        let info: Option<BackendInfo> = self.run_state(py)?.map(|r| r.backend);
        Backend::to_py(py, &spec.backend, info, self.frozen_why())
    }

    #[setter]
    fn set_backend(&mut self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.draft()?;
        let backend = backend_from(py, value)?;
        self.draft_mut()?.backend = backend;
        Ok(())
    }

    /// How it is split into subjobs: an `ArgSplitter`, a `GenericSplitter`, or `None`.
    #[getter]
    fn splitter(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.state {
            State::Draft(d) => Ok(d.splitter.as_ref().map(|s| s.clone_ref(py))),
            State::Sub(_) => Ok(None),
            State::Stored { .. } => {
                let job = self.record(py)?;
                job.spec
                    .splitter
                    .as_ref()
                    .map(|s| definition::splitter_to_py(py, s, self.frozen_why()))
                    .transpose()
            }
        }
    }

    #[setter]
    fn set_splitter(&mut self, py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.draft()?;
        let splitter = match value {
            Some(v) => splitter_from(py, v)?,
            None => None,
        };
        self.draft_mut()?.splitter = splitter;
        Ok(())
    }

    /// Files copied into the job's working directory before it runs.
    #[getter]
    fn inputfiles<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let files = match &self.state {
            State::Draft(d) => d.inputfiles.clone(),
            _ => self.spec(py)?.input_files,
        };
        let list = PyList::empty(py);
        for f in &files {
            list.append(convert::path(py, f)?)?;
        }
        Ok(list)
    }

    #[setter]
    fn set_inputfiles(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.draft()?;
        let files = inputfiles_from(value)?;
        self.draft_mut()?.inputfiles = files;
        Ok(())
    }

    /// Patterns of the files collected after it ran (relative to its working directory).
    /// A pattern that matches nothing makes it `failed`, as in Ganga.
    #[getter]
    fn outputfiles(&mut self, py: Python<'_>) -> PyResult<Vec<String>> {
        match &self.state {
            State::Draft(d) => Ok(d.outputfiles.clone()),
            _ => Ok(self.spec(py)?.output_files),
        }
    }

    #[setter]
    fn set_outputfiles(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.draft()?;
        let patterns = outputfiles_from(value)?;
        self.draft_mut()?.outputfiles = patterns;
        Ok(())
    }

    /// Whether failed units are resubmitted automatically (`None`: as the config says).
    #[getter]
    fn do_auto_resubmit(&mut self, py: Python<'_>) -> PyResult<Option<bool>> {
        match &self.state {
            State::Draft(d) => Ok(d.auto_resubmit),
            _ => Ok(self.spec(py)?.auto_resubmit.map(|a| a.max_attempts > 0)),
        }
    }

    #[setter]
    fn set_do_auto_resubmit(&mut self, value: Option<bool>) -> PyResult<()> {
        self.draft_mut()?.auto_resubmit = value;
        Ok(())
    }

    /// The subjobs, read from the store a page at a time as they are iterated:
    /// `len(j.subjobs)`, `j.subjobs[3]`, `j.subjobs(3)`,
    /// `j.subjobs.select(status='failed')`.
    #[getter]
    fn subjobs(&self, py: Python<'_>) -> PyResult<SubjobRegistry> {
        match &self.state {
            State::Stored { shared, id } => {
                let count = match self.listed_subjobs {
                    Some(n) => n,
                    None => read_job(py, shared, *id, false)?.subjob_count(),
                };
                Ok(SubjobRegistry::of(shared.clone(), *id, count))
            }
            State::Draft(_) | State::Sub(_) => Ok(SubjobRegistry::empty()),
        }
    }

    /// A subjob's master; `None` for a job.
    #[getter]
    fn master(&self) -> Option<Job> {
        match &self.state {
            State::Sub(s) => Some(Job::stored(s.shared.clone(), s.job)),
            _ => None,
        }
    }

    /// Where its outputs are collected (stdout, stderr, the output files); `None` until
    /// submitted.
    #[getter]
    fn outputdir<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match (self.shared(), self.job_ref()) {
            (Some(s), Some(r)) => Ok(Some(convert::path(
                py,
                &s.session.workspaces().output_dir(r),
            )?)),
            _ => Ok(None),
        }
    }

    /// Its workspace: the working directory, records and outputs.
    #[getter]
    fn workspace<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match (self.shared(), self.job_ref()) {
            (Some(s), Some(r)) => Ok(Some(convert::path(py, &s.session.workspaces().dir(r))?)),
            _ => Ok(None),
        }
    }

    /// The files collected into `outputdir` after its last run, as paths.
    #[getter]
    fn outputs<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let (Some(run), Some(shared), Some(r)) =
            (self.run_state(py)?, self.shared().cloned(), self.job_ref())
        else {
            return Ok(list);
        };
        let dir = shared.session.workspaces().output_dir(r);
        for o in &run.outputs {
            list.append(convert::path(py, &dir.join(o))?)?;
        }
        Ok(list)
    }

    /// Stores the job and hands it to its backend (a stored `new` job, e.g. one made by
    /// `ganga copy`, is handed over). Raises `InvalidJob` for a job that cannot run as
    /// described, `SubmitError` when the backend refused units (the job is stored then).
    fn submit(&mut self, py: Python<'_>) -> PyResult<()> {
        let (shared, report) = match &self.state {
            State::Draft(d) => {
                let shared = shared::current(py)?;
                let spec = draft_spec(py, d)?;
                let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let definition =
                    JobDefinition::built("Job", spec, &base).map_err(errors::from_session)?;
                let s = shared.clone();
                let report = block_on(py, async move { s.session.submit(definition).await })?
                    .map_err(errors::from_session)?;
                (shared, report)
            }
            State::Stored { shared, id } => {
                let (s, id) = (shared.clone(), *id);
                let report = block_on(py, async move {
                    let ops = s.session.operations()?;
                    Ok::<_, ganga_session::SessionError>(ops.submit(id).await?)
                })?
                .map_err(errors::from_session)?;
                (shared.clone(), report)
            }
            State::Sub(s) => {
                return Err(JobStatusError::new_err(format!(
                    "job {}.{}: a subjob is submitted with its master (resubmit() runs it again)",
                    s.job, s.index
                )));
            }
        };
        if let State::Draft(d) = &self.state {
            // Stored now: this object is that job, and its parts no longer change.
            freeze(py, d, report.job);
            self.state = State::Stored {
                shared: shared.clone(),
                id: report.job,
            };
        }
        after_submit(py, &shared, vec![report.job])?;
        outcome(py, &report)
    }

    /// Runs it again: a job's failed and killed subjobs (or the job itself if it has
    /// none), or this one subjob.
    pub(crate) fn resubmit(&self, py: Python<'_>) -> PyResult<()> {
        let (shared, r) = self.target("resubmit")?;
        let s = shared.clone();
        let report = block_on(py, async move {
            let ops = s.session.operations()?;
            Ok::<_, ganga_session::SessionError>(ops.resubmit(r).await?)
        })?
        .map_err(errors::from_session)?;
        after_submit(py, &shared, vec![report.job])?;
        outcome(py, &report)
    }

    /// Kills its submitted and running units at the backend (or this subjob).
    pub(crate) fn kill(&self, py: Python<'_>) -> PyResult<()> {
        let (shared, r) = self.target("kill")?;
        let report = block_on(py, async move {
            let ops = shared.session.operations()?;
            Ok::<_, ganga_session::SessionError>(ops.kill(r).await?)
        })?
        .map_err(errors::from_session)?;
        if report.failed.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = report
            .failed
            .iter()
            .take(5)
            .map(|(u, why)| format!("job {u}: not killed: {why}"))
            .collect();
        Err(errors::ganga(format!(
            "job {r}: {} killed, {} not:\n{}",
            report.killed.len(),
            report.failed.len(),
            lines.join("\n")
        )))
    }

    /// Removes the job, its subjobs and its files. An active job must be killed first,
    /// unless `force=True`.
    #[pyo3(signature = (force = false))]
    pub(crate) fn remove(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        let (shared, r) = match &self.state {
            State::Draft(_) => return Ok(()),
            State::Sub(s) => {
                return Err(JobStatusError::new_err(format!(
                    "job {}.{}: a subjob is removed with its master",
                    s.job, s.index
                )));
            }
            State::Stored { .. } => self.target("remove")?,
        };
        block_on(py, async move {
            let ops = shared.session.operations()?;
            Ok::<_, ganga_session::SessionError>(ops.remove(r.job, force).await?)
        })?
        .map_err(errors::from_session)
    }

    /// A new job (not submitted) with the same definition, to change and submit (a
    /// subjob's copy is the job that subjob ran).
    fn copy(&mut self, py: Python<'_>) -> PyResult<Job> {
        self.copied(py)
    }

    /// The end of its stdout, stderr or another file (relative to its working
    /// directory), even while it runs.
    #[pyo3(signature = (filename = "stdout", bytes = ganga_monitor::DEFAULT_PEEK_BYTES))]
    fn peek(&self, py: Python<'_>, filename: &str, bytes: u64) -> PyResult<String> {
        let (shared, r) = self.target("peek at")?;
        let file = match filename {
            "stdout" => PeekFile::Stdout,
            "stderr" => PeekFile::Stderr,
            other => PeekFile::Path(other.to_owned()),
        };
        let out = block_on(py, async move {
            let ops = shared.session.operations()?;
            Ok::<_, ganga_session::SessionError>(ops.peek(r, file, bytes).await?)
        })?
        .map_err(errors::from_session)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Ganga's `force_status`: `completed` or `failed`, by hand.
    pub(crate) fn force_status(&self, py: Python<'_>, status: &str) -> PyResult<()> {
        let to = convert::status(status, "force_status")?;
        let (shared, r) = self.target("force the status of")?;
        block_on(py, async move {
            let ops = shared.session.operations()?;
            Ok::<_, ganga_session::SessionError>(ops.force_status(r, to).await?)
        })?
        .map_err(errors::from_session)?;
        Ok(())
    }

    /// Blocks until the job has ended (a subjob: until its master has), monitoring it
    /// in this process when no monitor runs, and returns its status. Raises `WaitTimeout`
    /// after `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, pyo3::types::PyString>> {
        let (shared, r) = self.target("wait for")?;
        let limit = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => Some(std::time::Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "wait: timeout must be a number of seconds, at least 0, not {t}"
                )));
            }
            None => None,
        };
        let s = shared.clone();
        let outcome = block_on_stoppable(py, move |stop| async move {
            s.session
                .wait(&[r.job], limit, stop.stopped(), |_| {})
                .await
        })?
        .map_err(errors::from_session)?;
        match outcome {
            WaitOutcome::Ended => {}
            WaitOutcome::TimedOut => {
                return Err(errors::timeout(format!(
                    "job {r}: still {} after {} s",
                    current_status(py, &shared, r.job)?,
                    timeout.unwrap_or_default()
                )));
            }
            // The caller was interrupted: the interrupt is raised by block_on_stoppable.
            WaitOutcome::Stopped => {
                return Err(errors::ganga(format!("job {r}: waiting was interrupted")));
            }
        }
        match r.subjob {
            None => Ok(convert::status_str(py, current_status(py, &shared, r.job)?)),
            Some(i) => {
                let ctx = shared.session.context().map_err(errors::from_session)?;
                let found = py
                    .detach(|| {
                        ctx.store.cache().forget(r.job);
                        ctx.store.cache().statuses(r.job, i..i.saturating_add(1))
                    })
                    .map_err(|e| errors::ganga(e.to_string()))?;
                let status = found
                    .first()
                    .map(|(_, s)| *s)
                    .ok_or_else(|| errors::no_such_job(format!("job {r} does not exist")))?;
                if let State::Sub(s) = &mut self.state {
                    s.status = status;
                    s.full = None;
                }
                Ok(convert::status_str(py, status))
            }
        }
    }

    fn __repr__(&mut self, py: Python<'_>) -> PyResult<String> {
        let row = match &self.state {
            State::Draft(d) => {
                let spec = draft_spec(py, d)?;
                table::draft_row(&spec)
            }
            State::Stored { shared, id } => {
                let job = read_job(py, shared, *id, true)?;
                table::job_row(&ganga_core::JobSummary::of(&job))
            }
            State::Sub(_) => {
                let job = self.record(py)?;
                match self.subjob_record(py)? {
                    Some(sj) => table::subjob_row(&job, &sj),
                    None => return Ok("Job(?)".into()),
                }
            }
        };
        Ok(match &self.state {
            State::Sub(_) => table::render(table::SUBJOB_HEADER, &[row], table::SUBJOB_RIGHT),
            _ => table::render(table::JOB_HEADER, &[row], table::JOB_RIGHT),
        })
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<Job>() else {
            return false;
        };
        let other = other.borrow();
        match (self.job_ref(), other.job_ref()) {
            (Some(a), Some(b)) => a == b,
            _ => std::ptr::eq(self, &*other),
        }
    }

    /// Stored jobs hash by id; a draft is not hashable (its id is not known yet).
    fn __hash__(&self) -> PyResult<u64> {
        use std::hash::{Hash as _, Hasher as _};
        let r = self.job_ref().ok_or_else(|| {
            PyTypeError::new_err("a job is hashable once submitted (it has no id before)")
        })?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        r.hash(&mut h);
        Ok(h.finish())
    }
}

/// Reads a TOML job file (see docs/job-files.md) as a job to submit: Ganga's `load`.
#[pyfunction]
pub(crate) fn load(py: Python<'_>, path: PathBuf) -> PyResult<Job> {
    let shared = shared::current(py)?;
    let definition = py
        .detach(|| shared.session.read_job_file(&path))
        .map_err(errors::from_session)?;
    Ok(Job {
        state: State::Draft(draft_from_spec(py, &definition.spec)?),
        listed_subjobs: None,
    })
}
