//! What the flavours share in building commands and reading their answers, driven by each
//! flavour's data: how its ids of array tasks look, how its submit command takes a queue
//! and the wrapper, which words of its kill command's answer mean what. Pure functions:
//! they build argument lists and read text.

use std::path::Path;

use super::{CommandOutput, KillOutcome, ParseError, SubmitPlan, SubmitRequest, excerpt};

/// How a flavour writes the id of one task of a submission (see [`super::Flavour::unit_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskIds {
    /// `<base><separator><index>`: Slurm's `12_3`, Grid Engine's and HTCondor's `12.3`.
    Joined(char),
    /// `<base>[<index>]`: LSF's `12[3]`.
    Bracketed,
    /// No arrays: a unit's id is its job's id, and every unit is task 0 of its own job.
    JobOnly,
}

impl TaskIds {
    /// The id of the unit at task index `index` of the submission with id `base`.
    pub(crate) fn unit_id(self, base: &str, index: u32) -> String {
        match self {
            TaskIds::Joined(sep) => format!("{base}{sep}{index}"),
            TaskIds::Bracketed => format!("{base}[{index}]"),
            TaskIds::JobOnly => base.to_owned(),
        }
    }

    /// The submission's id and the task index of a unit id: [`TaskIds::unit_id`] undone.
    pub(crate) fn split_id(self, id: &str) -> Option<(&str, u32)> {
        let (base, index) = match self {
            TaskIds::Joined(sep) => id.split_once(sep)?,
            TaskIds::Bracketed => id.strip_suffix(']')?.split_once('[')?,
            TaskIds::JobOnly => return Some((id, 0)),
        };
        Some((base, index.parse().ok()?))
    }
}

