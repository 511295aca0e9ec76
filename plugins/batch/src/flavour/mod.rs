//! Flavours: what differs between batch systems, as a small table of commands and
//! parsers per system (PSI/J's granularity). Everything else (the wrapper, the records,
//! deciding a unit's state, chunking, timeouts) is shared.
//!
//! A flavour says how to submit one chunk of units (an array where the system has them),
//! how to read the submit command's answer, how to list every job of one ganga home in
//! one command and read that listing, what each native state means, and how to kill. Its
//! functions are pure: they build argument lists and read text; running the commands is
//! done elsewhere. What most flavours build or read alike (the submit command's tail,
//! the submit answer's error, ids of array tasks, the kill answer) is in `answers.rs`,
//! driven by each flavour's data, so that a flavour's module holds what differs. To add a
//! system, write a module like `slurm.rs` and add its `FLAVOUR` to [`FLAVOURS`].

mod answers;
mod condor;
mod lsf;
mod pbs;
pub(crate) mod sge;
mod slurm;

use std::fmt;
use std::path::{Path, PathBuf};

pub(crate) use answers::{
    KillAnswer, QueueOption, Said, TaskIds, first_line, ids_as_args, path_arg, script_file_plan,
    script_stdin_plan, submitted_id,
};

/// Every flavour this backend knows, by name.
pub(crate) static FLAVOURS: [&Flavour; 5] = [
    &slurm::FLAVOUR,
    &sge::FLAVOUR,
    &pbs::FLAVOUR,
    &lsf::FLAVOUR,
    &condor::FLAVOUR,
];

/// The flavour named `name` (`slurm`, `sge`, ...).
pub(crate) fn by_name(name: &str) -> Option<&'static Flavour> {
    FLAVOURS.iter().copied().find(|f| f.name == name)
}

/// The names of every flavour, for error messages.
pub(crate) fn names() -> String {
    FLAVOURS.map(|f| f.name).join(", ")
}

/// Arguments of a command for some unit ids.
pub(crate) type IdsToArgs = fn(&[&str]) -> Vec<String>;
/// Reads a command's rows.
pub(crate) type ParseRows = fn(&str) -> Result<Vec<Row>, ParseError>;

