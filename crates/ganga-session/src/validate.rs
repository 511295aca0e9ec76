//! What no process could be given, refused before a job is stored: the checks job files
//! get (with their lines, in `jobfile.rs`) and jobs built in code get ([`JobDefinition::built`]),
//! so a job is refused the same way however it was described.

use std::path::{Path, PathBuf};

use ganga_core::{JobSpec, Override};

use crate::SessionError;

/// A job as a user described it, checked, with where its backend and each backend option
/// were named, for the errors about them that only the backend can tell.
#[derive(Debug, Clone)]
pub struct JobDefinition {
    pub spec: JobSpec,
    /// Where the backend was named: `file:line:col: backend.type` (or
    /// `(default backend)`), or `Job.backend`.
    pub backend_at: String,
    /// The backend options the definition sets, and where: each key of its backend but
    /// `type`, and each `backend.OPTION` a splitter sets.
    pub backend_options: Vec<OptionAt>,
}

/// A backend option named in a definition, and where, as `file:line:col: field` or
/// `Job.backend.OPTION`.
#[derive(Debug, Clone)]
pub struct OptionAt {
    pub key: String,
    pub at: String,
}

impl JobDefinition {
    /// A job built in code (not read from a file), checked as a job file is: `name` is
    /// what errors call it (`Job` gives `Job.application.args[1]: ...`). Relative input
    /// files are taken from `base` (the caller's working directory) and made absolute.
    pub fn built(
        name: &str,
        mut spec: JobSpec,
        base: &Path,
    ) -> Result<JobDefinition, SessionError> {
        let err = |field: String, message: String| SessionError::Definition {
            at: format!("{name}.{field}"),
            message,
        };
        let exe = spec.application.executable();
        if exe.exe.trim().is_empty() {
            return Err(err("application.exe".into(), "must name a program".into()));
        }
        if let Some(problem) = exe_problem(&exe.exe) {
            return Err(err("application.exe".into(), problem));
        }
        for (i, arg) in exe.args.iter().enumerate() {
            if let Some(problem) = arg_problem(arg) {
                return Err(err(format!("application.args[{i}]"), problem));
            }
        }
        for (k, v) in &exe.env {
            if let Some(problem) = env_name_problem(k) {
                return Err(err("application.env".into(), problem));
            }
            if let Some(problem) = env_value_problem(v) {
                return Err(err(format!("application.env.{k}"), problem));
            }
        }
        for (i, pattern) in spec.output_files.iter().enumerate() {
            if let Some(problem) = pattern_problem(pattern) {
                return Err(err(format!("outputfiles[{i}]"), problem));
            }
        }
        let mut input_files = Vec::with_capacity(spec.input_files.len());
        for (i, f) in spec.input_files.iter().enumerate() {
            let shown = f.display().to_string();
            let resolved = absolute(base, &shown);
            if !resolved.is_file() {
                return Err(err(
                    format!("inputfiles[{i}]"),
                    format!(
                        "`{shown}` is not a file (looked for {})",
                        resolved.display()
                    ),
                ));
            }
            if resolved.to_str().is_none() {
                return Err(err(
                    format!("inputfiles[{i}]"),
                    format!(
                        "the path {} is not valid UTF-8: ganga keeps paths as text; rename the file or the directories on its way",
                        resolved.display()
                    ),
                ));
            }
            input_files.push(resolved);
        }
        spec.input_files = input_files;
        if spec.backend.kind.trim().is_empty() {
            return Err(err("backend".into(), "must name a backend".into()));
        }
        let mut backend_options: Vec<OptionAt> = spec
            .backend
            .options
            .keys()
            .map(|key| OptionAt {
                key: key.clone(),
                at: format!("{name}.backend.{key}"),
            })
            .collect();
        if let Some(splitter) = &spec.splitter {
            let subjobs = splitter
                .split()
                .map_err(|e| err("splitter".into(), e.to_string()))?;
            for o in subjobs.first().into_iter().flatten() {
                if let Override::BackendOption(key, _) = o {
                    backend_options.push(OptionAt {
                        key: key.clone(),
                        at: format!("{name}.splitter: backend.{key}"),
                    });
                }
            }
            let base_args = spec.application.executable().args.len();
            for (i, overrides) in subjobs.iter().enumerate() {
                if let Some((field, problem)) = override_problem(overrides, base_args) {
                    return Err(err(
                        "splitter".into(),
                        format!("subjob {i}: {field}: {problem}"),
                    ));
                }
            }
        }
        Ok(JobDefinition {
            backend_at: format!("{name}.backend"),
            backend_options,
            spec,
        })
    }

