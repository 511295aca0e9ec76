//! The wrapper a submission runs: one script for a whole chunk, whatever its size.
//!
//! It finds its unit in a table by the task index the batch system gives it: the unit's
//! workspace, run, and program with its arguments and environment. It makes the unit's
//! directories (on the worker: a submission of a thousand units touches no unit
//! directory on the submit host), records `started`, runs the program in the working
//! directory with stdout and stderr in files there, and records `exit` with the run, the
//! exit code and the times; it then exits with the program's exit code, so that the
//! batch system's own accounting tells the same story. Everything that comes from a job
//! is quoted for the shell by `shlex` and reaches the program as separate words
//! (`set -- WORDS`, then `exec "$@"`); nothing of it is ever shell code.

use std::fmt::Write as _;
use std::path::Path;

use ganga_core::SubmitSpec;

use crate::flavour::Flavour;
use crate::layout::{STDERR, STDOUT, WRAPPER_LOG};

/// The format of the wrapper and its records (written into each, for whoever reads one
/// later).
const FORMAT: u32 = 1;

/// Runs the program after `env NAME=VALUE...` when its name would be read as one more
/// assignment by env(1).
const TRAMPOLINE: [&str; 3] = ["/bin/sh", "-c", "exec \"$0\" \"$@\""];

/// One unit of a chunk: its task index, workspace, run, and its program as shell words
/// ([`unit_words`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Task<'a> {
    pub(crate) index: u32,
    pub(crate) workspace: &'a Path,
    pub(crate) run: u32,
    pub(crate) words: &'a str,
}

/// A word quoted for the POSIX shell.
pub(crate) fn quote(word: &str) -> Result<String, String> {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .map_err(|_| format!("{} contains a NUL character", word.escape_debug()))
}

fn quote_path(path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
    quote(text)
}