/// One batch system.
pub(crate) struct Flavour {
    /// Its name in configs, job files and unit ids (`slurm:12_3`).
    pub(crate) name: &'static str,
    /// Its name for people.
    pub(crate) title: &'static str,
    /// The commands it uses, by their usual names. A site may give other paths for them
    /// (`[plugin.batch.commands]`).
    pub(crate) submit_command: &'static str,
    pub(crate) status_command: &'static str,
    pub(crate) kill_command: &'static str,
    /// How the system runs many units as one submission, if it can.
    pub(crate) array: Option<ArrayRule>,
    /// A shell expression that gives, inside the job, the task index that [`ArrayRule`]
    /// numbers (or `0` for a flavour without arrays).
    pub(crate) index_expr: &'static str,
    /// A shell expression that gives, inside the job, the id of this task as
    /// [`Flavour::unit_id`] makes it: recorded by the wrapper, so that a submission cut
    /// off before its id was kept can still be found.
    pub(crate) id_expr: &'static str,
    /// How to hand one chunk over.
    pub(crate) submit_plan: fn(&SubmitRequest<'_>) -> Result<SubmitPlan, String>,
    /// The id the submit command answered (for an array: the array's id).
    pub(crate) parse_submit: fn(&str) -> Result<String, ParseError>,
    /// How it writes the id of one task of a submission ([`Flavour::unit_id`]).
    pub(crate) task_ids: TaskIds,
    /// A job that failed to start stays listed until it is deleted (Grid Engine's `Eqw`):
    /// once it is reported failed, the backend deletes it.
    pub(crate) delete_failed: bool,
    /// The listing of every job of one ganga home: the status command's arguments.
    pub(crate) status_args: fn(&StatusRequest<'_>) -> Vec<String>,
    /// Reads the listing. Lines it cannot understand make it fail: a unit wrongly missing
    /// from a listing would look lost.
    pub(crate) parse_status: fn(&str, &StatusRequest<'_>) -> Result<Vec<Row>, ParseError>,
    /// Whether a status command that failed only says "no jobs" (LSF's `bjobs` exits 255
    /// with `No job found`; Slurm's Torque `qstat` exits 153 when there is no job at all).
    pub(crate) status_is_empty: fn(&CommandOutput) -> bool,
    /// What a listed (or historical) job's native state means.
    pub(crate) map_state: fn(&Row) -> Native,
    /// The kill command's arguments for some unit ids.
    pub(crate) kill_args: IdsToArgs,
    /// How to read the kill command's answer ([`Flavour::kill_outcome`]).
    pub(crate) kill_answer: KillAnswer,
    /// A command that tells about jobs gone from the listing (`condor_history`), asked
    /// only for units that are neither listed nor have an exit record.
    pub(crate) history: Option<History>,
}

impl Flavour {
    /// The id of the unit at task index `index` of the submission with id `base`.
    pub(crate) fn unit_id(&self, base: &str, index: u32) -> String {
        self.task_ids.unit_id(base, index)
    }

    /// The submission's id and the task index of a unit id: [`Flavour::unit_id`] undone.
    pub(crate) fn split_id<'a>(&self, id: &'a str) -> Option<(&'a str, u32)> {
        self.task_ids.split_id(id)
    }

    /// What the kill command's answer says about each of `ids`.
    pub(crate) fn kill_outcome(&self, out: &CommandOutput, ids: &[&str]) -> KillOutcome {
        self.kill_answer.read(self.kill_command, out, ids)
    }
}

/// A command that tells about jobs gone from the listing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct History {
    /// Its usual name (a site may give another path, as for the other commands).
    pub(crate) command: &'static str,
    /// Its arguments for some unit ids.
    pub(crate) args: IdsToArgs,
    /// Reads its answer, as [`Flavour::parse_status`] reads a listing.
    pub(crate) parse: ParseRows,
}

impl fmt::Debug for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// How a flavour runs many units as one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArrayRule {
    /// The task index of the first unit (Slurm counts from 0, Grid Engine from 1).
    pub(crate) first_index: u32,
    /// The most units one submission may carry, whatever the configuration says.
    pub(crate) max_tasks: u32,
}

/// What a flavour needs to hand one chunk over.
#[derive(Debug, Clone)]
pub(crate) struct SubmitRequest<'a> {
    /// The name every job of this ganga home carries (`ganga-<home id>`).
    pub(crate) tag: &'a str,
    /// This chunk's own key, unique within the home.
    pub(crate) key: &'a str,
    /// How many units (tasks) it holds.
    pub(crate) tasks: u32,
    pub(crate) queue: Option<&'a str>,
    /// Options passed to the submit command as they are, before the script.
    pub(crate) extra: &'a [String],
    /// The wrapper script (see `script.rs`).
    pub(crate) script: &'a str,
    /// Where a flavour writes files that are needed only while the command runs.
    pub(crate) temp_dir: &'a Path,
    /// Where a flavour writes files the jobs need while they run (HTCondor's executable).
    pub(crate) keep_dir: &'a Path,
}

/// How to run the submit command for one chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubmitPlan {
    pub(crate) args: Vec<String>,
    /// Text for the command's standard input (LSF's `bsub < script`).
    pub(crate) stdin: Option<String>,
    /// Files to write before the command runs and to remove after it.
    pub(crate) temp_files: Vec<(PathBuf, String)>,
    /// Files to write before the command runs and to keep (executable: mode 0755).
    pub(crate) kept_files: Vec<(PathBuf, String)>,
}

/// What a flavour needs to list the jobs of one ganga home.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusRequest<'a> {
    pub(crate) tag: &'a str,
    /// The user whose jobs to list (`*` when unknown).
    pub(crate) user: &'a str,
    /// PBS: ask for finished jobs too (`qstat -x`: OpenPBS and PBS Pro; Torque's `-x` is
    /// XML instead).
    pub(crate) pbs_history: bool,
}

