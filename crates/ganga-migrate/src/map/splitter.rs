//! The master's splitter, kept only where ganga-rs can split with it again.

use ganga_core::{SplitAttribute, Splitter};

use super::values::{Item, node_value, seq_items, to_value};
use crate::pyliteral::PyValue;
use crate::report::Severity;
use crate::xml::{Node, Object};

/// The master's splitter, or `None` (with a note) when it has no counterpart.
pub(super) fn splitter_of(o: &Object) -> (Option<Splitter>, Vec<(Severity, String)>) {
    let mut notes = Vec::new();
    let Some(s) = o.object("splitter") else {
        return (None, notes);
    };
    let splitter = match s.class.as_str() {
        "ArgSplitter" => {
            let mut args = Vec::new();
            let mut bad = false;
            if let Some(node) = s.get("args") {
                for item in seq_node_lists(node) {
                    match item {
                        Some(words) => args.push(words),
                        None => bad = true,
                    }
                }
            }
            if bad {
                notes.push((
                    Severity::Flagged,
                    "ArgSplitter args hold something other than lists of words: splitter not kept (the subjobs keep their args)".into(),
                ));
                return (None, notes);
            }
            let append = s.value("append") == Some(&PyValue::Bool(true));
            Some(Splitter::Args {
                args: args.into(),
                append,
            })
        }
        "GenericSplitter" => {
            let mut attributes = Vec::new();
            match s.value("multi_attrs") {
                Some(PyValue::Dict(items)) if !items.is_empty() => {
                    for (k, v) in items {
                        attributes.push(SplitAttribute {
                            path: k.py_str().unwrap_or_else(|| k.to_string()),
                            values: v.items().map_or_else(Vec::new, |vs| {
                                vs.iter().filter_map(to_value).collect()
                            }),
                        });
                    }
                }
                _ => {
                    let path = s.str("attribute").unwrap_or_default().to_owned();
                    let values = s.get("values").map_or_else(Vec::new, |n| match n {
                        Node::Seq(items) => items.iter().filter_map(node_value).collect(),
                        Node::Value(v) => v
                            .items()
                            .map_or_else(Vec::new, |vs| vs.iter().filter_map(to_value).collect()),
                        Node::Object(_) => Vec::new(),
                    });
                    attributes.push(SplitAttribute { path, values });
                }
            }
            Some(Splitter::Generic { attributes })
        }
        other => {
            notes.push((
                Severity::Flagged,
                format!("splitter {other} has no counterpart: not kept (the subjobs keep their own values)"),
            ));
            return (None, notes);
        }
    };
    // Keep it only if ganga-rs can split with it again (`ganga copy`).
    if let Some(sp) = &splitter
        && let Err(e) = sp.split()
        && !(matches!(sp, Splitter::Args { args, .. } if args.is_empty()))
    {
        notes.push((
            Severity::Flagged,
            format!(
                "splitter {}: {e}; not kept (the subjobs keep their own values)",
                s.class
            ),
        ));
        return (None, notes);
    }
    (splitter, notes)
}

/// A `<sequence>` of `<sequence>`s (or a list of lists): each inner list as words, or
/// `None` where an item is not a list of words.
fn seq_node_lists(node: &Node) -> Vec<Option<Vec<String>>> {
    let words = |items: Vec<Item>| -> Option<Vec<String>> {
        items
            .into_iter()
            .map(|i| match i {
                Item::Value(v) => v.py_str(),
                Item::File(f) => Some(f),
                Item::Other(_) => None,
            })
            .collect()
    };
    match node {
        Node::Seq(items) => items
            .iter()
            .map(|n| match n {
                Node::Seq(_) => words(seq_items(n)),
                Node::Value(v) if v.items().is_some() => words(seq_items(n)),
                Node::Value(v) => v.py_str().map(|w| vec![w]),
                Node::Object(o) if o.class == "GangaList" => words(seq_items(n)),
                Node::Object(_) => None,
            })
            .collect(),
        Node::Value(v) => v.items().map_or_else(Vec::new, |outer| {
            outer
                .iter()
                .map(|inner| words(seq_items(&Node::Value(inner.clone()))))
                .collect()
        }),
        Node::Object(o) if o.class == "GangaList" => {
            o.get("_list").map_or_else(Vec::new, seq_node_lists)
        }
        Node::Object(_) => Vec::new(),
    }
}
