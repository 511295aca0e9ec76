//! Ganga's `jobs` and `job.subjobs`: registries read from the store as they are walked.
//! `jobs(3)` is a job by id; iterating reads the job summaries a page at a time;
//! `jobs[0]`, `jobs[-5:]` are by position; `jobs.select(status='failed', name=...)` is a
//! slice. `job.subjobs` is the same for subjobs, whose statuses are read a store page at
//! a time, so that iterating a million of them holds one page (and the cache's budget),
//! never all of them.

use std::collections::VecDeque;
use std::sync::Arc;

use ganga_core::{JobId, JobRef, JobSummary, Status, SubjobIndex, SummaryEntry};
use ganga_monitor::SUBJOB_PAGE;
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyString};

use crate::errors;
use crate::job::{Job, read_job};
use crate::shared::{self, Shared};
use crate::{convert, table};

/// Summaries asked of the store at a time.
const SUMMARY_PAGE: u32 = 1000;

/// Which jobs a registry holds.
#[derive(Clone, Default)]
struct Filter {
    /// Exactly these (a slice by position).
    ids: Option<Arc<Vec<JobId>>>,
    minid: Option<JobId>,
    maxid: Option<JobId>,
    statuses: Vec<Status>,
    name: Option<String>,
    backend: Option<String>,
    application: Option<String>,
}

impl Filter {
    fn wants(&self, s: &JobSummary) -> bool {
        self.minid.is_none_or(|m| s.id >= m)
            && self.maxid.is_none_or(|m| s.id <= m)
            && (self.statuses.is_empty() || self.statuses.contains(&s.status))
            && self.name.as_ref().is_none_or(|n| *n == s.name)
            && self.backend.as_ref().is_none_or(|b| {
                b.eq_ignore_ascii_case(&s.backend)
                    || b.eq_ignore_ascii_case(backend_class(&s.backend))
            })
            && self
                .application
                .as_ref()
                .is_none_or(|a| *a == s.application || a.eq_ignore_ascii_case("executable"))
    }

    fn is_everything(&self) -> bool {
        self.ids.is_none()
            && self.minid.is_none()
            && self.maxid.is_none()
            && self.statuses.is_empty()
            && self.name.is_none()
            && self.backend.is_none()
            && self.application.is_none()
    }
}

/// Ganga's class name of a backend plugin, for `select(backend='Local')`.
fn backend_class(kind: &str) -> &str {
    match kind {
        "local" => "Local",
        "dirac" => "Dirac",
        "batch" => "Batch",
        other => other,
    }
}

/// Walks the jobs a filter wants, a page of summaries at a time.
struct Walk {
    shared: Arc<Shared>,
    filter: Filter,
    from: Option<JobId>,
    position: usize,
    page: VecDeque<JobSummary>,
}

impl Walk {
    fn new(shared: Arc<Shared>, filter: Filter) -> Walk {
        Walk {
            shared,
            filter,
            from: Some(0),
            position: 0,
            page: VecDeque::new(),
        }
    }

    /// The next job wanted: its id and, when read from the summaries, its summary.
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<(JobId, Option<JobSummary>)>> {
        if let Some(ids) = &self.filter.ids {
            let id = ids.get(self.position).copied();
            self.position += 1;
            return Ok(id.map(|id| (id, None)));
        }
        loop {
            if let Some(s) = self.page.pop_front() {
                return Ok(Some((s.id, Some(s))));
            }
            let Some(from) = self.from else {
                return Ok(None);
            };
            if self.filter.maxid.is_some_and(|m| from > m) {
                return Ok(None);
            }
            let from = from.max(self.filter.minid.unwrap_or(0));
            let ctx = self
                .shared
                .session
                .context()
                .map_err(errors::from_session)?;
            let page = py
                .detach(|| ctx.store.store().summaries(from, SUMMARY_PAGE))
                .map_err(|e| errors::ganga(e.to_string()))?;
            self.from = page.last().and_then(|last| last.id().checked_add(1));
            for entry in page {
                match entry {
                    SummaryEntry::Readable(s) if self.filter.wants(&s) => self.page.push_back(s),
                    SummaryEntry::Readable(_) => {}
                    SummaryEntry::Unreadable { id, error } => {
                        tracing::warn!("job {id} is unreadable: {error}");
                    }
                }
            }
        }
    }
}

