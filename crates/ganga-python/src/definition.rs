//! What a job is made of, with Ganga's names: `Executable`, `ArgSplitter`,
//! `GenericSplitter`, `LocalFile`, `File`, and the backends (`Backend` for any plugin by
//! name; `Local`, `Batch` and its systems `Slurm`, `SGE`, `PBS`, `LSF`, `Condor`;
//! `Dirac`). Values are checked for type when they are set; what only a backend can
//! judge is checked at `submit()`, as a job file's is.
//!
//! An object read from a stored job is frozen: setting an attribute raises
//! `ReadOnlyError`, rather than changing a copy nobody will read.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ganga_core::{ArgLists, BackendConfig, BackendInfo, SplitAttribute, Splitter, Value};
use pyo3::BoundObject as _;
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert;
use crate::errors;

/// Why an object cannot change, when it cannot.
pub(crate) type Frozen = Option<String>;

fn check_frozen(frozen: &Frozen) -> PyResult<()> {
    match frozen {
        Some(why) => Err(errors::read_only(why.clone())),
        None => Ok(()),
    }
}

/// Python's repr of a value (`'text'`, `['a', 'b']`).
fn py_repr(py: Python<'_>, v: impl for<'py> IntoPyObject<'py>) -> String {
    v.into_pyobject(py)
        .ok()
        .and_then(|o| o.into_bound().into_any().repr().ok().map(|r| r.to_string()))
        .unwrap_or_else(|| "?".to_owned())
}

/// A path given by a script, made absolute against the working directory.
fn absolute(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    std::path::absolute(&p).unwrap_or(p)
}

/// Ganga's `Executable`: a program, its arguments and extra environment. Ganga's
/// defaults: `echo 'Hello World'`.
#[pyclass(name = "Executable", module = "ganga_rs")]
pub(crate) struct Executable {
    pub(crate) exe: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) frozen: Frozen,
}

impl Executable {
    pub(crate) fn of(e: &ganga_core::Executable, frozen: Frozen) -> Executable {
        Executable {
            exe: e.exe.clone(),
            args: e.args.clone(),
            env: e.env.clone(),
            frozen,
        }
    }

    pub(crate) fn to_core(&self) -> ganga_core::Executable {
        ganga_core::Executable {
            exe: self.exe.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
        }
    }

    /// A program: a name, a path, or a `File`/`LocalFile` (its absolute path).
    fn exe_from(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        if let Ok(f) = obj.cast::<File>() {
            return Ok(f.borrow().name.clone());
        }
        if let Ok(f) = obj.cast::<LocalFile>() {
            return Ok(f.borrow().path().to_string_lossy().into_owned());
        }
        convert::text(obj, "Executable.exe").map_err(|_| {
            PyTypeError::new_err(format!(
                "Executable.exe: expected a string or a File, not {}",
                convert::type_name(obj)
            ))
        })
    }
}

