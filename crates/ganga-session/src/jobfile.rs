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
use std::path::Path;

use ganga_core::{
    Application, AutoResubmit, BackendConfig, Executable, JobSpec, Override, SplitAttribute,
    Splitter,
};
use serde::Deserialize;
use toml::Spanned;

use crate::config::to_value;
use crate::tomlfile::{self, FileError};
use crate::validate::{
    JobDefinition, OptionAt, absolute, arg_problem, env_name_problem, env_value_problem,
    exe_problem, override_problem, pattern_problem,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    comment: String,
    application: Spanned<ApplicationTable>,
    #[serde(default)]
    backend: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    #[serde(default)]
    input_files: Vec<Spanned<String>>,
    #[serde(default)]
    output_files: Vec<Spanned<String>>,
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
    args: Vec<Spanned<Word>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<Word>>,
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

/// Reads a job file. `default_backend` is used when it has no `[backend]`.
pub(crate) fn read(path: &Path, default_backend: &str) -> Result<JobDefinition, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_owned(),
        position: None,
        field: None,
        message: format!("cannot read it: {e}"),
    })?;
    parse(path, &text, default_backend)
}

/// Reads the text of the job file at `path` (input files are looked for beside it).
fn parse(path: &Path, text: &str, default_backend: &str) -> Result<JobDefinition, FileError> {
    let file: JobFile = tomlfile::parse(path, text)?;
    let source = Source { path, text };
    let app_span = file.application.span();
    let application = source.application(file.application.into_inner())?;
    let Application::Executable(exe) = &application;
    let arg_count = exe.args.len();
    let output_files = source.output_files(file.output_files)?;
    let input_files = source.input_files(&file.input_files)?;
    let mut backend_options = Vec::new();
    let (backend, backend_at) = match file.backend {
        Some(table) => source.backend(table, &mut backend_options)?,
        None => (
            BackendConfig::named(default_backend),
            source.at(app_span, "(default backend)"),
        ),
    };
    let splitter = match file.splitter {
        Some(s) => Some(source.splitter(s, arg_count, &mut backend_options)?),
        None => None,
    };
    let auto_resubmit = match file.auto_resubmit {
        Some(setting) => Some(source.auto_resubmit(setting)?),
        None => None,
    };
    Ok(JobDefinition {
        spec: JobSpec {
            name: file.name,
            comment: file.comment,
            application,
            backend,
            input_files,
            output_files,
            splitter,
            auto_resubmit,
        },
        backend_at,
        backend_options,
    })
}

/// The job file being read: each step below reads one part of it and refuses what no
/// backend could run, naming the line and the field.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

type Span = std::ops::Range<usize>;