/// Ganga's `jobs`, or a slice of it (`jobs.select(...)`, `jobs[-5:]`).
#[pyclass(name = "JobRegistry", module = "ganga_rs")]
pub(crate) struct JobRegistry {
    /// `None`: the current session (the module's `jobs`); a slice keeps its own.
    shared: Option<Arc<Shared>>,
    filter: Filter,
    label: String,
}

impl JobRegistry {
    pub(crate) fn everything() -> JobRegistry {
        JobRegistry {
            shared: None,
            filter: Filter::default(),
            label: "jobs".into(),
        }
    }

    fn shared(&self, py: Python<'_>) -> PyResult<Arc<Shared>> {
        match &self.shared {
            Some(s) => Ok(s.clone()),
            None => shared::current(py),
        }
    }

    /// Every id this registry holds, in order (ids are 8 bytes: a million is 8 MB).
    fn ids(&self, py: Python<'_>) -> PyResult<Vec<JobId>> {
        if let Some(ids) = &self.filter.ids {
            return Ok(ids.to_vec());
        }
        let mut walk = Walk::new(self.shared(py)?, self.filter.clone());
        let mut out = Vec::new();
        while let Some((id, _)) = walk.next(py)? {
            out.push(id);
        }
        Ok(out)
    }

    fn slice(&self, shared: Arc<Shared>, filter: Filter, label: String) -> JobRegistry {
        JobRegistry {
            shared: Some(shared),
            filter,
            label,
        }
    }

    /// Each job of the registry, for a verb.
    fn each(&self, py: Python<'_>, verb: impl Fn(&Bound<'_, Job>) -> PyResult<()>) -> PyResult<()> {
        let shared = self.shared(py)?;
        let mut failures = Vec::new();
        for id in self.ids(py)? {
            let job = Bound::new(py, Job::stored(shared.clone(), id))?;
            if let Err(e) = verb(&job) {
                failures.push(format!("job {id}: {e}"));
            }
        }
        match failures.len() {
            0 => Ok(()),
            _ => Err(errors::ganga(failures.join("\n"))),
        }
    }
}