/// A unit's program with its arguments and environment, as quoted shell words: `env
/// NAME=VALUE... EXE ARGS...` (env(1) only when there is an environment to add).
pub(crate) fn unit_words(spec: &SubmitSpec) -> Result<String, String> {
    let mut words: Vec<String> = Vec::new();
    if !spec.env.is_empty() {
        words.push("env".to_owned());
        for (name, value) in &spec.env {
            words.push(quote(&format!("{name}={value}"))?);
        }
        if spec.exe.contains('=') {
            words.extend(
                TRAMPOLINE
                    .iter()
                    .map(|w| quote(w))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    words.push(quote(&spec.exe)?);
    for arg in &spec.args {
        words.push(quote(arg)?);
    }
    Ok(words.join(" "))
}

/// The wrapper of one chunk of units.
pub(crate) fn wrapper_script(
    flavour: &Flavour,
    key: &str,
    tasks: &[Task<'_>],
) -> Result<String, String> {
    let mut table = String::new();
    for t in tasks {
        let _ = writeln!(
            table,
            "{})\n    ganga_ws={} ganga_run={}\n    set -- {}\n    ;;",
            t.index,
            quote_path(t.workspace)?,
            t.run,
            t.words
        );
    }
    Ok(format!(
        r#"#!/bin/sh
# ganga-rs Batch backend (format {FORMAT}): the wrapper of submission {key} ({count} unit(s), {title}).
#
# Each task finds its unit (workspace, run, program) in the table below by its task
# index, makes the unit's directories, records `started`, runs the program in the
# working directory and records `exit` (records go to a temporary file that is then
# renamed), then exits with the program's exit code.

ganga_index={index_expr}
ganga_id={id_expr}
case $ganga_index in
{table}*)
    echo "ganga: task index '$ganga_index' is not in the table of submission {key}" >&2
    exit 70
    ;;
esac
ganga_control=$ganga_ws/batch
ganga_work=$ganga_ws/work
if ! mkdir -p "$ganga_control" "$ganga_work"; then
    echo "ganga: cannot make the directories of $ganga_ws (is it on a file system this host shares?)" >&2
    exit 71
fi

# The wrapper's own messages go to the control directory (a failed redirection of
# `exec` would end the shell: try it in a subshell first).
if (: >>"$ganga_control/{WRAPPER_LOG}") 2>/dev/null; then
    exec 2>>"$ganga_control/{WRAPPER_LOG}"
fi

# Prints `time_ms=...`, or `time_s=...` where `date` has no %N.
ganga_now() {{
    ganga_t=$(date +%s%N 2>/dev/null)
    case $ganga_t in
        '' | *[!0-9]*) echo "time_s=$(date +%s)" ;;
        *)
            if [ "${{#ganga_t}}" -gt 12 ]; then
                echo "time_ms=${{ganga_t%??????}}"
            else
                echo "time_s=$ganga_t"
            fi
            ;;
    esac
}}

# Copies stdin into the record $1, atomically.
ganga_record() {{
    cat >"$ganga_control/$1.tmp$$" && mv -f "$ganga_control/$1.tmp$$" "$ganga_control/$1"
}}

ganga_host=$(hostname 2>/dev/null || uname -n)
ganga_started=$(ganga_now)
{{
    echo "format={FORMAT}"
    echo "run=$ganga_run"
    echo "id=$ganga_id"
    echo "host=$ganga_host"
    echo "$ganga_started"
}} | ganga_record started

ganga_error=
if cd "$ganga_work" 2>/dev/null; then
    # exec: the program is never taken for one of this script's functions or builtins.
    (exec "$@") </dev/null >{STDOUT} 2>{STDERR}
    ganga_rc=$?
else
    ganga_rc=126
    ganga_error="cannot enter the working directory $ganga_work"
fi

{{
    echo "format={FORMAT}"
    echo "run=$ganga_run"
    echo "exit_code=$ganga_rc"
    # sh reports a program killed by signal n as 128+n.
    if [ "$ganga_rc" -gt 128 ] && [ "$ganga_rc" -le 192 ]; then
        echo "signal=$((ganga_rc - 128))"
    fi
    if [ -n "$ganga_error" ]; then
        echo "error=$ganga_error"
    fi
    echo "id=$ganga_id"
    echo "host=$ganga_host"
    echo "started_$ganga_started"
    ganga_now
}} | ganga_record exit
exit $ganga_rc
"#,
        count = tasks.len(),
        title = flavour.title,
        index_expr = flavour.index_expr,
        id_expr = flavour.id_expr,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::Command;

    use ganga_core::{JobRef, Options};

    use super::*;
    use crate::flavour;
    use crate::layout::UnitDirs;
    use crate::records::{Reading, RunRecords};

    fn spec(workspace: &Path, exe: &str, args: &[&str], env: &[(&str, &str)]) -> SubmitSpec {
        SubmitSpec {
            job: JobRef::subjob(4, 2),
            run: 3,
            previous_id: None,
            name: "t".into(),
            exe: exe.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            input_files: Vec::new(),
            output_patterns: Vec::new(),
            workspace: workspace.to_owned(),
            output_dir: workspace.join("out"),
            options: Options::new(),
        }
    }

    /// Runs the wrapper of a one-unit chunk as the batch system would, with the task
    /// index in `SLURM_ARRAY_TASK_ID`.
    fn run_wrapper(workspace: &Path, spec: &SubmitSpec) -> std::process::ExitStatus {
        let words = unit_words(spec).expect("words");
        let tasks = [Task {
            index: 0,
            workspace,
            run: spec.run,
            words: &words,
        }];
        let wrapper = wrapper_script(flavour::by_name("slurm").expect("slurm"), "k1", &tasks)
            .expect("a wrapper");
        let path = workspace.with_extension("wrapper.sh");
        std::fs::write(&path, wrapper).expect("written");
        Command::new("/bin/sh")
            .arg(&path)
            .env("SLURM_ARRAY_TASK_ID", "0")
            .env("SLURM_ARRAY_JOB_ID", "77")
            .status()
            .expect("sh runs")
    }

    #[test]
    fn the_wrapper_records_the_run_and_passes_words_through() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ws: PathBuf = dir.path().join("it's a \"workspace\" $HOME");
        let awkward = ["a b", "$(touch /tmp/pwned-by-ganga)", "'q'", "*", "\\n", ""];
        let spec = spec(
            &ws,
            "/bin/sh",
            &[
                &[
                    "-c",
                    "printf '%s|' \"$@\"; printf %s \"$GREETING\" >&2; exit 3",
                    "x",
                ],
                &awkward[..],
            ]
            .concat(),
            &[("GREETING", "hello $USER `id`")],
        );
        let status = run_wrapper(&ws, &spec);
        assert_eq!(
            status.code(),
            Some(3),
            "the wrapper exits with the program's code"
        );
        let dirs = UnitDirs::new(&ws);
        let out = std::fs::read_to_string(dirs.work.join(STDOUT)).expect("stdout");
        assert_eq!(out, format!("{}|", awkward.join("|")));
        let err = std::fs::read_to_string(dirs.work.join(STDERR)).expect("stderr");
        assert_eq!(err, "hello $USER `id`");
        let records = RunRecords::read(&dirs, 3, Reading::Beginnings).expect("read");
        let exit = records.exit.expect("an exit record of run 3");
        assert_eq!(
            (exit.code, exit.signal, exit.id.as_deref()),
            (3, None, Some("77_0"))
        );
        assert!(exit.time.is_some() && exit.started.is_some());
        assert_eq!(records.started.and_then(|s| s.id).as_deref(), Some("77_0"));
        assert!(
            RunRecords::read(&dirs, 2, Reading::Ends)
                .expect("read")
                .exit
                .is_none()
        );
    }

    #[test]
    fn signals_and_odd_program_names() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ws = dir.path().join("w");
        let term = spec(&ws, "/bin/sh", &["-c", "kill -TERM $$"], &[]);
        run_wrapper(&ws, &term);
        let exit = RunRecords::read(&UnitDirs::new(&ws), 3, Reading::Ends)
            .expect("read")
            .exit
            .expect("recorded");
        assert_eq!((exit.code, exit.signal), (143, Some(15)));

        // A program whose name looks like an assignment, with an environment.
        let ws = dir.path().join("v");
        std::fs::create_dir_all(UnitDirs::new(&ws).work).expect("work dir (input files)");
        let odd = UnitDirs::new(&ws).work.join("a=b");
        std::fs::write(&odd, "#!/bin/sh\necho ran $X\n").expect("written");
        std::fs::set_permissions(&odd, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let odd_spec = spec(&ws, "./a=b", &[], &[("X", "1")]);
        assert_eq!(run_wrapper(&ws, &odd_spec).code(), Some(0));
        let out = std::fs::read_to_string(UnitDirs::new(&ws).work.join(STDOUT)).expect("stdout");
        assert_eq!(out, "ran 1\n");
    }

    #[test]
    fn a_program_named_like_a_builtin_is_not_the_builtin() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ws = dir.path().join("w");
        // `exit 0` as a builtin would end the wrapper before it records the end.
        let spec = spec(&ws, "exit", &["0"], &[]);
        assert_eq!(run_wrapper(&ws, &spec).code(), Some(127));
        let exit = RunRecords::read(&UnitDirs::new(&ws), 3, Reading::Ends)
            .expect("read")
            .exit
            .expect("recorded");
        assert_eq!(exit.code, 127);
    }

    #[test]
    fn an_unknown_task_index_fails_the_task() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let tasks = [Task {
            index: 1,
            workspace: dir.path(),
            run: 1,
            words: "true",
        }];
        let wrapper =
            wrapper_script(flavour::by_name("sge").expect("sge"), "k", &tasks).expect("a wrapper");
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(wrapper)
            .env("SGE_TASK_ID", "9")
            .status()
            .expect("sh runs");
        assert_eq!(status.code(), Some(70));
    }

    #[test]
    fn nul_characters_are_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let spec = spec(dir.path(), "/bin/echo", &["a\0b"], &[]);
        assert!(unit_words(&spec).is_err_and(|e| e.contains("NUL")));
    }
}