    /// Refuses options the backend does not know (`known`, from its description): a typo
    /// must not be silently ignored.
    pub(crate) fn check_backend_options(&self, known: &[String]) -> Result<(), SessionError> {
        let Some(unknown) = self
            .backend_options
            .iter()
            .find(|o| !known.contains(&o.key))
        else {
            return Ok(());
        };
        let knows = if known.is_empty() {
            " none".to_owned()
        } else {
            format!(": {}", known.join(", "))
        };
        Err(SessionError::Definition {
            at: unknown.at.clone(),
            message: format!(
                "unknown option of backend `{}` (it knows{knows})",
                self.spec.backend.kind
            ),
        })
    }
}

/// Why a program cannot be run by this name, if it cannot.
pub(crate) fn exe_problem(exe: &str) -> Option<String> {
    if exe.starts_with('-') {
        // Wrappers and env(1) would take it for an option.
        Some(format!(
            "`{exe}` starts with `-`, which would be taken for an option"
        ))
    } else {
        nul_problem(exe)
    }
}

pub(crate) fn arg_problem(arg: &str) -> Option<String> {
    nul_problem(arg)
}

/// A process gets its arguments and environment as NUL-terminated strings.
pub(crate) fn nul_problem(text: &str) -> Option<String> {
    text.contains('\0')
        .then(|| "contains a NUL character, which no process can be given".to_owned())
}

/// `env NAME=value` splits at the first `=`, a NUL ends the name, and a leading `-` is an
/// option to env(1).
pub(crate) fn env_name_problem(name: &str) -> Option<String> {
    (name.is_empty() || name.contains(['=', '\0']) || name.starts_with('-')).then(|| {
        format!(
            "`{}` cannot be the name of an environment variable (it is empty, contains `=` or a NUL, or starts with `-`)",
            name.escape_debug()
        )
    })
}

pub(crate) fn env_value_problem(value: &str) -> Option<String> {
    nul_problem(value)
}

/// An output pattern must be a glob relative to the job's working directory.
pub(crate) fn pattern_problem(pattern: &str) -> Option<String> {
    if let Err(e) = ganga_core::check_inside_workdir(pattern) {
        return Some(e);
    }
    glob::Pattern::new(pattern)
        .err()
        .map(|e| format!("`{pattern}` is not a usable pattern: {e}"))
}

/// The first value a subjob's overrides would set that no process could be given, as
/// (field, why). `base_args` is how many arguments the master has (appended ones follow).
pub(crate) fn override_problem(
    overrides: &[Override],
    base_args: usize,
) -> Option<(String, String)> {
    let args = |list: &[String], first: usize| {
        list.iter().enumerate().find_map(|(j, a)| {
            arg_problem(a).map(|p| (format!("application.args[{}]", first + j), p))
        })
    };
    let env_var = |name: &str, value: &str| {
        env_name_problem(name)
            .map(|p| ("application.env".to_owned(), p))
            .or_else(|| env_value_problem(value).map(|p| (format!("application.env.{name}"), p)))
    };
    overrides.iter().find_map(|o| match o {
        Override::Exe(exe) => exe_problem(exe).map(|p| ("application.exe".to_owned(), p)),
        Override::Args(list) => args(list, 0),
        Override::AppendArgs(list) => args(list, base_args),
        Override::Env(env) => env.iter().find_map(|(k, v)| env_var(k, v)),
        Override::EnvVar(k, v) => env_var(k, v),
        Override::Name(_) | Override::Comment(_) | Override::BackendOption(..) => None,
    })
}

/// The file's absolute path, without `..` or symbolic links when it exists.
pub(crate) fn absolute(base: &Path, file: &str) -> PathBuf {
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