#[pymethods]
impl JobRegistry {
    /// A job by id (`jobs(3)`), or a subjob (`jobs('3.1')`).
    fn __call__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Job> {
        let r = if let Ok(s) = id.cast::<PyString>() {
            s.to_str()?
                .parse::<JobRef>()
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?
        } else {
            if !id.is_instance_of::<pyo3::types::PyInt>() {
                return Err(PyTypeError::new_err(format!(
                    "jobs(id): expected a job id (int) or 'ID.SUB', not {}",
                    convert::type_name(id)
                )));
            }
            // Any int is a question: one no job can have is answered as such.
            let n = id
                .extract::<u64>()
                .map_err(|_| errors::no_such_job(format!("job {} does not exist", id)))?;
            JobRef::job(n)
        };
        let shared = self.shared(py)?;
        let job = read_job(py, &shared, r.job, true)?;
        if let Some(ids) = &self.filter.ids
            && !ids.contains(&r.job)
        {
            return Err(errors::no_such_job(format!(
                "job {} is not in {}",
                r.job, self.label
            )));
        }
        match r.subjob {
            None => Ok(Job::stored(shared, r.job)),
            Some(i) => SubjobRegistry::of(shared, r.job, job.subjob_count()).at_index(py, i),
        }
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        if let Some(ids) = &self.filter.ids {
            return Ok(ids.len());
        }
        let mut walk = Walk::new(self.shared(py)?, self.filter.clone());
        let mut n = 0;
        while walk.next(py)?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<JobIterator> {
        Ok(JobIterator {
            walk: Walk::new(self.shared(py)?, self.filter.clone()),
        })
    }

    /// By position: `jobs[0]`, `jobs[-1]`, `jobs[-5:]` (a slice is a registry).
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let shared = self.shared(py)?;
        let ids = self.ids(py)?;
        if let Ok(slice) = key.cast::<PySlice>() {
            let len = isize::try_from(ids.len()).unwrap_or(isize::MAX);
            let indices = slice.indices(len)?;
            let mut picked = Vec::new();
            let mut i = indices.start;
            while (indices.step > 0 && i < indices.stop) || (indices.step < 0 && i > indices.stop) {
                if let Some(id) = usize::try_from(i).ok().and_then(|k| ids.get(k)) {
                    picked.push(*id);
                }
                i += indices.step;
            }
            let filter = Filter {
                ids: Some(Arc::new(picked)),
                ..Filter::default()
            };
            let label = format!("{}[{}]", self.label, key.str()?);
            return Ok(Py::new(py, self.slice(shared, filter, label))?.into_any());
        }
        let k: i64 = key.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{}[...]: expected a position (int) or a slice, not {} (use jobs(id) for a job by id)",
                self.label,
                convert::type_name(key)
            ))
        })?;
        let len = i64::try_from(ids.len()).unwrap_or(i64::MAX);
        let at = if k < 0 { k + len } else { k };
        let id = usize::try_from(at)
            .ok()
            .and_then(|at| ids.get(at))
            .ok_or_else(|| {
                PyIndexError::new_err(format!("{}[{k}]: it holds {len} jobs", self.label))
            })?;
        Ok(Py::new(py, Job::stored(shared, *id))?.into_any())
    }

    fn __contains__(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = match item.cast::<Job>() {
            Ok(j) => match j.borrow().fqid() {
                Some(f) if !f.contains('.') => f.parse::<JobId>().ok(),
                _ => None,
            },
            Err(_) => item.extract::<u64>().ok(),
        };
        Ok(id.is_some_and(|id| self.ids(py).is_ok_and(|ids| ids.contains(&id))))
    }

    /// A slice of the jobs with all of these: ids from `minid` to `maxid`, a status (or
    /// one of a list), a name, a backend (`'Local'` or `'local'`), an application.
    #[pyo3(signature = (minid = None, maxid = None, status = None, name = None, backend = None, application = None))]
    #[allow(clippy::too_many_arguments)]
    fn select(
        &self,
        py: Python<'_>,
        minid: Option<u64>,
        maxid: Option<u64>,
        status: Option<&Bound<'_, PyAny>>,
        name: Option<String>,
        backend: Option<String>,
        application: Option<String>,
    ) -> PyResult<JobRegistry> {
        let mut filter = self.filter.clone();
        let mut said = Vec::new();
        if let Some(m) = minid {
            filter.minid = Some(filter.minid.map_or(m, |old| old.max(m)));
            said.push(format!("minid={m}"));
        }
        if let Some(m) = maxid {
            filter.maxid = Some(filter.maxid.map_or(m, |old| old.min(m)));
            said.push(format!("maxid={m}"));
        }
        if let Some(s) = status {
            let wanted = convert::statuses(s, "select(status=...)")?;
            filter.statuses = if filter.statuses.is_empty() {
                wanted
            } else {
                filter
                    .statuses
                    .iter()
                    .copied()
                    .filter(|s| wanted.contains(s))
                    .collect()
            };
            said.push(format!("status={}", s.repr()?));
        }
        if let Some(n) = name {
            said.push(format!("name={}", PyString::new(py, &n).repr()?));
            filter.name = Some(n);
        }
        if let Some(b) = backend {
            said.push(format!("backend={}", PyString::new(py, &b).repr()?));
            filter.backend = Some(b);
        }
        if let Some(a) = application {
            said.push(format!("application={}", PyString::new(py, &a).repr()?));
            filter.application = Some(a);
        }
        let label = format!("{}.select({})", self.label, said.join(", "));
        Ok(self.slice(self.shared(py)?, filter, label))
    }

    /// The ids of the jobs it holds.
    #[pyo3(name = "ids")]
    fn py_ids(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        self.ids(py)
    }

    /// Kills each job.
    fn kill(&self, py: Python<'_>) -> PyResult<()> {
        self.each(py, |j| j.borrow().kill(j.py()))
    }

    /// Resubmits each job (its failed and killed subjobs).
    fn resubmit(&self, py: Python<'_>) -> PyResult<()> {
        self.each(py, |j| j.borrow().resubmit(j.py()))
    }

    /// Removes each job (active ones only with `force=True`).
    #[pyo3(signature = (force = false))]
    fn remove(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        if self.filter.is_everything() && self.shared.is_none() {
            return Err(errors::ganga(
                "jobs.remove() would remove every job: select() them first (jobs.select(...).remove())",
            ));
        }
        self.each(py, |j| j.borrow().remove(j.py(), force))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut walk = Walk::new(self.shared(py)?, self.filter.clone());
        let mut rows = Vec::new();
        let mut total = 0usize;
        while let Some((id, summary)) = walk.next(py)? {
            total += 1;
            if rows.len() >= table::MAX_ROWS {
                continue;
            }
            let summary = match summary {
                Some(s) => s,
                None => {
                    let job = read_job(py, &walk.shared, id, false)?;
                    JobSummary::of(&job)
                }
            };
            rows.push(table::job_row(&summary));
        }
        Ok(listing(
            &self.label,
            total,
            rows,
            table::JOB_HEADER,
            table::JOB_RIGHT,
        ))
    }
}