/// One job (one unit) as a listing shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Row {
    /// The unit's id as [`Flavour::unit_id`] makes it (`12_3`, `45.2`, `7[2]`).
    pub(crate) id: String,
    /// The native state, as shown (`PENDING`, `Eqw`, `R`, `EXIT`).
    pub(crate) state: String,
    /// Why it is in that state, where the system says (`Resources`, `NonZeroExitCode`).
    pub(crate) reason: Option<String>,
    /// How it ended, where the system says.
    pub(crate) exit: Option<SchedulerExit>,
    /// Where it runs or ran.
    pub(crate) host: Option<String>,
    /// The key of the chunk it was submitted with, where the listing shows it.
    pub(crate) key: Option<String>,
}

/// How a job ended, as the batch system tells it (not as our wrapper recorded it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedulerExit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    /// Grid Engine's `failed` (0: ran; 100: killed; 1..=37: could not run or a limit).
    pub(crate) failed: Option<i32>,
}

/// Where a native state puts a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
    Ended(EndKind),
    /// A state this flavour does not know: it changes nothing.
    Unknown,
}

/// How a job ended, by the batch system's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndKind {
    /// It says: exit code 0. Not enough to call a unit succeeded (only our exit record is).
    Success,
    Failure,
    /// Cancelled, deleted, removed.
    Killed,
    /// Ended; the system does not say how.
    Unspecified,
}

/// A native state mapped: the phase, and what to show (the native word is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Native {
    pub(crate) phase: Phase,
    /// `PENDING (Resources)`, `Eqw`, `EXIT`: what the system says, for people.
    pub(crate) text: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) reason: Option<String>,
}

impl Native {
    pub(crate) fn new(phase: Phase, text: impl Into<String>) -> Native {
        Native {
            phase,
            text: text.into(),
            exit_code: None,
            reason: None,
        }
    }

    pub(crate) fn with_reason(mut self, reason: Option<String>) -> Native {
        self.reason = reason;
        self
    }

    pub(crate) fn with_exit_code(mut self, code: Option<i32>) -> Native {
        self.exit_code = code;
        self
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommandOutput {
    /// The exit code; `None` when it was ended by a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl CommandOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr, trimmed and joined, for messages.
    pub(crate) fn text(&self) -> String {
        let (out, err) = (self.stdout.trim(), self.stderr.trim());
        match (out.is_empty(), err.is_empty()) {
            (true, true) => String::new(),
            (false, true) => out.to_owned(),
            (true, false) => err.to_owned(),
            (false, false) => format!("{err}\n{out}"),
        }
    }
}

/// What a kill command's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KillOutcome {
    /// Every id was killed, or had already ended (which is as good: nothing is left to
    /// stop).
    Done,
    /// These ids could not be killed, for these reasons; the others were.
    Some(Vec<(String, String)>),
    /// The command failed as a whole (the system is down, the command is missing).
    Failed(String),
}

/// A listing or answer that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the {what}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub(crate) struct ParseError {
    /// What was read: `squeue output`, `qsub answer`.
    pub(crate) what: &'static str,
    /// The 1-based line where it went wrong.
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, message: impl Into<String>) -> ParseError {
        ParseError {
            what,
            line: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(what: &'static str, line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            what,
            line: Some(line),
            message: message.into(),
        }
    }
}

/// Shows a piece of someone else's text in a message: at most 120 characters, on one
/// line.
pub(crate) fn excerpt(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > 120 {
        let cut: String = one_line.chars().take(117).collect();
        format!("`{cut}...`")
    } else {
        format!("`{one_line}`")
    }
}

/// For flavours whose status command fails only when it fails.
pub(crate) fn never_empty(_: &CommandOutput) -> bool {
    false
}

/// A non-negative decimal number with at most 18 digits (job ids, indices, codes).
pub(crate) fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Expands a task range of the forms `5`, `1-100`, `1-100:2`, `1,3,5-7` into indices,
/// refusing more than `limit` of them (a garbled range must not exhaust memory).
pub(crate) fn expand_range(text: &str, limit: usize) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (span, step) = match part.split_once(':') {
            Some((span, step)) => (span, step),
            None => (part, "1"),
        };
        let step: u32 = step
            .parse()
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| format!("bad step in task range `{text}`"))?;
        let (first, last) = match span.split_once('-') {
            Some((a, b)) => (a, b),
            None => (span, span),
        };
        let first: u32 = first
            .parse()
            .map_err(|_| format!("bad task range `{text}`"))?;
        let last: u32 = last
            .parse()
            .map_err(|_| format!("bad task range `{text}`"))?;
        if last < first {
            return Err(format!("task range `{text}` runs backwards"));
        }
        let count = ((last - first) / step) as usize + 1;
        if out.len() + count > limit {
            return Err(format!("task range `{text}` holds more than {limit} tasks"));
        }
        out.extend((first..=last).step_by(step as usize));
    }
    Ok(out)
}

