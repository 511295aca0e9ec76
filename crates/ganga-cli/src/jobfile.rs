//! Job files: a job described in TOML (see `docs/job-files.md`).
//!
//! ```toml
//! name = "hello-split"
//! input_files = ["greeting.txt"]      # relative to this file
//! output_files = ["hello-*.txt"]      # glob patterns collected after the run
//!
//! [application]                       # Ganga's Executable
//! exe = "/bin/sh"
//! args = ["-c", "echo hello $0 > hello-$0.txt"]
//! env = { GREETING = "hi" }
//!
//! [backend]
//! type = "local"                      # a backend plugin; other keys are its options
//!
//! [splitter]
//! type = "args"                       # ArgSplitter: one subjob per list
//! args = [["alice"], ["bob"], ["carol"]]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ganga_core::{
    Application, AutoResubmit, BackendConfig, Executable, JobSpec, SplitAttribute, Splitter,
};
use serde::Deserialize;
use toml::Spanned;

use crate::config::to_value;
use crate::tomlfile::{self, FileError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    comment: String,
    application: Spanned<ApplicationTable>,
    #[serde(default)]
    backend: Option<BackendTable>,
    #[serde(default)]
    input_files: Vec<Spanned<String>>,
    #[serde(default)]
    output_files: Vec<String>,
    #[serde(default)]
    splitter: Option<Spanned<SplitterTable>>,
    #[serde(default)]
    auto_resubmit: Option<Spanned<AutoResubmitSetting>>,
}

/// `auto_resubmit = true` (Ganga's limits), `false`, or the limits themselves.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected true, false, or a table with max_attempts and max_failed_fraction"
)]
enum AutoResubmitSetting {
    Switch(bool),
    Limits(AutoResubmitTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoResubmitTable {
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    max_failed_fraction: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationTable {
    /// Only `executable` exists so far; it may be left out.
    #[serde(rename = "type", default)]
    kind: Option<Spanned<String>>,
    exe: Spanned<String>,
    #[serde(default)]
    args: Vec<Word>,
    #[serde(default)]
    env: BTreeMap<String, Word>,
}

#[derive(Debug, Deserialize)]
struct BackendTable {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(flatten)]
    options: BTreeMap<String, toml::Value>,
}

/// A command-line word: text, or a number or boolean written as text (as Ganga turns ints
/// in `args` into strings).
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "expected a string or a number")]
enum Word {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Word {
    fn into_string(self) -> String {
        match self {
            Word::Text(s) => s,
            Word::Integer(i) => i.to_string(),
            Word::Float(f) => f.to_string(),
            Word::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum SplitterTable {
    /// Ganga's ArgSplitter.
    #[serde(alias = "ArgSplitter")]
    Args {
        args: Vec<Vec<Word>>,
        #[serde(default)]
        append: bool,
    },
    /// Ganga's GenericSplitter: `attribute` + `values`, or `attributes` (`multi_attrs`).
    #[serde(alias = "GenericSplitter")]
    Generic {
        #[serde(default)]
        attribute: Option<String>,
        #[serde(default)]
        values: Option<Vec<toml::Value>>,
        #[serde(default, alias = "multi_attrs")]
        attributes: Option<BTreeMap<String, Vec<toml::Value>>>,
    },
}

/// A job file read and checked, with where its backend was named (for later errors).
pub(crate) struct ParsedJobFile {
    pub(crate) spec: JobSpec,
    /// `file:line:col` of `backend.type`, or of `[application]` when the default backend
    /// is used.
    pub(crate) backend_at: String,
}

/// Reads a job file. `default_backend` is used when it has no `[backend]`.
pub(crate) fn read(path: &Path, default_backend: &str) -> Result<ParsedJobFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_owned(),
        position: None,
        field: None,
        message: format!("cannot read it: {e}"),
    })?;
    let file: JobFile = tomlfile::parse(path, &text)?;
    let err = |span: std::ops::Range<usize>, field: &str, message: String| {
        FileError::at(path, &text, Some(span), Some(field.to_owned()), message)
    };
    let base = path.parent().unwrap_or(Path::new("."));

    let app_span = file.application.span();
    let app = file.application.into_inner();
    if let Some(kind) = &app.kind
        && !matches!(kind.get_ref().as_str(), "executable" | "Executable")
    {
        return Err(err(
            kind.span(),
            "application.type",
            format!(
                "unknown application `{}` (known: executable)",
                kind.get_ref()
            ),
        ));
    }
    if app.exe.get_ref().trim().is_empty() {
        return Err(err(
            app.exe.span(),
            "application.exe",
            "must name a program".into(),
        ));
    }