/// `Registry Slice: LABEL (N objects)` and the table, cut at [`table::MAX_ROWS`].
fn listing(
    label: &str,
    total: usize,
    rows: Vec<Vec<String>>,
    header: &[&str],
    right: &[usize],
) -> String {
    let mut out = format!(
        "Registry Slice: {label} ({total} {})\n",
        if total == 1 { "object" } else { "objects" }
    );
    if total == 0 {
        return out.trim_end().to_owned();
    }
    let shown = rows.len();
    out.push_str(&table::render(header, &rows, right));
    if total > shown {
        out.push_str(&format!(
            "\n... and {} more (iterate over it to see them all)",
            total - shown
        ));
    }
    out
}

/// Iterates over a job registry.
#[pyclass(name = "JobIterator", module = "ganga_rs")]
pub(crate) struct JobIterator {
    walk: Walk,
}

#[pymethods]
impl JobIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Job>> {
        Ok(self.walk.next(py)?.map(|(id, summary)| match summary {
            Some(s) => Job::listed(self.walk.shared.clone(), &s),
            None => Job::stored(self.walk.shared.clone(), id),
        }))
    }
}

/// A job's subjobs (`job.subjobs`), or a selection of them.
#[pyclass(name = "SubjobRegistry", module = "ganga_rs")]
pub(crate) struct SubjobRegistry {
    /// `None` for a job that is not split (or not stored): no subjobs.
    shared: Option<Arc<Shared>>,
    job: JobId,
    /// Subjobs from `start` to before `end` (the job has at least `end`).
    start: SubjobIndex,
    end: SubjobIndex,
    statuses: Vec<Status>,
}

impl SubjobRegistry {
    pub(crate) fn of(shared: Arc<Shared>, job: JobId, count: u32) -> SubjobRegistry {
        SubjobRegistry {
            shared: Some(shared),
            job,
            start: 0,
            end: count,
            statuses: Vec::new(),
        }
    }