#[pymethods]
impl Executable {
    #[new]
    #[pyo3(signature = (exe = None, args = None, env = None))]
    fn new(
        exe: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Executable> {
        Ok(Executable {
            exe: match exe {
                Some(e) => Executable::exe_from(e)?,
                None => "echo".to_owned(),
            },
            args: match args {
                Some(a) => convert::words(a, "Executable.args")?,
                None => vec!["Hello World".to_owned()],
            },
            env: match env {
                Some(e) => convert::env(e, "Executable.env")?,
                None => BTreeMap::new(),
            },
            frozen: None,
        })
    }

    /// The program: a name looked up on `PATH`, or a path.
    #[getter]
    fn exe(&self) -> String {
        self.exe.clone()
    }

    #[setter]
    fn set_exe(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.exe = Executable::exe_from(value)?;
        Ok(())
    }

    /// Its arguments (a new list each time: assign a list to change them).
    #[getter]
    fn args(&self) -> Vec<String> {
        self.args.clone()
    }

    #[setter]
    fn set_args(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.args = convert::words(value, "Executable.args")?;
        Ok(())
    }

    /// Variables added to the environment it runs in.
    #[getter]
    fn env(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }

    #[setter]
    fn set_env(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.env = convert::env(value, "Executable.env")?;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let mut s = format!(
            "Executable(exe={}, args={}",
            py_repr(py, &self.exe),
            py_repr(py, self.args.clone())
        );
        if !self.env.is_empty() {
            s.push_str(&format!(", env={}", py_repr(py, self.env.clone())));
        }
        s.push(')');
        s
    }
}

/// Ganga's `ArgSplitter`: one subjob per argument list, which replaces the application's
/// arguments (or, with `append=True`, is added after them).
#[pyclass(name = "ArgSplitter", module = "ganga_rs")]
pub(crate) struct ArgSplitter {
    pub(crate) args: Vec<Vec<String>>,
    pub(crate) append: bool,
    pub(crate) frozen: Frozen,
}

/// Argument lists: each a list of words (or one word alone).
fn arg_lists(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
    let field = "ArgSplitter.args";
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected a list of argument lists, not str"
        )));
    }
    convert::sequence(obj, field, "a list of argument lists")?
        .iter()
        .enumerate()
        .map(|(i, list)| {
            let f = format!("{field}[{i}]");
            if list.is_instance_of::<PyList>() || list.is_instance_of::<pyo3::types::PyTuple>() {
                convert::words(list, &f)
            } else {
                convert::word(list, &f).map(|w| vec![w])
            }
        })
        .collect()
}

impl ArgSplitter {
    fn to_core(&self) -> Splitter {
        let mut lists = ArgLists::new();
        for list in &self.args {
            lists.push(list);
        }
        Splitter::Args {
            args: lists,
            append: self.append,
        }
    }
}

#[pymethods]
impl ArgSplitter {
    #[new]
    #[pyo3(signature = (args = None, append = false))]
    fn new(args: Option<&Bound<'_, PyAny>>, append: bool) -> PyResult<ArgSplitter> {
        Ok(ArgSplitter {
            args: match args {
                Some(a) => arg_lists(a)?,
                None => Vec::new(),
            },
            append,
            frozen: None,
        })
    }

    /// The argument lists, one per subjob.
    #[getter]
    fn args(&self) -> Vec<Vec<String>> {
        self.args.clone()
    }

    #[setter]
    fn set_args(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.args = arg_lists(value)?;
        Ok(())
    }

    /// Whether each list is added after the application's arguments instead of
    /// replacing them.
    #[getter]
    fn append(&self) -> bool {
        self.append
    }

    #[setter]
    fn set_append(&mut self, value: bool) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.append = value;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let shown: Vec<Vec<String>> = self.args.iter().take(5).cloned().collect();
        let mut args = py_repr(py, shown);
        if self.args.len() > 5 {
            args = format!(
                "{}, ... {} lists in all]",
                &args[..args.len() - 1],
                self.args.len()
            );
        }
        if self.append {
            format!("ArgSplitter(args={args}, append=True)")
        } else {
            format!("ArgSplitter(args={args})")
        }
    }
}

/// Ganga's `GenericSplitter`: one subjob per value of `attribute` (`values`), or of
/// several attributes at once (`multi_attrs`, a dict of equally long lists).
/// Attributes: `name`, `comment`, `application.exe`, `application.args`,
/// `application.env`, `application.env.VAR`, `backend.OPTION`.
#[pyclass(name = "GenericSplitter", module = "ganga_rs")]
pub(crate) struct GenericSplitter {
    pub(crate) attribute: Option<String>,
    pub(crate) values: Option<Vec<Value>>,
    pub(crate) multi_attrs: Option<BTreeMap<String, Vec<Value>>>,
    pub(crate) frozen: Frozen,
}

fn value_list(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<Value>> {
    convert::sequence(obj, field, "a list of values")?
        .iter()
        .enumerate()
        .map(|(i, v)| convert::value(v, &format!("{field}[{i}]")))
        .collect()
}

fn multi_attrs(obj: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, Vec<Value>>> {
    let field = "GenericSplitter.multi_attrs";
    let dict = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a dict of attribute names to lists of values, not {}",
            convert::type_name(obj)
        ))
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in dict.iter() {
        let key = convert::text(&k, &format!("{field} (a key)"))?;
        let values = value_list(&v, &format!("{field}[{key:?}]"))?;
        out.insert(key, values);
    }
    Ok(out)
}