    let mut input_files = Vec::with_capacity(file.input_files.len());
    for (i, f) in file.input_files.iter().enumerate() {
        let resolved = absolute(base, f.get_ref());
        if !resolved.is_file() {
            return Err(err(
                f.span(),
                &format!("input_files[{i}]"),
                format!(
                    "`{}` is not a file (looked for {})",
                    f.get_ref(),
                    resolved.display()
                ),
            ));
        }
        input_files.push(resolved);
    }

    let (backend, backend_at) = match file.backend {
        Some(b) => {
            let (line, col) = tomlfile::line_col(&text, b.kind.span().start);
            let config = BackendConfig {
                kind: b.kind.into_inner(),
                options: b
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect(),
            };
            (
                config,
                format!("{}:{line}:{col}: backend.type", path.display()),
            )
        }
        None => {
            let (line, col) = tomlfile::line_col(&text, app_span.start);
            (
                BackendConfig::named(default_backend),
                format!("{}:{line}:{col}: (default backend)", path.display()),
            )
        }
    };

    let splitter = match file.splitter {
        None => None,
        Some(s) => {
            let span = s.span();
            let splitter =
                splitter_of(s.into_inner()).map_err(|m| err(span.clone(), "splitter", m))?;
            splitter
                .split()
                .map_err(|e| err(span, "splitter", e.to_string()))?;
            Some(splitter)
        }
    };

    let auto_resubmit = match file.auto_resubmit {
        None => None,
        Some(setting) => {
            let span = setting.span();
            Some(match setting.into_inner() {
                AutoResubmitSetting::Switch(true) => AutoResubmit::DEFAULT,
                AutoResubmitSetting::Switch(false) => AutoResubmit::OFF,
                AutoResubmitSetting::Limits(t) => {
                    let policy = AutoResubmit {
                        max_attempts: t.max_attempts.unwrap_or(AutoResubmit::DEFAULT.max_attempts),
                        max_failed_fraction: t
                            .max_failed_fraction
                            .unwrap_or(AutoResubmit::DEFAULT.max_failed_fraction),
                    };
                    if !(0.0..=1.0).contains(&policy.max_failed_fraction) {
                        return Err(err(
                            span,
                            "auto_resubmit.max_failed_fraction",
                            format!(
                                "must be between 0 and 1, not {}",
                                policy.max_failed_fraction
                            ),
                        ));
                    }
                    policy
                }
            })
        }
    };

    Ok(ParsedJobFile {
        spec: JobSpec {
            name: file.name,
            comment: file.comment,
            application: Application::Executable(Executable {
                exe: app.exe.into_inner(),
                args: app.args.into_iter().map(Word::into_string).collect(),
                env: app
                    .env
                    .into_iter()
                    .map(|(k, v)| (k, v.into_string()))
                    .collect(),
            }),
            backend,
            input_files,
            output_files: file.output_files,
            splitter,
            auto_resubmit,
        },
        backend_at,
    })
}

fn splitter_of(table: SplitterTable) -> Result<Splitter, String> {
    Ok(match table {
        SplitterTable::Args { args, append } => Splitter::Args {
            args: args
                .into_iter()
                .map(|a| {
                    a.into_iter()
                        .map(Word::into_string)
                        .collect::<Vec<String>>()
                })
                .collect(),
            append,
        },
        SplitterTable::Generic {
            attribute,
            values,
            attributes,
        } => {
            let attributes = match (attribute, values, attributes) {
                (Some(path), Some(values), None) => vec![SplitAttribute {
                    path,
                    values: values.iter().map(to_value).collect(),
                }],
                (None, None, Some(map)) => map
                    .into_iter()
                    .map(|(path, values)| SplitAttribute {
                        path,
                        values: values.iter().map(to_value).collect(),
                    })
                    .collect(),
                _ => {
                    return Err(
                        "a generic splitter takes either `attribute` and `values`, or an `attributes` table".into(),
                    );
                }
            };
            Splitter::Generic { attributes }
        }
    })
}

/// The file's absolute path, without `..` or symbolic links when it exists.
fn absolute(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    };
    joined
        .canonicalize()
        .or_else(|_| std::path::absolute(&joined))
        .unwrap_or(joined)
}