    pub(crate) fn empty() -> SubjobRegistry {
        SubjobRegistry {
            shared: None,
            job: 0,
            start: 0,
            end: 0,
            statuses: Vec::new(),
        }
    }

    fn iter(&self) -> SubjobIterator {
        SubjobIterator {
            shared: self.shared.clone(),
            job: self.job,
            next: self.start,
            end: self.end,
            statuses: self.statuses.clone(),
            page: VecDeque::new(),
        }
    }

    /// The subjob of that index, with its status as stored now.
    fn at_index(&self, py: Python<'_>, index: SubjobIndex) -> PyResult<Job> {
        let absent = || {
            errors::no_such_job(format!(
                "job {}.{index} does not exist (job {} has {} subjobs)",
                self.job, self.job, self.end
            ))
        };
        let Some(shared) = &self.shared else {
            return Err(errors::no_such_job(format!(
                "subjob {index}: this job has no subjobs"
            )));
        };
        if index < self.start || index >= self.end {
            return Err(absent());
        }
        let ctx = shared.session.context().map_err(errors::from_session)?;
        let job = self.job;
        let found = py
            .detach(|| {
                ctx.store.cache().forget(job);
                ctx.store
                    .cache()
                    .statuses(job, index..index.saturating_add(1))
            })
            .map_err(|e| errors::ganga(e.to_string()))?;
        let (_, status) = found
            .into_iter()
            .find(|(i, _)| *i == index)
            .ok_or_else(absent)?;
        if !self.statuses.is_empty() && !self.statuses.contains(&status) {
            return Err(absent());
        }
        Ok(Job::subjob(shared.clone(), self.job, index, status))
    }

    fn label(&self) -> String {
        if self.shared.is_none() {
            return "subjobs".into();
        }
        let mut label = format!("jobs({}).subjobs", self.job);
        if !self.statuses.is_empty() {
            let names: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            label.push_str(&format!(".select(status={names:?})"));
        }
        label
    }

    /// Each subjob selected, for a verb; failures are collected, not stopping the rest.
    fn each(&self, py: Python<'_>, verb: impl Fn(&Bound<'_, Job>) -> PyResult<()>) -> PyResult<()> {
        let mut it = self.iter();
        let mut failures = Vec::new();
        // The selection is read first: a verb changes the statuses it was made by.
        let mut chosen = Vec::new();
        while let Some(sj) = it.next_subjob(py)? {
            chosen.push(sj);
        }
        for sj in chosen {
            let sj = Bound::new(py, sj)?;
            if let Err(e) = verb(&sj) {
                failures.push(e.to_string());
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(errors::ganga(failures.join("\n")))
        }
    }
}