impl GenericSplitter {
    /// The core's splitter, or why there is none (which Ganga also refuses).
    fn to_core(&self) -> Result<Splitter, String> {
        let multi = self.multi_attrs.as_ref().filter(|m| !m.is_empty());
        let attributes = match (&self.attribute, &self.values, multi) {
            (Some(path), Some(values), None) => vec![SplitAttribute {
                path: path.clone(),
                values: values.clone(),
            }],
            (None, None, Some(m)) => m
                .iter()
                .map(|(path, values)| SplitAttribute {
                    path: path.clone(),
                    values: values.clone(),
                })
                .collect(),
            _ => {
                return Err(
                    "GenericSplitter: set either attribute and values, or multi_attrs".into(),
                );
            }
        };
        Ok(Splitter::Generic { attributes })
    }
}

#[pymethods]
impl GenericSplitter {
    #[new]
    #[pyo3(signature = (attribute = None, values = None, multi_attrs = None))]
    fn new(
        attribute: Option<&Bound<'_, PyAny>>,
        values: Option<&Bound<'_, PyAny>>,
        multi_attrs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<GenericSplitter> {
        Ok(GenericSplitter {
            attribute: attribute
                .map(|a| convert::text(a, "GenericSplitter.attribute"))
                .transpose()?,
            values: values
                .map(|v| value_list(v, "GenericSplitter.values"))
                .transpose()?,
            multi_attrs: multi_attrs.map(self::multi_attrs).transpose()?,
            frozen: None,
        })
    }

    #[getter]
    fn attribute(&self) -> Option<String> {
        self.attribute.clone()
    }

    #[setter]
    fn set_attribute(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.attribute = value
            .filter(|v| !v.is_none())
            .map(|v| convert::text(v, "GenericSplitter.attribute"))
            .transpose()?;
        Ok(())
    }

    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.values
            .as_ref()
            .map(|v| convert::value_to_py(py, &Value::List(v.clone())))
            .transpose()
    }

    #[setter]
    fn set_values(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.values = value
            .filter(|v| !v.is_none())
            .map(|v| value_list(v, "GenericSplitter.values"))
            .transpose()?;
        Ok(())
    }

    #[getter]
    fn multi_attrs<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(m) = &self.multi_attrs else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (k, v) in m {
            d.set_item(k, convert::value_to_py(py, &Value::List(v.clone()))?)?;
        }
        Ok(Some(d))
    }

    #[setter]
    fn set_multi_attrs(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.multi_attrs = value
            .filter(|v| !v.is_none())
            .map(self::multi_attrs)
            .transpose()?;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = Vec::new();
        if let Some(a) = &self.attribute {
            parts.push(format!("attribute={}", py_repr(py, a)));
        }
        if let Some(v) = self.values(py)? {
            parts.push(format!("values={}", v.repr()?));
        }
        if let Some(m) = self.multi_attrs(py)? {
            parts.push(format!("multi_attrs={}", m.repr()?));
        }
        Ok(format!("GenericSplitter({})", parts.join(", ")))
    }
}

/// A splitter object of either kind as the core's splitter; `Err` says what is wrong.
pub(crate) fn splitter_to_core(obj: &Bound<'_, PyAny>) -> Result<Splitter, String> {
    if let Ok(s) = obj.cast::<ArgSplitter>() {
        return Ok(s.borrow().to_core());
    }
    if let Ok(s) = obj.cast::<GenericSplitter>() {
        return s.borrow().to_core();
    }
    Err(format!(
        "expected an ArgSplitter or a GenericSplitter, not {}",
        convert::type_name(obj)
    ))
}

