//! Python values to the core's and back, with errors that name the attribute and say
//! what was expected and what was given (`Executable.args[2]: expected a string or a
//! number, not list`).

use std::collections::BTreeMap;

use ganga_core::{Status, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// The Python name of a value's type, for errors.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn wrong(field: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{field}: expected {expected}, not {}",
        type_name(obj)
    ))
}

/// A command-line word: text, or a number or boolean written as text (Ganga turns ints
/// in `args` into strings).
pub(crate) fn word(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(obj.extract::<bool>()?.to_string());
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(obj.str()?.to_str()?.to_owned());
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(obj.extract::<f64>()?.to_string());
    }
    Err(wrong(field, "a string or a number", obj))
}

/// A list (or tuple) of words. A string alone is refused: it is not a list of
/// arguments, and splitting it into characters would surprise.
pub(crate) fn words(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(wrong(field, "a list of strings", obj));
    }
    let items = sequence(obj, field, "a list of strings")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| word(item, &format!("{field}[{i}]")))
        .collect()
}

/// The items of a list or tuple.
pub(crate) fn sequence<'py>(
    obj: &Bound<'py, PyAny>,
    field: &str,
    expected: &str,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    Err(wrong(field, expected, obj))
}

/// Text, and only text.
pub(crate) fn text(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(wrong(field, "a string", obj)),
    }
}

/// An environment: a dict of names to words.
pub(crate) fn env(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<BTreeMap<String, String>> {
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| wrong(field, "a dict of strings", obj))?;
    let mut env = BTreeMap::new();
    for (k, v) in dict.iter() {
        let name = text(&k, &format!("{field} (a name)"))?;
        let value = word(&v, &format!("{field}[{name:?}]"))?;
        env.insert(name, value);
    }
    Ok(env)
}

/// A loosely typed value (a backend option, a splitter's value).
pub(crate) fn value(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Integer).map_err(|_| {
            PyValueError::new_err(format!(
                "{field}: the integer {} does not fit in 64 bits",
                obj.str().map_or_else(|_| "?".into(), |s| s.to_string())
            ))
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract()?));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut table = BTreeMap::new();
        for (k, v) in dict.iter() {
            let key = text(&k, &format!("{field} (a key)"))?;
            let v = value(&v, &format!("{field}[{key:?}]"))?;
            table.insert(key, v);
        }
        return Ok(Value::Table(table));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items = sequence(obj, field, "a list")?;
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| value(item, &format!("{field}[{i}]")))
            .collect::<PyResult<Vec<Value>>>()
            .map(Value::List);
    }
    Err(wrong(field, "a string, number, boolean, list or dict", obj))
}

pub(crate) fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(x) => x.into_pyobject(py)?.into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Table(t) => {
            let dict = PyDict::new(py);
            for (k, item) in t {
                dict.set_item(k, value_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A status by Ganga's name (`completed`), or a `ValueError` listing them.
pub(crate) fn status(name: &str, field: &str) -> PyResult<Status> {
    name.parse::<Status>()
        .map_err(|e| PyValueError::new_err(format!("{field}: {e}")))
}

/// One status or a list of them (`select(status='failed')`, `status=['failed', 'killed']`).
pub(crate) fn statuses(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<Status>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![status(s.to_str()?, field)?]);
    }
    sequence(obj, field, "a status or a list of statuses")?
        .iter()
        .map(|s| status(&text(s, field)?, field))
        .collect()
}

/// The statuses as Python strings, made once: iterating a million subjobs hands out
/// the same fourteen objects.
static STATUS_STRINGS: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();

pub(crate) fn status_str(py: Python<'_>, s: Status) -> Bound<'_, PyString> {
    let all = STATUS_STRINGS.get_or_init(py, || {
        Status::ALL
            .iter()
            .map(|s| PyString::intern(py, s.as_str()).unbind())
            .collect()
    });
    match all.get(s.index()) {
        Some(p) => p.bind(py).clone(),
        None => PyString::new(py, s.as_str()),
    }
}

/// A path as a `pathlib.Path`.
pub(crate) fn path<'py>(py: Python<'py>, p: &std::path::Path) -> PyResult<Bound<'py, PyAny>> {
    static PATH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let class = PATH.get_or_try_init(py, || {
        PyResult::Ok(py.import("pathlib")?.getattr("Path")?.unbind())
    })?;
    class.bind(py).call1((p,))
}