#[pymethods]
impl SubjobRegistry {
    /// A subjob by its index within the job (Ganga's `j.subjobs(3)`).
    fn __call__(&self, py: Python<'_>, index: i64) -> PyResult<Job> {
        let i = SubjobIndex::try_from(index)
            .map_err(|_| errors::no_such_job(format!("job {}.{index} does not exist", self.job)))?;
        self.at_index(py, i)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let all = (self.end - self.start) as usize;
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        if self.statuses.is_empty() {
            return Ok(all);
        }
        let job = read_job(py, shared, self.job, true)?;
        if self.start == 0 && self.end == job.subjob_count() {
            // The job counts its subjobs by status: nothing to read.
            return Ok(self
                .statuses
                .iter()
                .map(|&s| job.subjobs.get(s) as usize)
                .sum());
        }
        let mut it = self.iter();
        let mut n = 0;
        while it.next_subjob(py)?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn __iter__(&self) -> SubjobIterator {
        self.iter()
    }

    /// By position in the selection: `subjobs[0]`, `subjobs[-1]`; a slice is a list.
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let len = isize::try_from(self.__len__(py)?).unwrap_or(isize::MAX);
            let ix = slice.indices(len)?;
            let list = PyList::empty(py);
            if self.statuses.is_empty() && ix.step == 1 {
                // A range of indices: only those pages are read.
                let first = self
                    .start
                    .saturating_add(u32::try_from(ix.start.max(0)).unwrap_or(u32::MAX));
                let last = self
                    .start
                    .saturating_add(u32::try_from(ix.stop.max(0)).unwrap_or(u32::MAX));
                let mut it = self.iter();
                it.next = first;
                it.end = last.min(self.end);
                while let Some(sj) = it.next_subjob(py)? {
                    list.append(Py::new(py, sj)?)?;
                }
                return Ok(list.into_any().unbind());
            }
            let mut all = Vec::new();
            let mut it = self.iter();
            while let Some(sj) = it.next_subjob(py)? {
                all.push(sj);
            }
            let mut i = ix.start;
            let mut picked: Vec<Option<Job>> = all.into_iter().map(Some).collect();
            while (ix.step > 0 && i < ix.stop) || (ix.step < 0 && i > ix.stop) {
                if let Some(sj) = usize::try_from(i)
                    .ok()
                    .and_then(|k| picked.get_mut(k))
                    .and_then(Option::take)
                {
                    list.append(Py::new(py, sj)?)?;
                }
                i += ix.step;
            }
            return Ok(list.into_any().unbind());
        }
        let k: i64 = key.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{}[...]: expected a position (int) or a slice, not {}",
                self.label(),
                convert::type_name(key)
            ))
        })?;
        if self.statuses.is_empty() {
            let len = i64::from(self.end - self.start);
            let at = if k < 0 { k + len } else { k };
            if at < 0 || at >= len {
                return Err(PyIndexError::new_err(format!(
                    "{}[{k}]: it holds {len} subjobs",
                    self.label()
                )));
            }
            let index = self.start + u32::try_from(at).unwrap_or(u32::MAX);
            return Ok(Py::new(py, self.at_index(py, index)?)?.into_any());
        }
        let len = i64::try_from(self.__len__(py)?).unwrap_or(i64::MAX);
        let at = if k < 0 { k + len } else { k };
        let mut it = self.iter();
        let mut n = 0i64;
        while let Some(sj) = it.next_subjob(py)? {
            if n == at {
                return Ok(Py::new(py, sj)?.into_any());
            }
            n += 1;
        }
        Err(PyIndexError::new_err(format!(
            "{}[{k}]: it holds {n} subjobs",
            self.label()
        )))
    }

    /// The subjobs with all of these: an index from `minid` to `maxid`, a status (or one
    /// of a list).
    #[pyo3(signature = (minid = None, maxid = None, status = None))]
    fn select(
        &self,
        minid: Option<u32>,
        maxid: Option<u32>,
        status: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SubjobRegistry> {
        let mut statuses = self.statuses.clone();
        if let Some(s) = status {
            let wanted = convert::statuses(s, "select(status=...)")?;
            statuses = if statuses.is_empty() {
                wanted
            } else {
                statuses
                    .into_iter()
                    .filter(|s| wanted.contains(s))
                    .collect()
            };
            if statuses.is_empty() {
                // Nothing can be in none of the statuses.
                return Ok(SubjobRegistry::empty());
            }
        }
        let start = self.start.max(minid.unwrap_or(0));
        let end = match maxid {
            Some(m) => self.end.min(m.saturating_add(1)),
            None => self.end,
        };
        Ok(SubjobRegistry {
            shared: self.shared.clone(),
            job: self.job,
            start,
            end: end.max(start),
            statuses,
        })
    }

    /// Resubmits each subjob selected (Ganga's
    /// `j.subjobs.select(status='failed').resubmit()`).
    fn resubmit(&self, py: Python<'_>) -> PyResult<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let job = read_job(py, shared, self.job, true)?;
        let whole = self.start == 0 && self.end == job.subjob_count();
        let failed = Status::Failed;
        let killed = Status::Killed;
        let only = |s: &[Status], other: Status| {
            s.iter().all(|x| *x == failed || *x == killed) && job.subjobs.get(other) == 0
        };
        let same_as_job = whole
            && match self.statuses.as_slice() {
                [a, b] => (*a == failed && *b == killed) || (*a == killed && *b == failed),
                [s] if *s == failed => only(&self.statuses, killed),
                [s] if *s == killed => only(&self.statuses, failed),
                _ => false,
            };
        if same_as_job {
            // What the job's own resubmit takes, in one submission.
            let stored = Bound::new(py, Job::stored(shared.clone(), self.job))?;
            return stored.borrow().resubmit(py);
        }
        self.each(py, |sj| sj.borrow().resubmit(sj.py()))
    }

    /// Kills each subjob selected.
    fn kill(&self, py: Python<'_>) -> PyResult<()> {
        self.each(py, |sj| sj.borrow().kill(sj.py()))
    }

    /// Forces each subjob selected to `completed` or `failed`.
    fn force_status(&self, py: Python<'_>, status: &str) -> PyResult<()> {
        convert::status(status, "force_status")?;
        self.each(py, |sj| sj.borrow().force_status(sj.py(), status))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let Some(shared) = &self.shared else {
            return Ok("Registry Slice: no subjobs".into());
        };
        let job = read_job(py, shared, self.job, true)?;
        let ctx = shared.session.context().map_err(errors::from_session)?;
        let mut rows = Vec::new();
        let mut total = 0usize;
        let mut next = self.start;
        while next < self.end {
            let range = next..self.end.min(next.saturating_add(SUBJOB_PAGE));
            next = range.end;
            let id = self.job;
            let page = py
                .detach(|| ctx.store.cache().subjobs(id, range))
                .map_err(|e| errors::ganga(e.to_string()))?;
            for sj in page {
                if self.statuses.is_empty() || self.statuses.contains(&sj.run.status) {
                    total += 1;
                    if rows.len() < table::MAX_ROWS {
                        rows.push(table::subjob_row(&job, &sj));
                    }
                }
            }
        }
        Ok(listing(
            &self.label(),
            total,
            rows,
            table::SUBJOB_HEADER,
            table::SUBJOB_RIGHT,
        ))
    }
}