/// The core's splitter as a (frozen) splitter object.
pub(crate) fn splitter_to_py(py: Python<'_>, s: &Splitter, frozen: Frozen) -> PyResult<Py<PyAny>> {
    Ok(match s {
        Splitter::Args { args, append } => Py::new(
            py,
            ArgSplitter {
                args: args
                    .iter()
                    .map(|l| l.map(str::to_owned).collect())
                    .collect(),
                append: *append,
                frozen,
            },
        )?
        .into_any(),
        Splitter::Generic { attributes } => {
            let g = match attributes.as_slice() {
                [one] => GenericSplitter {
                    attribute: Some(one.path.clone()),
                    values: Some(one.values.clone()),
                    multi_attrs: None,
                    frozen,
                },
                many => GenericSplitter {
                    attribute: None,
                    values: None,
                    multi_attrs: Some(
                        many.iter()
                            .map(|a| (a.path.clone(), a.values.clone()))
                            .collect(),
                    ),
                    frozen,
                },
            };
            Py::new(py, g)?.into_any()
        }
    })
}

/// Ganga's `LocalFile`: a file on this machine. In `inputfiles`, the file
/// (`localDir/namePattern`, relative to the working directory); in `outputfiles`, the
/// pattern of files to collect.
#[pyclass(name = "LocalFile", module = "ganga_rs")]
pub(crate) struct LocalFile {
    #[pyo3(get, set, name = "namePattern")]
    pub(crate) name_pattern: String,
    #[pyo3(get, set, name = "localDir")]
    pub(crate) local_dir: String,
}

impl LocalFile {
    fn path(&self) -> PathBuf {
        if self.local_dir.is_empty() {
            absolute(&self.name_pattern)
        } else {
            absolute(&self.local_dir).join(&self.name_pattern)
        }
    }
}

#[pymethods]
impl LocalFile {
    #[new]
    #[pyo3(signature = (namePattern = String::new(), localDir = String::new()))]
    #[allow(non_snake_case)]
    fn new(namePattern: String, localDir: String) -> LocalFile {
        LocalFile {
            name_pattern: namePattern,
            local_dir: localDir,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        if self.local_dir.is_empty() {
            format!("LocalFile({})", py_repr(py, &self.name_pattern))
        } else {
            format!(
                "LocalFile({}, localDir={})",
                py_repr(py, &self.name_pattern),
                py_repr(py, &self.local_dir)
            )
        }
    }
}

/// Ganga's `File`: a file named by path, e.g. a script given as an `Executable`'s `exe`.
/// Made absolute against the working directory when made.
#[pyclass(name = "File", module = "ganga_rs")]
pub(crate) struct File {
    #[pyo3(get)]
    pub(crate) name: String,
}

#[pymethods]
impl File {
    #[new]
    fn new(name: String) -> File {
        File {
            name: absolute(&name).to_string_lossy().into_owned(),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("File({})", py_repr(py, &self.name))
    }
}

/// An input file: a path (str or `os.PathLike`), a `LocalFile` or a `File`.
pub(crate) fn input_file(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<PathBuf> {
    if let Ok(f) = obj.cast::<LocalFile>() {
        return Ok(f.borrow().path());
    }
    if let Ok(f) = obj.cast::<File>() {
        return Ok(PathBuf::from(&f.borrow().name));
    }
    obj.extract::<PathBuf>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a path or a LocalFile, not {}",
            convert::type_name(obj)
        ))
    })
}

/// An output pattern: a string or a `LocalFile`.
pub(crate) fn output_pattern(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    if let Ok(f) = obj.cast::<LocalFile>() {
        return Ok(f.borrow().name_pattern.clone());
    }
    convert::text(obj, field).map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a pattern (str) or a LocalFile, not {}",
            convert::type_name(obj)
        ))
    })
}

/// The attributes of a backend that are not options: its name, and what it said about a
/// stored job's run.
const RESERVED: &[&str] = &[
    "name", "options", "id", "exitcode", "actualCE", "status", "reason",
];