/// The most tasks a listing line may stand for (a collapsed range).
pub(crate) const MAX_EXPANDED_TASKS: usize = 1_000_000;

#[cfg(test)]
pub(crate) mod testing {
    //! What every flavour's tests share: reading fixtures, fuzzing parsers.

    use std::path::PathBuf;

    use super::{CommandOutput, Flavour, KillOutcome, StatusRequest};

    /// The text of `tests/fixtures/<path>`.
    pub(crate) fn fixture(path: &str) -> String {
        let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path);
        std::fs::read_to_string(&full)
            .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", full.display()))
    }

    /// A listing of the jobs tagged `tag`, of any user.
    pub(crate) const fn listing(tag: &str) -> StatusRequest<'_> {
        StatusRequest {
            tag,
            user: "*",
            pbs_history: false,
        }
    }

    /// What a kill command's answer should be read as, for [`kill_answers_read`].
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum KillRead {
        All,
        /// All but this id, which the whole answer (one line) says could not be killed.
        AllBut(&'static str),
        /// The command failed as a whole.
        Failed,
    }

    /// Checks that `flavour` reads each kill answer (exit code, output, the ids it was
    /// asked to kill) as expected.
    pub(crate) fn kill_answers_read(flavour: &Flavour, answers: &[(i32, &str, &[&str], KillRead)]) {
        for &(code, text, ids, expected) in answers {
            let out = CommandOutput {
                code: Some(code),
                stdout: text.to_owned(),
                stderr: String::new(),
            };
            let read = flavour.kill_outcome(&out, ids);
            let right = match (expected, &read) {
                (KillRead::All, KillOutcome::Done) | (KillRead::Failed, KillOutcome::Failed(_)) => {
                    true
                }
                (KillRead::AllBut(id), KillOutcome::Some(failed)) => {
                    *failed == [(id.to_owned(), text.trim().to_owned())]
                }
                _ => false,
            };
            assert!(
                right,
                "{}: exit code {code}, `{text}`: {read:?}, not {expected:?}",
                flavour.name
            );
        }
    }

    /// Strategy for text that looks a little like a listing: mostly printable, with
    /// separators and newlines, sometimes lines of a real fixture.
    pub(crate) fn listing_like(
        real: Vec<String>,
    ) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let line = prop_oneof![
            "[ -~]{0,80}",
            "[0-9_.|\\[\\] A-Za-z:-]{0,60}",
            proptest::sample::select(real),
        ];
        proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::listing_like;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever follows, a listing that starts with a line no flavour prints is refused
        /// with an error, never read as "no jobs" (which would make every unit look lost).
        #[test]
        fn garbage_is_refused_by_every_flavour(
            first in "zz[ -~]{0,60}",
            rest in proptest::collection::vec("[ -~]{0,60}", 0..5),
        ) {
            let text = std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n");
            let req = StatusRequest { tag: "zz", user: "*", pbs_history: true };
            for f in FLAVOURS {
                prop_assert!((f.parse_status)(&text, &req).is_err(), "{} read {:?}", f.name, text);
                prop_assert!((f.parse_submit)(&text).is_err(), "{} read {:?}", f.name, text);
                if let Some(history) = &f.history {
                    prop_assert!((history.parse)(&text).is_err(), "{} read {:?}", f.name, text);
                }
            }
        }
    }

    /// Per flavour, the fixture that text for [`parsing_never_panics`] is made from, and
    /// the tags its listing is read for (the fixture's own, and another).
    const LISTINGS: [(&str, &str, &[&str]); 5] = [
        ("slurm", "slurm/squeue-mixed.txt", &["ganga-rec1"]),
        ("sge", "sge/qstat-error-held.xml", &["ganga-rec3"]),
        ("pbs", "pbs/qstat-f-pbspro-running.txt", &["script.sh", "t"]),
        ("lsf", "lsf/bjobs-w.txt", &["ganga-x"]),
        ("condor", "condor/condor_q-nobatch.txt", &["ganga-x"]),
    ];

    proptest! {
        // Each case is made from one flavour's fixture and read by every flavour: as many
        // cases per fixture as proptest's default for one test.
        #![proptest_config(ProptestConfig::with_cases(256 * 5))]

        /// No parser panics on text that looks a little like a listing, and every row it
        /// reads has an id and a mapped state.
        #[test]
        fn parsing_never_panics(text in (0..LISTINGS.len()).prop_flat_map(|i| listing_like(
            testing::fixture(LISTINGS[i].1).lines().map(str::to_owned).collect()
        ))) {
            for (name, _, tags) in LISTINGS {
                let f = by_name(name).expect("a flavour of the table");
                let mut read = Vec::new();
                for tag in tags {
                    let req = StatusRequest { tag, user: "*", pbs_history: true };
                    read.extend((f.parse_status)(&text, &req).unwrap_or_default());
                }
                if let Some(history) = &f.history {
                    read.extend((history.parse)(&text).unwrap_or_default());
                }
                for row in &read {
                    prop_assert!(!row.id.is_empty(), "{name}: {row:?}");
                    let _ = (f.map_state)(row);
                }
                let _ = (f.parse_submit)(&text);
            }
        }
    }

    #[test]
    fn every_flavour_has_a_distinct_name() {
        let mut names: Vec<_> = FLAVOURS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FLAVOURS.len());
        for f in FLAVOURS {
            assert!(f.name.bytes().all(|b| b.is_ascii_lowercase()), "{}", f.name);
            assert_eq!(by_name(f.name).map(|g| g.name), Some(f.name));
        }
        assert!(by_name("nosuch").is_none());
    }

    #[test]
    fn every_submit_plan_carries_the_tag_queue_options_and_script() {
        let dir = std::path::Path::new("/h/batch/tmp");
        let extra = vec!["--extra".to_owned()];
        for f in FLAVOURS {
            let queue = (f.name != "condor").then_some("q1");
            let req = SubmitRequest {
                tag: "ganga-ab12",
                key: "kz",
                tasks: 3,
                queue,
                extra: &extra,
                script: "#!/bin/sh\n# the wrapper\n",
                temp_dir: dir,
                keep_dir: dir,
            };
            let plan = (f.submit_plan)(&req).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            let all = plan.args.join(" ")
                + &plan
                    .temp_files
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<String>();
            assert!(all.contains("ganga-ab12"), "{}: {all}", f.name);
            assert!(all.contains("--extra"), "{}: {all}", f.name);
            if let Some(q) = queue {
                assert!(all.contains(q), "{}: {all}", f.name);
            }
            let script_goes = plan.stdin.as_deref() == Some(req.script)
                || plan
                    .temp_files
                    .iter()
                    .chain(&plan.kept_files)
                    .any(|(_, t)| t == req.script);
            assert!(script_goes, "{}: the wrapper is handed over", f.name);
            if let Some(rule) = f.array {
                let last = (rule.first_index + 2).to_string();
                assert!(all.contains(&last), "{}: an array of 3: {all}", f.name);
            }
        }
    }

    #[test]
    fn unit_ids_split_back() {
        for f in FLAVOURS {
            let index = if f.array.is_some() { 7 } else { 0 };
            let id = f.unit_id("123", index);
            assert_eq!(f.split_id(&id), Some(("123", index)), "{}", f.name);
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(expand_range("5", 10), Ok(vec![5]));
        assert_eq!(expand_range("1-4", 10), Ok(vec![1, 2, 3, 4]));
        assert_eq!(expand_range("1-7:3", 10), Ok(vec![1, 4, 7]));
        assert_eq!(expand_range("1,3,5-6", 10), Ok(vec![1, 3, 5, 6]));
        assert!(expand_range("1-100", 10).is_err());
        assert!(expand_range("4-1", 10).is_err());
        assert!(expand_range("1-4:0", 10).is_err());
        assert!(expand_range("x", 10).is_err());
        assert!(expand_range("", 10).is_err());
        assert!(expand_range("0-4294967295", MAX_EXPANDED_TASKS).is_err());
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(" a\nb "), "`a b`");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 122);
    }
}