/// Iterates over subjobs, reading their statuses a store page at a time.
#[pyclass(name = "SubjobIterator", module = "ganga_rs")]
pub(crate) struct SubjobIterator {
    shared: Option<Arc<Shared>>,
    job: JobId,
    next: SubjobIndex,
    end: SubjobIndex,
    statuses: Vec<Status>,
    page: VecDeque<(SubjobIndex, Status)>,
}

impl SubjobIterator {
    fn next_subjob(&mut self, py: Python<'_>) -> PyResult<Option<Job>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        loop {
            if let Some((index, status)) = self.page.pop_front() {
                return Ok(Some(Job::subjob(shared.clone(), self.job, index, status)));
            }
            if self.next >= self.end {
                return Ok(None);
            }
            // Whole store pages: the first may start mid-page, the rest are aligned.
            let page_end = (self.next / SUBJOB_PAGE + 1).saturating_mul(SUBJOB_PAGE);
            let range = self.next..self.end.min(page_end);
            self.next = range.end;
            let ctx = shared.session.context().map_err(errors::from_session)?;
            let job = self.job;
            let statuses = py
                .detach(|| ctx.store.cache().statuses(job, range))
                .map_err(|e| errors::ganga(e.to_string()))?;
            let wanted = &self.statuses;
            self.page.extend(
                statuses
                    .into_iter()
                    .filter(|(_, s)| wanted.is_empty() || wanted.contains(s)),
            );
        }
    }
}

#[pymethods]
impl SubjobIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Job>> {
        self.next_subjob(py)
    }
}