/// Where a job runs: the backend plugin of that `name`, with options for it
/// (`Backend('mysite', queue='long')`). The named classes (`Local`, `Slurm`, `Dirac`...)
/// are this with their plugin's name and options. Options are attributes:
/// `j.backend.queue = 'long'`. For a stored job it also tells what the backend said: `id`,
/// `exitcode`, `actualCE` (where it ran), `status` (the backend's own word), `reason`.
#[pyclass(name = "Backend", module = "ganga_rs", subclass)]
pub(crate) struct Backend {
    pub(crate) kind: String,
    pub(crate) options: BTreeMap<String, Value>,
    /// The options the class documents: reading one not set gives `None`.
    known: &'static [&'static str],
    /// Ganga's class name, for `repr`.
    class: &'static str,
    pub(crate) info: Option<BackendInfo>,
    pub(crate) frozen: Frozen,
}

impl Backend {
    fn make(
        kind: &str,
        class: &'static str,
        known: &'static [&'static str],
        options: BTreeMap<String, Value>,
    ) -> Backend {
        Backend {
            kind: kind.to_owned(),
            options,
            known,
            class,
            info: None,
            frozen: None,
        }
    }

    pub(crate) fn to_core(&self) -> BackendConfig {
        BackendConfig {
            kind: self.kind.clone(),
            options: self.options.clone(),
        }
    }

    /// The object of the class Ganga would show for this backend: `Local()`,
    /// `Slurm(queue=...)`, `Dirac(...)`, or `Backend(name, ...)`.
    pub(crate) fn to_py(
        py: Python<'_>,
        config: &BackendConfig,
        info: Option<BackendInfo>,
        frozen: Frozen,
    ) -> PyResult<Py<PyAny>> {
        let system = if config.kind == "batch" {
            config.options.get("system").and_then(Value::as_str)
        } else {
            None
        };
        let (class, known): (&'static str, &'static [&'static str]) =
            match (config.kind.as_str(), system.and_then(Batch::class_of)) {
                ("local", _) => ("Local", &[]),
                ("dirac", _) => ("Dirac", DIRAC_OPTIONS),
                ("batch", Some(class)) => (class, BATCH_SYSTEM_OPTIONS),
                ("batch", None) => ("Batch", BATCH_OPTIONS),
                _ => ("Backend", &[]),
            };
        let mut base = Backend::make(&config.kind, class, known, config.options.clone());
        base.info = info;
        base.frozen = frozen;
        let init = PyClassInitializer::from(base);
        Ok(match class {
            "Local" => Py::new(py, init.add_subclass(Local))?.into_any(),
            "Dirac" => Py::new(py, init.add_subclass(Dirac))?.into_any(),
            "Batch" => Py::new(py, init.add_subclass(Batch))?.into_any(),
            "Slurm" => Py::new(py, init.add_subclass(Batch).add_subclass(Slurm))?.into_any(),
            "SGE" => Py::new(py, init.add_subclass(Batch).add_subclass(Sge))?.into_any(),
            "PBS" => Py::new(py, init.add_subclass(Batch).add_subclass(Pbs))?.into_any(),
            "LSF" => Py::new(py, init.add_subclass(Batch).add_subclass(Lsf))?.into_any(),
            "Condor" => Py::new(py, init.add_subclass(Batch).add_subclass(Condor))?.into_any(),
            _ => Py::new(py, init)?.into_any(),
        })
    }
}

/// Keyword arguments given (not `None`) as options.
fn options_of(
    pairs: &[(&str, Option<&Bound<'_, PyAny>>)],
    class: &str,
) -> PyResult<BTreeMap<String, Value>> {
    let mut options = BTreeMap::new();
    for (key, value) in pairs {
        if let Some(v) = value.filter(|v| !v.is_none()) {
            options.insert(
                (*key).to_owned(),
                convert::value(v, &format!("{class}.{key}"))?,
            );
        }
    }
    Ok(options)
}

#[pymethods]
impl Backend {
    #[new]
    #[pyo3(signature = (name, **options))]
    fn new(name: String, options: Option<&Bound<'_, PyDict>>) -> PyResult<Backend> {
        let mut opts = BTreeMap::new();
        for (k, v) in options.into_iter().flat_map(|d| d.iter()) {
            let key: String = k.extract()?;
            if !v.is_none() {
                let value = convert::value(&v, &format!("Backend.{key}"))?;
                opts.insert(key, value);
            }
        }
        Ok(Backend::make(&name, "Backend", &[], opts))
    }

    /// The backend plugin's name (`local`, `batch`, `dirac`...).
    #[getter]
    fn name(&self) -> String {
        self.kind.clone()
    }

    /// The options given to the backend with the job (a copy).
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::value_to_py(py, &Value::Table(self.options.clone()))
    }

    /// The backend's id of the job (a stored job's; `None` before it ran).
    #[getter]
    fn id(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| i.id.clone())
    }

    /// The exit code of the program, when it ended and the backend knows it.
    #[getter]
    fn exitcode(&self) -> Option<i32> {
        self.info.as_ref().and_then(|i| i.exit_code)
    }

    /// Where it ran: a host, a batch node, a grid site.
    #[getter(actualCE)]
    fn actual_ce(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| i.actual_ce.clone())
    }

    /// The backend's own word for the job's state (`PENDING`, `Matched`...).
    #[getter]
    fn status(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| i.native_state.clone())
    }

    /// Why the job ended as it did, when known.
    #[getter]
    fn reason(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| i.reason.clone())
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.options.get(name) {
            Some(v) => convert::value_to_py(py, v),
            None if self.known.contains(&name) => Ok(py.None().into_bound(py)),
            None => Err(PyAttributeError::new_err(format!(
                "{} has no attribute or option `{name}`{}",
                self.class,
                if self.known.is_empty() {
                    String::new()
                } else {
                    format!(" (its options: {})", self.known.join(", "))
                }
            ))),
        }
    }

    fn __setattr__(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        if RESERVED.contains(&name) {
            return Err(PyAttributeError::new_err(format!(
                "{}.{name} cannot be set",
                self.class
            )));
        }
        if value.is_none() {
            self.options.remove(name);
        } else {
            let v = convert::value(value, &format!("{}.{name}", self.class))?;
            self.options.insert(name.to_owned(), v);
        }
        Ok(())
    }

    fn __delattr__(&mut self, name: &str) -> PyResult<()> {
        check_frozen(&self.frozen)?;
        self.options.remove(name);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let shown = self
            .options
            .iter()
            .filter(|(k, _)| !(self.class != "Batch" && self.kind == "batch" && *k == "system"))
            .map(|(k, v)| {
                let v = convert::value_to_py(py, v)
                    .and_then(|o| o.repr().map(|r| r.to_string()))
                    .unwrap_or_else(|_| "?".into());
                format!("{k}={v}")
            });
        let args: Vec<String> = if self.class == "Backend" {
            std::iter::once(py_repr(py, &self.kind))
                .chain(shown)
                .collect()
        } else {
            shown.collect()
        };
        format!("{}({})", self.class, args.join(", "))
    }
}