impl Source<'_> {
    fn err(&self, span: Span, field: &str, message: String) -> FileError {
        FileError::at(
            self.path,
            self.text,
            Some(span),
            Some(field.to_owned()),
            message,
        )
    }

    /// `path:line:col: field`, where a backend option was named (for the backend's
    /// refusal of it, later).
    fn at(&self, span: Span, field: &str) -> String {
        let (line, col) = tomlfile::line_col(self.text, span.start);
        format!("{}:{line}:{col}: {field}", self.path.display())
    }

    fn application(&self, app: ApplicationTable) -> Result<Application, FileError> {
        if let Some(kind) = &app.kind
            && !matches!(kind.get_ref().as_str(), "executable" | "Executable")
        {
            return Err(self.err(
                kind.span(),
                "application.type",
                format!(
                    "unknown application `{}` (known: executable)",
                    kind.get_ref()
                ),
            ));
        }
        if app.exe.get_ref().trim().is_empty() {
            return Err(self.err(
                app.exe.span(),
                "application.exe",
                "must name a program".into(),
            ));
        }
        // What no backend could hand to a process is refused here, with its line, rather
        // than stored as a job that fails at submission.
        if let Some(problem) = exe_problem(app.exe.get_ref()) {
            return Err(self.err(app.exe.span(), "application.exe", problem));
        }
        let mut args = Vec::with_capacity(app.args.len());
        for (i, arg) in app.args.into_iter().enumerate() {
            let span = arg.span();
            let arg = arg.into_inner().into_string();
            if let Some(problem) = arg_problem(&arg) {
                return Err(self.err(span, &format!("application.args[{i}]"), problem));
            }
            args.push(arg);
        }
        let mut env = BTreeMap::new();
        for (name, value) in app.env {
            if let Some(problem) = env_name_problem(name.get_ref()) {
                return Err(self.err(name.span(), "application.env", problem));
            }
            let span = value.span();
            let value = value.into_inner().into_string();
            if let Some(problem) = env_value_problem(&value) {
                return Err(self.err(
                    span,
                    &format!("application.env.{}", name.get_ref()),
                    problem,
                ));
            }
            env.insert(name.into_inner(), value);
        }
        Ok(Application::Executable(Executable {
            exe: app.exe.into_inner(),
            args,
            env,
        }))
    }

    fn output_files(&self, patterns: Vec<Spanned<String>>) -> Result<Vec<String>, FileError> {
        let mut out = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.into_iter().enumerate() {
            if let Some(problem) = pattern_problem(pattern.get_ref()) {
                return Err(self.err(pattern.span(), &format!("output_files[{i}]"), problem));
            }
            out.push(pattern.into_inner());
        }
        Ok(out)
    }

    /// Each input file, resolved against the job file's directory; it must exist now.
    fn input_files(&self, files: &[Spanned<String>]) -> Result<Vec<std::path::PathBuf>, FileError> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let resolved = absolute(base, f.get_ref());
            if !resolved.is_file() {
                return Err(self.err(
                    f.span(),
                    &format!("input_files[{i}]"),
                    format!(
                        "`{}` is not a file (looked for {})",
                        f.get_ref(),
                        resolved.display()
                    ),
                ));
            }
            if resolved.to_str().is_none() {
                return Err(self.err(
                    f.span(),
                    &format!("input_files[{i}]"),
                    format!(
                        "the path {} is not valid UTF-8: ganga keeps paths as text; rename the file or the directories on its way",
                        resolved.display()
                    ),
                ));
            }
            out.push(resolved);
        }
        Ok(out)
    }

    /// The backend and its options, each option with where it was named.
    fn backend(
        &self,
        table: Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
        named: &mut Vec<OptionAt>,
    ) -> Result<(BackendConfig, String), FileError> {
        // Read by hand rather than derived, to keep where each option is named.
        let table_span = table.span();
        let mut kind = None;
        let mut options = ganga_core::Options::new();
        for (key, value) in table.into_inner() {
            if key.get_ref() == "type" {
                match value.get_ref() {
                    toml::Value::String(k) => kind = Some((k.clone(), value.span())),
                    other => {
                        return Err(self.err(
                            value.span(),
                            "backend.type",
                            format!("invalid type: {}, expected a string", other.type_str()),
                        ));
                    }
                }
                continue;
            }
            named.push(OptionAt {
                key: key.get_ref().clone(),
                at: self.at(key.span(), &format!("backend.{}", key.get_ref())),
            });
            options.insert(key.into_inner(), to_value(value.get_ref()));
        }
        let Some((kind, kind_span)) = kind else {
            return Err(self.err(table_span, "backend", "missing field `type`".into()));
        };
        Ok((
            BackendConfig { kind, options },
            self.at(kind_span, "backend.type"),
        ))
    }

    /// The splitter, split once here so that what no subjob could run is refused now;
    /// the backend options it sets are named as the splitter's.
    fn splitter(
        &self,
        table: Spanned<SplitterTable>,
        arg_count: usize,
        named: &mut Vec<OptionAt>,
    ) -> Result<Splitter, FileError> {
        let span = table.span();
        let splitter =
            splitter_of(table.into_inner()).map_err(|m| self.err(span.clone(), "splitter", m))?;
        let subjobs = splitter
            .split()
            .map_err(|e| self.err(span.clone(), "splitter", e.to_string()))?;
        let splitter_at = self.at(span.clone(), "splitter");
        for o in subjobs.first().into_iter().flatten() {
            if let Override::BackendOption(key, _) = o {
                named.push(OptionAt {
                    key: key.clone(),
                    at: format!("{splitter_at}: backend.{key}"),
                });
            }
        }
        for (i, overrides) in subjobs.iter().enumerate() {
            if let Some((field, problem)) = override_problem(overrides, arg_count) {
                return Err(self.err(span, "splitter", format!("subjob {i}: {field}: {problem}")));
            }
        }
        Ok(splitter)
    }

    fn auto_resubmit(
        &self,
        setting: Spanned<AutoResubmitSetting>,
    ) -> Result<AutoResubmit, FileError> {
        let span = setting.span();
        Ok(match setting.into_inner() {
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
                    return Err(self.err(
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

#[cfg(test)]
mod fuzz {
    //! The job-file reader against what a careless edit or a hostile user could write:
    //! any text, valid job files mutated at random, nesting far deeper than any job
    //! needs. Whatever the input, it answers (a job or an error) without panicking or
    //! overflowing the stack. A few hundred cases run with the normal tests; for a long
    //! run set `PROPTEST_CASES`, e.g.
    //! `PROPTEST_CASES=200000 cargo test --release -p ganga-cli fuzz`.

    use std::path::PathBuf;

    use ganga_test_support::fuzz::{mutate, mutation};
    use proptest::prelude::*;

    use super::*;

    /// Job files using every field; input files are looked for in `examples/`.
    const SAMPLES: &[&str] = &[
        include_str!("../../../examples/hello-split.toml"),
        include_str!("../../../examples/generic-split.toml"),
        include_str!("../../../examples/hello.toml"),
        r#"name = "all"
comment = """multi
line"""
input_files = ["greeting.txt", './greeting.txt']
output_files = ["out/*.txt", "a?b[0-9]"]
[application]
type = "executable"
exe = "/bin/sh"
args = ["-c", 1, 2.5, true, 'lit\eral']
env = { A = "1", "B.C" = 2, "é" = "ü" }
[backend]
type = "local"
queue = "short"
nested = { deep = [1, [2, [3]]], when = 1979-05-27T07:32:00Z }
[splitter]
type = "generic"
attributes = { "application.args" = [["a"], ["b"]], "application.env.X" = ["1", "2"], "backend.queue" = ["q1", "q2"] }
"#,
    ];

    /// TOML and job-file pieces spliced in by the mutations.
    const PIECES: &[&str] = &[
        "[",
        "]",
        "{",
        "}",
        "[[",
        "]]",
        "\"",
        "'",
        "\"\"\"",
        "'''",
        "=",
        ",",
        ".",
        "\n",
        "#",
        "\\u0000",
        "\\",
        "[splitter]",
        "[backend]",
        "[application]",
        "type = ",
        "exe = \"-x\"",
        "args = [[",
        "env = {",
        "output_files = [\"/..\"]",
        "input_files = [\"../",
        "1979-05-27",
        "inf",
        "nan",
        "0x7fffffffffffffff",
        "99999999999999999999",
        "é",
        "\u{feff}",
    ];

    fn job_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fuzzed.toml")
    }

    /// Reads `text`; an error must still render (it names the file).
    fn read_text(text: &str) {
        match parse(&job_path(), text, "local") {
            Ok(parsed) => assert!(!parsed.backend_at.is_empty()),
            Err(e) => assert!(e.to_string().contains("fuzzed.toml"), "{e}"),
        }
    }

    #[test]
    fn the_samples_are_valid_job_files() {
        for text in SAMPLES {
            if let Err(e) = parse(&job_path(), text, "local") {
                panic!("{e}\n{text}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_is_answered(text in "\\PC{0,1024}") {
            read_text(&text);
        }

        #[test]
        fn any_mutation_of_a_job_file_is_answered(
            which in 0..SAMPLES.len(),
            mutations in prop::collection::vec(mutation(PIECES), 1..16)
        ) {
            let bytes = mutate(SAMPLES[which].as_bytes().to_vec(), &mutations);
            read_text(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 100_000;
        let app = "[application]\nexe = \"x\"\n";
        let cases = [
            format!("{app}args = {}{}", "[".repeat(depth), "]".repeat(depth)),
            format!(
                "{app}[backend]\ntype = \"local\"\nq = {}1{}",
                "{a = ".repeat(depth),
                "}".repeat(depth)
            ),
            format!("{}=1\n{app}", vec!["a"; depth].join(".")),
        ];
        for text in cases {
            assert!(parse(&job_path(), &text, "local").is_err());
        }
    }
}