/// For commands that take unit ids as they are (`scancel 12_3 12_4`).
pub(crate) fn ids_as_args(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// A path as one argument of a command.
pub(crate) fn path_arg(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}

/// How a submit command is told the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueOption {
    /// An option, then the queue as the next argument (`-q short`).
    Flag(&'static str),
    /// An option with the queue joined to it (`--partition=short`).
    Joined(&'static str),
}

/// A submit command's arguments: the flavour's own, then the queue, then the user's
/// extra options as they are (last, so that they can override ours).
fn submit_args(req: &SubmitRequest<'_>, mut own: Vec<String>, queue: QueueOption) -> Vec<String> {
    if let Some(name) = req.queue {
        match queue {
            QueueOption::Flag(flag) => own.extend([flag.to_owned(), name.to_owned()]),
            QueueOption::Joined(prefix) => own.push(format!("{prefix}{name}")),
        }
    }
    own.extend(req.extra.iter().cloned());
    own
}

/// The plan of a flavour whose submit command reads the wrapper from a file named last on
/// its command line (`sbatch ... <key>.sh`); the file is needed only while it runs.
pub(crate) fn script_file_plan(
    req: &SubmitRequest<'_>,
    own: Vec<String>,
    queue: QueueOption,
) -> Result<SubmitPlan, String> {
    let script = req.temp_dir.join(format!("{}.sh", req.key));
    let mut args = submit_args(req, own, queue);
    args.push(path_arg(&script)?);
    Ok(SubmitPlan {
        args,
        temp_files: vec![(script, req.script.to_owned())],
        ..SubmitPlan::default()
    })
}

/// The plan of a flavour whose submit command reads the wrapper on its standard input
/// (`bsub < script`).
pub(crate) fn script_stdin_plan(
    req: &SubmitRequest<'_>,
    own: Vec<String>,
    queue: QueueOption,
) -> SubmitPlan {
    SubmitPlan {
        args: submit_args(req, own, queue),
        stdin: Some(req.script.to_owned()),
        ..SubmitPlan::default()
    }
}

/// The first line of a command's answer that is not blank, trimmed.
pub(crate) fn first_line(stdout: &str) -> Option<&str> {
    stdout.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The id a submit command answered, as its flavour found it in `stdout` (`None`: it
/// found none), or an error naming the answer `what` and showing what it said instead of
/// the `expected`.
pub(crate) fn submitted_id(
    found: Option<&str>,
    what: &'static str,
    expected: &str,
    stdout: &str,
) -> Result<String, ParseError> {
    found.map(str::to_owned).ok_or_else(|| {
        ParseError::new(
            what,
            format!("expected {expected}, got {}", excerpt(stdout)),
        )
    })
}

/// Words of a command's answer, looked for in a line in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Said {
    Anywhere(&'static str),
    AtStart(&'static str),
}

impl Said {
    fn in_line(self, lower: &str) -> bool {
        match self {
            Said::Anywhere(words) => lower.contains(words),
            Said::AtStart(words) => lower.starts_with(words),
        }
    }
}

fn said_any(words: &[Said], lower: &str) -> bool {
    words.iter().any(|w| w.in_line(lower))
}

/// How a flavour's kill command answers, for [`KillAnswer::read`].
///
/// Kill commands print one line per id they could not kill (or did kill); a line says the
/// job went or had gone already, or names the ids it failed, or says the system itself
/// did not answer. A line that names no id is a failure of the whole command: the system
/// said something this flavour does not know, and reporting ids killed would be a guess.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KillAnswer {
    /// An exit code of 0 means every id went, whatever was printed (`scancel`, PBS's
    /// `qdel`).
    pub(crate) success_is_done: bool,
    /// A failed command that printed nothing still killed every id (Slurm's Torque wrapper
    /// counts ids that had ended already in its exit code, silently); otherwise it failed
    /// as a whole.
    pub(crate) silent_failure_is_done: bool,
    /// Lines that say the system did not answer: the whole command failed, even where the
    /// line names an id (the system is the trouble, not the job).
    pub(crate) down: &'static [Said],
    /// Lines that say an id was killed or had ended already.
    pub(crate) gone: &'static [Said],
    /// Whether a line that says an id went must name one of ours to count (otherwise it
    /// fails the command as any line that names none).
    pub(crate) gone_names_an_id: bool,
    /// The lines that name ids that could not be killed (`None`: every line). Other lines
    /// are ignored when the command succeeded and fail it when it did not (Grid Engine's
    /// `qdel` prints `denied: ...` for ids it refuses).
    pub(crate) refusals: Option<&'static [Said]>,
    /// Whether `line` names the unit id `id`.
    pub(crate) names: fn(line: &str, id: &str) -> bool,
    /// Each line names one job at most (Slurm): the first id it names is the one.
    pub(crate) one_id_a_line: bool,
}

impl KillAnswer {
    /// The common kind of answer: exit code or not, each line says of the ids it names
    /// that they went (`gone`) or could not be killed, and a failure that prints nothing
    /// failed as a whole. A flavour changes what differs.
    pub(crate) const fn new(gone: &'static [Said], names: fn(&str, &str) -> bool) -> KillAnswer {
        KillAnswer {
            success_is_done: false,
            silent_failure_is_done: false,
            down: &[],
            gone,
            gone_names_an_id: false,
            refusals: None,
            names,
            one_id_a_line: false,
        }
    }

    /// What the answer `out` of `command` (for messages) says about each of `ids`.
    pub(crate) fn read(&self, command: &str, out: &CommandOutput, ids: &[&str]) -> KillOutcome {
        if self.success_is_done && out.success() {
            return KillOutcome::Done;
        }
        let text = out.text();
        if text.is_empty() && !out.success() && !self.silent_failure_is_done {
            return KillOutcome::Failed(format!("{command} failed with exit code {:?}", out.code));
        }
        let whole = || KillOutcome::Failed(format!("{command} failed: {text}"));
        let mut failed = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let lower = line.to_ascii_lowercase();
            if said_any(self.down, &lower) {
                return whole();
            }
            let gone = said_any(self.gone, &lower);
            if gone && !self.gone_names_an_id {
                continue;
            }
            if self.refusals.is_some_and(|r| !said_any(r, &lower)) {
                if out.success() {
                    continue;
                }
                return whole();
            }
            let mut named = ids.iter().filter(|id| (self.names)(line, id));
            let named: Vec<&&str> = if self.one_id_a_line {
                named.next().into_iter().collect()
            } else {
                named.collect()
            };
            if named.is_empty() {
                return whole();
            }
            if !gone {
                failed.extend(
                    named
                        .into_iter()
                        .map(|id| ((*id).to_owned(), line.to_owned())),
                );
            }
        }
        if failed.is_empty() {
            KillOutcome::Done
        } else {
            KillOutcome::Some(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_split_back() {
        for (form, id) in [
            (TaskIds::Joined('_'), "12_3"),
            (TaskIds::Joined('.'), "12.3"),
            (TaskIds::Bracketed, "12[3]"),
        ] {
            assert_eq!(form.unit_id("12", 3), id);
            assert_eq!(form.split_id(id), Some(("12", 3)));
            assert_eq!(form.split_id("12"), None, "{form:?}");
        }
        assert_eq!(TaskIds::JobOnly.unit_id("12.server", 5), "12.server");
        assert_eq!(
            TaskIds::JobOnly.split_id("12.server"),
            Some(("12.server", 0))
        );
        assert_eq!(TaskIds::Joined('.').split_id("12.x"), None);
        assert_eq!(TaskIds::Bracketed.split_id("12[3"), None);
    }

    #[test]
    fn submit_plans_put_queue_then_extra_then_script() {
        let extra = vec!["--mine".to_owned()];
        let req = SubmitRequest {
            tag: "t",
            key: "k",
            tasks: 1,
            queue: Some("q"),
            extra: &extra,
            script: "#!/bin/sh\n",
            temp_dir: Path::new("/tmp/x"),
            keep_dir: Path::new("/tmp/y"),
        };
        let file =
            script_file_plan(&req, vec!["-a".into()], QueueOption::Flag("-q")).expect("a plan");
        assert_eq!(file.args, ["-a", "-q", "q", "--mine", "/tmp/x/k.sh"]);
        assert_eq!(
            file.temp_files,
            [("/tmp/x/k.sh".into(), req.script.to_owned())]
        );
        let stdin = script_stdin_plan(&req, vec![], QueueOption::Joined("--queue="));
        assert_eq!(stdin.args, ["--queue=q", "--mine"]);
        assert_eq!(stdin.stdin.as_deref(), Some(req.script));
        assert!(stdin.temp_files.is_empty());
    }

    #[test]
    fn submitted_ids_or_what_came_instead() {
        assert_eq!(first_line("\n  \n 12 \n13"), Some("12"));
        assert_eq!(
            submitted_id(Some("12"), "x answer", "an id", "12"),
            Ok("12".into())
        );
        let e = submitted_id(None, "x answer", "an id", "oops\n").expect_err("no id");
        assert_eq!(
            e.to_string(),
            "cannot read the x answer: expected an id, got `oops`"
        );
    }
}