/// Ganga's `Local`: jobs run as processes on this machine (the `local` plugin).
#[pyclass(name = "Local", module = "ganga_rs", extends = Backend)]
pub(crate) struct Local;

#[pymethods]
impl Local {
    #[new]
    fn new() -> PyClassInitializer<Local> {
        PyClassInitializer::from(Backend::make("local", "Local", &[], BTreeMap::new()))
            .add_subclass(Local)
    }
}

const BATCH_OPTIONS: &[&str] = &["system", "queue", "extra_options"];
const BATCH_SYSTEM_OPTIONS: &[&str] = &["queue", "extra_options"];
const DIRAC_OPTIONS: &[&str] = &[
    "site",
    "banned_sites",
    "platform",
    "cpu_time",
    "tags",
    "priority",
    "processors",
    "job_group",
    "input_data",
    "url",
    "vo",
    "group",
];

/// A batch system (the `batch` plugin): `system` is `slurm`, `sge`, `pbs`, `lsf` or
/// `condor` (default: the config's); `queue` the partition or queue; `extra_options` more
/// options for the submit command. `Slurm`, `SGE`, `PBS`, `LSF` and `Condor` are this
/// with the system set, as Ganga names them.
#[pyclass(name = "Batch", module = "ganga_rs", extends = Backend, subclass)]
pub(crate) struct Batch;

