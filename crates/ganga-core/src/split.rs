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
        args: ArgLists,
        #[serde(default)]
        append: bool,
    },
    /// Ganga's `GenericSplitter`: one subjob per value of one attribute, or of several
    /// attributes at once (`multi_attrs`), whose value lists must be equally long.
    Generic { attributes: Vec<SplitAttribute> },
}

/// An ArgSplitter's argument lists, kept as one string and two tables of offsets rather
/// than a `String` per word: a master of 1,000 lists of 4 words holds five allocations
/// instead of 5,000, in about a sixth of the memory, and is decoded without allocating
/// per word. Serialized (JSON, job files) as a list of lists of strings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArgLists {
    /// Every word, one after the other.
    words: String,
    /// Where each word ends in `words`.
    word_ends: Vec<u32>,
    /// Where each list ends in `word_ends`.
    list_ends: Vec<u32>,
}

impl ArgLists {
    pub fn new() -> ArgLists {
        ArgLists::default()
    }

    /// Adds a list after the others.
    pub fn push<S: AsRef<str>>(&mut self, list: impl IntoIterator<Item = S>) {
        for word in list {
            self.push_word(word.as_ref());
        }
        self.end_list();
    }

    /// Adds a word to the list being built ([`ArgLists::end_list`] ends it).
    pub fn push_word(&mut self, word: &str) {
        self.words.push_str(word);
        self.word_ends.push(offset(self.words.len()));
    }

    /// Ends the list being built (an empty one if no word was pushed since the last).
    pub fn end_list(&mut self) {
        self.list_ends.push(offset(self.word_ends.len()));
    }

    /// How many lists.
    pub fn len(&self) -> usize {
        self.list_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list_ends.is_empty()
    }

    /// The words of list `k`, or `None` past the last.
    pub fn get(&self, k: usize) -> Option<impl ExactSizeIterator<Item = &str> + '_> {
        let end = *self.list_ends.get(k)? as usize;
        let start = if k == 0 {
            0
        } else {
            self.list_ends[k - 1] as usize
        };
        Some((start..end).map(move |w| self.word(w)))
    }

    /// List `k` as owned strings, or `None` past the last.
    pub fn list(&self, k: usize) -> Option<Vec<String>> {
        self.get(k).map(|words| words.map(str::to_owned).collect())
    }

    /// Every list, in order.
    pub fn iter(&self) -> impl Iterator<Item = impl ExactSizeIterator<Item = &str> + '_> + '_ {
        (0..self.len()).filter_map(|k| self.get(k))
    }

    /// The bytes it holds on the heap (its capacity), for a cache's weighing.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() + 4 * (self.word_ends.capacity() + self.list_ends.capacity())
    }

    fn word(&self, w: usize) -> &str {
        let end = self.word_ends[w] as usize;
        let start = if w == 0 {
            0
        } else {
            self.word_ends[w - 1] as usize
        };
        // Invariant: offsets are pushed at the end of whole words, so they fall on
        // character boundaries and ascend.
        &self.words[start..end]
    }
}

/// An offset into a buffer that a splitter's words fill: far below 4 GiB (a job file or
/// a stored splitter holds them all).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<S: AsRef<str>, L: IntoIterator<Item = S>> FromIterator<L> for ArgLists {
    fn from_iter<I: IntoIterator<Item = L>>(lists: I) -> ArgLists {
        let mut out = ArgLists::new();
        for list in lists {
            out.push(list);
        }
        out
    }
}

impl From<Vec<Vec<String>>> for ArgLists {
    fn from(lists: Vec<Vec<String>>) -> ArgLists {
        lists.into_iter().collect()
    }
}

impl std::fmt::Debug for ArgLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|l| l.collect::<Vec<_>>()))
            .finish()
    }
}

impl Serialize for ArgLists {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for list in self.iter() {
            seq.serialize_element(&list.collect::<Vec<_>>())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ArgLists {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ArgLists, D::Error> {
        Ok(Vec::<Vec<String>>::deserialize(d)?.into())
    }
}

/// What list `k` of an ArgSplitter gives its subjob.
fn args_item(args: &ArgLists, append: bool, k: usize) -> Option<Vec<Override>> {
    let list = args.list(k)?;
    Some(vec![if append {
        Override::AppendArgs(list)
    } else {
        Override::Args(list)
    }])
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
            Splitter::Args { args, append } => (0..args.len())
                .filter_map(|k| args_item(args, *append, k))
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
            Splitter::Args { args, append } => args_item(args, *append, index),
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
