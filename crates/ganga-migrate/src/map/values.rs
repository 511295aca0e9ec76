//! Ganga's attribute values (Python literals, `<sequence>`s, `File`s, `GangaList`s) read
//! as words, items and ganga-rs [`Value`]s.

use std::collections::BTreeMap;

use ganga_core::Value;

use crate::pyliteral::PyValue;
use crate::xml::{Node, Object};

pub(super) fn call_name(v: &PyValue) -> &str {
    match v {
        PyValue::Call { name, .. } => name.rsplit('.').next().unwrap_or(name),
        _ => "",
    }
}

pub(super) fn text(o: &Object, attr: &str) -> String {
    match o.value(attr) {
        Some(PyValue::None) | None => String::new(),
        Some(v) => v.py_str().unwrap_or_else(|| v.to_string()),
    }
}

pub(super) fn brief(node: &Node) -> String {
    match node {
        Node::Value(v) => {
            let s = v.to_string();
            if s.chars().count() > 80 {
                format!("{}…", s.chars().take(80).collect::<String>())
            } else {
                s
            }
        }
        Node::Seq(items) => format!("(a list of {})", items.len()),
        Node::Object(o) => format!("({})", o.class),
    }
}

pub(super) enum Item {
    Value(PyValue),
    /// A `File` (object or `File(...)` value): its path.
    File(String),
    /// Anything else, described.
    Other(String),
}

/// The items of a `<sequence>` or of a list value.
pub(super) fn seq_items(node: &Node) -> Vec<Item> {
    let one = |v: &PyValue| -> Item {
        if call_name(v) == "File" {
            Item::File(
                v.call_arg("name", 0)
                    .and_then(|n| n.py_str())
                    .unwrap_or_default(),
            )
        } else {
            Item::Value(v.clone())
        }
    };
    match node {
        Node::Value(PyValue::None) => Vec::new(),
        Node::Value(v) => match v.items() {
            Some(items) => items.iter().map(one).collect(),
            None => vec![one(v)],
        },
        Node::Seq(items) => items
            .iter()
            .map(|n| match n {
                Node::Value(v) => one(v),
                Node::Object(o) if o.class == "File" => Item::File(text(o, "name")),
                Node::Object(o) => Item::Other(o.class.clone()),
                Node::Seq(_) => Item::Other("a nested list".into()),
            })
            .collect(),
        Node::Object(o) if o.class == "GangaList" => {
            o.get("_list").map_or_else(Vec::new, seq_items)
        }
        Node::Object(o) if o.class == "File" => vec![Item::File(text(o, "name"))],
        Node::Object(o) => vec![Item::Other(o.class.clone())],
    }
}

/// A Ganga value as a ganga-rs [`Value`]; `None` for Python's None.
pub(super) fn to_value(v: &PyValue) -> Option<Value> {
    Some(match v {
        PyValue::None => return None,
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::Int(i) => Value::Integer(*i),
        PyValue::BigInt(s) => Value::String(s.clone()),
        PyValue::Float(x) => Value::Float(*x),
        PyValue::Str(s) => Value::String(s.clone()),
        PyValue::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => {
            Value::List(items.iter().filter_map(to_value).collect())
        }
        PyValue::Dict(items) => Value::Table(
            items
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.py_str().unwrap_or_else(|| k.to_string()), to_value(v)?))
                })
                .collect(),
        ),
        PyValue::Name(_) | PyValue::Call { .. } => Value::String(v.to_string()),
    })
}

pub(super) fn node_value(node: &Node) -> Option<Value> {
    match node {
        Node::Value(v) => to_value(v),
        Node::Seq(items) => Some(Value::List(items.iter().filter_map(node_value).collect())),
        Node::Object(o) => {
            let mut t: BTreeMap<String, Value> = o
                .attrs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), node_value(v)?)))
                .collect();
            t.insert("class".into(), Value::String(o.class.clone()));
            Some(Value::Table(t))
        }
    }
}

pub(super) fn nonempty(v: Option<&PyValue>) -> Option<String> {
    match v? {
        PyValue::None => None,
        PyValue::Str(s) if s.is_empty() => None,
        other => other.py_str(),
    }
}