impl Batch {
    fn class_of(system: &str) -> Option<&'static str> {
        Some(match system {
            "slurm" => "Slurm",
            "sge" => "SGE",
            "pbs" => "PBS",
            "lsf" => "LSF",
            "condor" => "Condor",
            _ => return None,
        })
    }

    fn init(
        class: &'static str,
        system: Option<&str>,
        pairs: &[(&str, Option<&Bound<'_, PyAny>>)],
    ) -> PyResult<PyClassInitializer<Batch>> {
        let mut options = options_of(pairs, class)?;
        let known = if let Some(system) = system {
            options.insert("system".into(), Value::String(system.to_owned()));
            BATCH_SYSTEM_OPTIONS
        } else {
            BATCH_OPTIONS
        };
        Ok(
            PyClassInitializer::from(Backend::make("batch", class, known, options))
                .add_subclass(Batch),
        )
    }
}

#[pymethods]
impl Batch {
    #[new]
    #[pyo3(signature = (system = None, queue = None, extra_options = None))]
    fn new(
        system: Option<&Bound<'_, PyAny>>,
        queue: Option<&Bound<'_, PyAny>>,
        extra_options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Batch>> {
        Batch::init(
            "Batch",
            None,
            &[
                ("system", system),
                ("queue", queue),
                ("extra_options", extra_options),
            ],
        )
    }
}

macro_rules! batch_system {
    ($rust:ident, $class:literal, $system:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(name = $class, module = "ganga_rs", extends = Batch)]
        pub(crate) struct $rust;

        #[pymethods]
        impl $rust {
            #[new]
            #[pyo3(signature = (queue = None, extra_options = None))]
            fn new(
                queue: Option<&Bound<'_, PyAny>>,
                extra_options: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<PyClassInitializer<$rust>> {
                Ok(Batch::init(
                    $class,
                    Some($system),
                    &[("queue", queue), ("extra_options", extra_options)],
                )?
                .add_subclass($rust))
            }
        }
    };
}

batch_system!(
    Slurm,
    "Slurm",
    "slurm",
    "Ganga's `Slurm`: the batch backend on Slurm."
);
batch_system!(
    Sge,
    "SGE",
    "sge",
    "Ganga's `SGE`: the batch backend on (Son of) Grid Engine."
);
batch_system!(
    Pbs,
    "PBS",
    "pbs",
    "Ganga's `PBS`: the batch backend on PBS (OpenPBS, PBS Pro, Torque)."
);
batch_system!(
    Lsf,
    "LSF",
    "lsf",
    "Ganga's `LSF`: the batch backend on LSF."
);
batch_system!(
    Condor,
    "Condor",
    "condor",
    "Ganga's `Condor`: the batch backend on HTCondor."
);

/// Ganga's `Dirac`: the grid through a DiracX server (the `dirac` plugin). Its options
/// are DIRAC's job requirements: `site`, `banned_sites`, `platform`, `cpu_time`, `tags`,
/// `priority`, `processors`, `job_group`, `input_data`.
#[pyclass(name = "Dirac", module = "ganga_rs", extends = Backend)]
pub(crate) struct Dirac;

#[pymethods]
impl Dirac {
    #[new]
    #[pyo3(signature = (site = None, banned_sites = None, platform = None, cpu_time = None, tags = None, priority = None, processors = None, job_group = None, input_data = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        site: Option<&Bound<'_, PyAny>>,
        banned_sites: Option<&Bound<'_, PyAny>>,
        platform: Option<&Bound<'_, PyAny>>,
        cpu_time: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        processors: Option<&Bound<'_, PyAny>>,
        job_group: Option<&Bound<'_, PyAny>>,
        input_data: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Dirac>> {
        let options = options_of(
            &[
                ("site", site),
                ("banned_sites", banned_sites),
                ("platform", platform),
                ("cpu_time", cpu_time),
                ("tags", tags),
                ("priority", priority),
                ("processors", processors),
                ("job_group", job_group),
                ("input_data", input_data),
            ],
            "Dirac",
        )?;
        Ok(
            PyClassInitializer::from(Backend::make("dirac", "Dirac", DIRAC_OPTIONS, options))
                .add_subclass(Dirac),
        )
    }
}
