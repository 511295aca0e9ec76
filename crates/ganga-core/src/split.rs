//! Splitters: how one job becomes many subjobs, and what each subjob changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{JobSpec, Value};

/// How a job is split into subjobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Splitter {
    /// Ganga's `ArgSplitter`: one subjob per argument list, which replaces the
    /// application's arguments (or is appended to them).
    Args {
        args: Vec<Vec<String>>,
        #[serde(default)]
        append: bool,
    },
    /// Ganga's `GenericSplitter`: one subjob per value of one attribute, or of several
    /// attributes at once (`multi_attrs`), whose value lists must be equally long.
    Generic { attributes: Vec<SplitAttribute> },
}

/// One attribute a [`Splitter::Generic`] sets, with its value for each subjob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitAttribute {
    /// A dotted path: `name`, `comment`, `application.exe`, `application.args`,
    /// `application.env`, `application.env.VAR`, `backend.OPTION`.
    pub path: String,
    pub values: Vec<Value>,
}

/// One change a splitter makes to a subjob's spec. Typed, so that applying it cannot fail:
/// values are checked when the job is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    Name(String),
    Comment(String),
    Exe(String),
    Args(Vec<String>),
    AppendArgs(Vec<String>),
    Env(BTreeMap<String, String>),
    EnvVar(String, String),
    BackendOption(String, Value),
}

impl Override {
    pub fn apply(&self, spec: &mut JobSpec) {
        let exe = spec.application.executable_mut();
        match self {
            Override::Name(n) => spec.name = n.clone(),
            Override::Comment(c) => spec.comment = c.clone(),
            Override::Exe(e) => exe.exe = e.clone(),
            Override::Args(a) => exe.args = a.clone(),
            Override::AppendArgs(a) => exe.args.extend(a.iter().cloned()),
            Override::Env(env) => exe.env = env.clone(),
            Override::EnvVar(k, v) => {
                exe.env.insert(k.clone(), v.clone());
            }
            Override::BackendOption(k, v) => {
                spec.backend.options.insert(k.clone(), v.clone());
            }
        }
    }

    /// The attribute path this override sets, as a user would write it.
    pub fn path(&self) -> String {
        match self {
            Override::Name(_) => "name".into(),
            Override::Comment(_) => "comment".into(),
            Override::Exe(_) => "application.exe".into(),
            Override::Args(_) | Override::AppendArgs(_) => "application.args".into(),
            Override::Env(_) => "application.env".into(),
            Override::EnvVar(k, _) => format!("application.env.{k}"),
            Override::BackendOption(k, _) => format!("backend.{k}"),
        }
    }
}

/// Why a job could not be split.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("the splitter makes no subjobs (its value list is empty)")]
    Empty,
    #[error("GenericSplitter: no attributes given")]
    NoAttributes,
    #[error(
        "GenericSplitter: attribute `{path}` has {len} values but `{first}` has {first_len}; all must have the same number"
    )]
    UnequalLengths {
        path: String,
        len: usize,
        first: String,
        first_len: usize,
    },
    #[error(
        "GenericSplitter: unknown attribute `{0}` (known: name, comment, application.exe, application.args, application.env, application.env.VAR, backend.OPTION)"
    )]
    UnknownAttribute(String),
    #[error(
        "GenericSplitter: attribute `{path}`, value {index}: expected {expected}, found {found}"
    )]
    BadValue {
        path: String,
        index: usize,
        expected: &'static str,
        found: String,
    },
}

impl Splitter {
    /// The overrides of each subjob, in subjob order. Checks every value.
    pub fn split(&self) -> Result<Vec<Vec<Override>>, SplitError> {
        let subjobs = match self {
            Splitter::Args { args, append } => args
                .iter()
                .map(|a| {
                    vec![if *append {
                        Override::AppendArgs(a.clone())
                    } else {
                        Override::Args(a.clone())
                    }]
                })
                .collect::<Vec<_>>(),
            Splitter::Generic { attributes } => {
                let first = attributes.first().ok_or(SplitError::NoAttributes)?;
                for a in attributes {
                    if a.values.len() != first.values.len() {
                        return Err(SplitError::UnequalLengths {
                            path: a.path.clone(),
                            len: a.values.len(),
                            first: first.path.clone(),
                            first_len: first.values.len(),
                        });
                    }
                }
                (0..first.values.len())
                    .map(|i| {
                        attributes
                            .iter()
                            .map(|a| override_for(&a.path, i, &a.values[i]))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if subjobs.is_empty() {
            return Err(SplitError::Empty);
        }
        Ok(subjobs)
    }

    /// What subjob `index` gets, as [`Splitter::split`] would give it, without making the
    /// others; `None` past the last subjob.
    pub fn item(&self, index: usize) -> Result<Option<Vec<Override>>, SplitError> {
        Ok(match self {
            Splitter::Args { args, append } => args.get(index).map(|a| {
                vec![if *append {
                    Override::AppendArgs(a.clone())
                } else {
                    Override::Args(a.clone())
                }]
            }),
            Splitter::Generic { attributes } => {
                if attributes.iter().any(|a| a.values.len() <= index) {
                    None
                } else {
                    Some(
                        attributes
                            .iter()
                            .map(|a| override_for(&a.path, index, &a.values[index]))
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                }
            }
        })
    }

    /// A short label for listings: `ArgSplitter(3)`.
    pub fn label(&self) -> String {
        match self {
            Splitter::Args { args, .. } => format!("ArgSplitter({})", args.len()),
            Splitter::Generic { attributes } => format!(
                "GenericSplitter({})",
                attributes
                    .iter()
                    .map(|a| a.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn override_for(path: &str, index: usize, value: &Value) -> Result<Override, SplitError> {
    let bad = |expected: &'static str| SplitError::BadValue {
        path: path.to_owned(),
        index,
        expected,
        found: value.kind().to_owned(),
    };
    let word = || value.to_word().ok_or_else(|| bad("a string or number"));
    Ok(match path {
        "name" => Override::Name(word()?),
        "comment" => Override::Comment(word()?),
        "application.exe" => Override::Exe(word()?),
        "application.args" => match value {
            Value::List(items) => Override::Args(
                items
                    .iter()
                    .map(|v| {
                        v.to_word()
                            .ok_or_else(|| bad("a list of strings or numbers"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            // A single word is one argument, as Ganga's GenericSplitter does for a
            // scalar assigned to a list attribute.
            other => Override::Args(vec![
                other
                    .to_word()
                    .ok_or_else(|| bad("a list of strings or numbers"))?,
            ]),
        },
        "application.env" => match value {
            Value::Table(t) => Override::Env(
                t.iter()
                    .map(|(k, v)| {
                        v.to_word()
                            .map(|w| (k.clone(), w))
                            .ok_or_else(|| bad("a table of strings"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad("a table of strings")),
        },
        _ => {
            if let Some(var) = path.strip_prefix("application.env.")
                && !var.is_empty()
            {
                Override::EnvVar(var.to_owned(), word()?)
            } else if let Some(opt) = path.strip_prefix("backend.")
                && !opt.is_empty()
                && opt != "type"
            {
                Override::BackendOption(opt.to_owned(), value.clone())
            } else {
                return Err(SplitError::UnknownAttribute(path.to_owned()));
            }
        }
    })
}
