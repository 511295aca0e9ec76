//! (Son of) Grid Engine: `qsub -t`, one `qstat -g d -xml` for the user's jobs, `qdel`,
//! and the accounting file for jobs that have left `qstat`.
//!
//! Facts (SGE 8.1.9 on the project's own single-node cell): `qsub -terse -t 1-N` answers
//! `<id>.1-N:1`; `qstat` takes no list of ids, shows pending tasks collapsed unless `-g d`
//! is given, and cuts names to 10 characters except in `-xml`; a job that cannot start
//! stays in `Eqw` until deleted; `qdel` of an unknown id answers `denied: job "N" does not
//! exist` with exit code 1 and still deletes the others; exit codes are only in the
//! accounting file (`:`-separated, written when a job ends).
//!
//! Every job of a home is named `<tag>.<chunk key>` (`qstat` cannot filter by name: the
//! listing is filtered here), which also lets a cut-off submission be found by its key.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{
    ArrayRule, EndKind, Flavour, KillAnswer, MAX_EXPANDED_TASKS, Native, ParseError, Phase,
    QueueOption, Row, Said, SchedulerExit, StatusRequest, SubmitPlan, SubmitRequest, TaskIds,
    excerpt, expand_range, first_line, is_number, script_file_plan, submitted_id,
};

pub(crate) static FLAVOUR: Flavour = Flavour {
    name: "sge",
    title: "Grid Engine",
    submit_command: "qsub",
    status_command: "qstat",
    kill_command: "qdel",
    array: Some(ArrayRule {
        first_index: 1,
        // max_aj_tasks defaults to 75000; chunks stay far below.
        max_tasks: 75_000,
    }),
    index_expr: "${SGE_TASK_ID-}",
    id_expr: "${JOB_ID-}.${SGE_TASK_ID-}",
    submit_plan,
    parse_submit,
    task_ids: TASK_IDS,
    delete_failed: true,
    status_args,
    parse_status,
    status_is_empty: super::never_empty,
    map_state,
    kill_args: super::ids_as_args,
    kill_answer: KILL_ANSWER,
    history: None,
};

const TASK_IDS: TaskIds = TaskIds::Joined('.');

fn submit_plan(req: &SubmitRequest<'_>) -> Result<SubmitPlan, String> {
    let own = vec![
        "-terse".to_owned(),
        "-N".to_owned(),
        format!("{}.{}", req.tag, req.key),
        "-t".to_owned(),
        format!("1-{}", req.tasks.max(1)),
        "-o".to_owned(),
        "/dev/null".to_owned(),
        "-e".to_owned(),
        "/dev/null".to_owned(),
        // The wrapper is a POSIX shell script, whatever the queue's shell_start_mode.
        "-S".to_owned(),
        "/bin/sh".to_owned(),
        // Grid Engine does not pass the submitting environment on by default.
        "-V".to_owned(),
    ];
    script_file_plan(req, own, QueueOption::Flag("-q"))
}

/// `qsub -terse` prints `<id>`, or `<id>.<first>-<last>:<step>` for an array.
fn parse_submit(stdout: &str) -> Result<String, ParseError> {
    let id = first_line(stdout)
        .map(|l| l.split('.').next().unwrap_or_default())
        .filter(|id| is_number(id));
    submitted_id(id, "qsub answer", "a job id", stdout)
}

fn status_args(req: &StatusRequest<'_>) -> Vec<String> {
    vec![
        "-u".to_owned(),
        req.user.to_owned(),
        "-g".to_owned(),
        "d".to_owned(),
        "-xml".to_owned(),
    ]
}

/// One `<job_list>` element of `qstat -xml`.
#[derive(Default)]
struct Entry {
    number: Option<String>,
    name: Option<String>,
    state: Option<String>,
    queue: Option<String>,
    tasks: Option<String>,
}

fn parse_status(text: &str, req: &StatusRequest<'_>) -> Result<Vec<Row>, ParseError> {
    const WHAT: &str = "qstat -xml output";
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut rows = Vec::new();
    let mut entry: Option<Entry> = None;
    let mut field: Option<String> = None;
    let mut depth = 0usize;
    let mut saw_root = false;
    let own = format!("{}.", req.tag);
    loop {
        let event = reader.read_event();
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let at = |m: String| {
            let line = text.get(..pos).map_or(0, |s| s.matches('\n').count()) + 1;
            ParseError::at(WHAT, line, m)
        };
        let event = event.map_err(|e| at(e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                depth += 1;
                if depth == 1 {
                    if name != "job_info" {
                        return Err(at(format!("the root element is <{name}>, not <job_info>")));
                    }
                    saw_root = true;
                } else if name == "job_list" {
                    if entry.is_some() {
                        return Err(at("nested <job_list>".to_owned()));
                    }
                    entry = Some(Entry::default());
                } else if entry.is_some() {
                    field = Some(name);
                }
            }
            Event::Text(t) => {
                if let (Some(e), Some(f)) = (entry.as_mut(), field.as_deref()) {
                    let value = t.xml10_content().trim().to_owned();
                    match f {
                        "JB_job_number" => e.number = Some(value),
                        "JB_name" => e.name = Some(value),
                        "state" => e.state = Some(value),
                        "queue_name" => e.queue = Some(value),
                        "tasks" => e.tasks = Some(value),
                        _ => {}
                    }
                }
            }
            Event::GeneralRef(r) => {
                // An entity in a name (`&amp;`): keep it out of our tag test by marking it.
                if let (Some(e), Some("JB_name")) = (entry.as_mut(), field.as_deref()) {
                    let mut name = e.name.take().unwrap_or_default();
                    name.push('&');
                    name.push_str(&r);
                    e.name = Some(name);
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if e.name().as_ref() == "job_list" {
                    let done = entry
                        .take()
                        .ok_or_else(|| at("</job_list> without <job_list>".into()))?;
                    rows.extend(rows_of(done, &own).map_err(at)?);
                }
                field = None;
            }
            Event::Empty(e) => {
                if e.name().as_ref() == "job_list" {
                    return Err(at("an empty <job_list/>".to_owned()));
                }
            }
            Event::Eof => break,
            Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
    }
    if !saw_root {
        return Err(ParseError::new(
            WHAT,
            format!("no <job_info> element in {}", excerpt(text)),
        ));
    }
    if depth != 0 || entry.is_some() {
        return Err(ParseError::new(WHAT, "the XML ends early"));
    }
    Ok(rows)
}

/// The rows of one `<job_list>`, if its name is one of this home's (`<tag>.<key>`).
fn rows_of(e: Entry, own: &str) -> Result<Vec<Row>, String> {
    let number = e.number.ok_or("a <job_list> without <JB_job_number>")?;
    if !is_number(&number) {
        return Err(format!("`{number}` is not a job number"));
    }
    let state = e
        .state
        .ok_or_else(|| format!("job {number} has no <state>"))?;
    if state.is_empty() || !state.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "job {number}: `{state}` is not a Grid Engine state"
        ));
    }
    let Some(key) = e.name.as_deref().and_then(|n| n.strip_prefix(own)) else {
        return Ok(Vec::new());
    };
    let host = e
        .queue
        .as_deref()
        .and_then(|q| q.split_once('@'))
        .map(|(_, h)| h.to_owned())
        .filter(|h| !h.is_empty());
    let tasks = match e.tasks.as_deref() {
        None | Some("") => vec![1],
        Some(t) => expand_range(t, MAX_EXPANDED_TASKS).map_err(|m| format!("job {number}: {m}"))?,
    };
    Ok(tasks
        .into_iter()
        .map(|t| Row {
            id: TASK_IDS.unit_id(&number, t),
            state: state.clone(),
            reason: None,
            exit: None,
            host: host.clone(),
            key: Some(key.to_owned()),
        })
        .collect())
}

/// The state of a row that comes from the accounting file, not from `qstat`.
pub(crate) const ACCOUNTING_STATE: &str = "finished";

fn map_state(row: &Row) -> Native {
    let s = row.state.as_str();
    if s == ACCOUNTING_STATE {
        return map_accounting(row);
    }
    let has = |c: char| s.contains(c);
    if has('E') {
        return Native::new(Phase::Ended(EndKind::Failure), s).with_reason(Some(format!(
            "Grid Engine could not start it (state {s}; `qstat -j` tells why)"
        )));
    }
    let phase = if has('r') || has('t') || has('s') || has('S') || has('T') {
        Phase::Running
    } else if has('q') || has('w') || has('h') || has('d') {
        Phase::Queued
    } else {
        Phase::Unknown
    };
    let reason = (phase == Phase::Unknown).then(|| format!("unknown Grid Engine state {s}"));
    Native::new(phase, s).with_reason(reason)
}

/// `failed` 0 means the job ran, and `exit_status` is its exit code; 100 is a job killed
/// (`qdel`, or a signal); others are failures to start (26: output file, 28: working
/// directory) or limits (37).
fn map_accounting(row: &Row) -> Native {
    let exit = row.exit.unwrap_or_default();
    let failed = exit.failed.unwrap_or(0);
    let code = exit.code;
    let text = format!(
        "finished (failed {failed}, exit status {})",
        code.unwrap_or(-1)
    );
    match (failed, code) {
        (0, Some(0)) => Native::new(Phase::Ended(EndKind::Success), text).with_exit_code(Some(0)),
        (0, Some(c)) => Native::new(Phase::Ended(EndKind::Failure), text.clone())
            .with_exit_code(Some(c))
            .with_reason(Some(format!("Grid Engine accounting: exit status {c}"))),
        (100, _) => Native::new(Phase::Ended(EndKind::Killed), text).with_reason(Some(
            "Grid Engine accounting: killed (failed 100)".to_owned(),
        )),
        (f, _) => Native::new(Phase::Ended(EndKind::Failure), text)
            .with_reason(Some(format!("Grid Engine accounting: failed {f}"))),
    }
}

/// One line of the accounting file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountingRecord {
    pub(crate) job_name: String,
    /// The unit id, as [`TASK_IDS`] makes it (a job without tasks is task 1).
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) failed: i32,
    pub(crate) exit_status: i32,
}

impl AccountingRecord {
    /// As a listing row, for [`map_state`].
    pub(crate) fn to_row(&self) -> Row {
        Row {
            id: self.id.clone(),
            state: ACCOUNTING_STATE.to_owned(),
            reason: None,
            exit: Some(SchedulerExit {
                code: Some(self.exit_status),
                signal: None,
                failed: Some(self.failed),
            }),
            host: Some(self.host.clone()).filter(|h| !h.is_empty()),
            key: None,
        }
    }
}

/// Reads one line of the accounting file: `None` for comments and blank lines.
/// Fields (1-based): 2 host, 5 job name, 6 job number, 12 failed, 13 exit status, 36 task
/// number (0 when the job is not an array).
pub(crate) fn parse_accounting_line(line: &str) -> Result<Option<AccountingRecord>, ParseError> {
    const WHAT: &str = "Grid Engine accounting line";
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 36 {
        return Err(ParseError::new(
            WHAT,
            format!(
                "{} fields, expected at least 36, in {}",
                fields.len(),
                excerpt(line)
            ),
        ));
    }
    // At least 36 fields (checked above): every index used below exists.
    let int = |i: usize| -> Result<i64, ParseError> {
        fields[i].trim().parse().map_err(|_| {
            ParseError::new(
                WHAT,
                format!("field {} is `{}`, not a number", i + 1, fields[i]),
            )
        })
    };
    let number = int(5)?;
    let task = int(35)?;
    let small = |v: i64, i: usize| {
        i32::try_from(v)
            .map_err(|_| ParseError::new(WHAT, format!("field {} is out of range", i + 1)))
    };
    if number < 0 || task < 0 {
        return Err(ParseError::new(WHAT, "a negative job or task number"));
    }
    Ok(Some(AccountingRecord {
        job_name: fields[4].to_owned(),
        id: TASK_IDS.unit_id(
            &number.to_string(),
            u32::try_from(task.max(1)).unwrap_or(u32::MAX),
        ),
        host: fields[1].to_owned(),
        failed: small(int(11)?, 11)?,
        exit_status: small(int(12)?, 12)?,
    }))
}

/// `qdel` deletes what it can and says `denied: job "N" does not exist` (exit code 1) for
/// the rest; other `denied` lines (another user's job) fail those ids, naming the job or
/// the task in quotes.
const KILL_ANSWER: KillAnswer = KillAnswer {
    refusals: Some(&[Said::AtStart("denied")]),
    ..KillAnswer::new(
        &[
            Said::Anywhere("has deleted"),
            Said::Anywhere("for deletion"),
            Said::Anywhere("does not exist"),
        ],
        |line, id| {
            let base = id.split('.').next().unwrap_or(id);
            line.contains(&format!("\"{id}\"")) || line.contains(&format!("\"{base}\""))
        },
    )
};

#[cfg(test)]
mod tests {
    use super::super::testing::{KillRead, fixture, kill_answers_read, listing, listing_like};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn running_array_tasks() {
        let rows = parse_status(
            &fixture("sge/qstat-array-running.xml"),
            &listing("ganga-rec2"),
        )
        .expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["7.1", "7.2", "6.1", "6.2", "6.3"]);
        assert_eq!(map_state(&rows[0]).phase, Phase::Running);
        assert_eq!(rows[0].host.as_deref(), Some("vm"));
        assert_eq!(rows[0].key.as_deref(), Some("kB"));
        let held = map_state(&rows[2]);
        assert_eq!((held.phase, held.text.as_str()), (Phase::Queued, "hqw"));
        assert!(
            parse_status(
                &fixture("sge/qstat-array-running.xml"),
                &listing("ganga-other")
            )
            .expect("parses")
            .is_empty()
        );
    }

    #[test]
    fn error_state_and_other_names() {
        let rows = parse_status(&fixture("sge/qstat-error-held.xml"), &listing("ganga-rec3"))
            .expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        // `other-job` is not this home's.
        assert_eq!(ids, ["12.1", "9.1", "11.1", "11.2", "11.3", "11.4"]);
        let error = map_state(&rows[1]);
        assert_eq!(error.phase, Phase::Ended(EndKind::Failure));
        assert_eq!(error.text, "Eqw");
        assert!(error.reason.is_some());
    }

    #[test]
    fn collapsed_tasks_are_expanded() {
        let rows = parse_status(&fixture("sge/qstat-collapsed.xml"), &listing("ganga-rec3"))
            .expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["12.1", "9.1", "11.1", "11.2", "11.3", "11.4"]);
    }

    #[test]
    fn an_empty_queue() {
        assert_eq!(
            parse_status(&fixture("sge/qstat-empty.xml"), &listing("ganga-x")),
            Ok(vec![])
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "",
            "error: commlib error: got select error (Connection refused)",
            "<job_info><queue_info><job_list><JB_job_number>1</JB_job_number>",
            "<other/>",
            "<job_info><job_list><JB_job_number>x</JB_job_number><state>r</state></job_list></job_info>",
            "<job_info><job_list><JB_job_number>1</JB_job_number><JB_name>t.k</JB_name><state>r</state><tasks>1-99999999</tasks></job_list></job_info>",
            "<job_info><job_list><JB_job_number>1</JB_job_number></job_list></job_info>",
            "<job_info><job_list></job_info>",
        ] {
            let e = parse_status(text, &listing("t")).expect_err(text);
            assert!(
                e.to_string()
                    .starts_with("cannot read the qstat -xml output"),
                "{e}"
            );
        }
    }

    #[test]
    fn states_map() {
        let row = |s: &str| Row {
            id: "1.1".into(),
            state: s.into(),
            ..Row::default()
        };
        for (s, phase) in [
            ("qw", Phase::Queued),
            ("hqw", Phase::Queued),
            ("Rq", Phase::Queued),
            ("r", Phase::Running),
            ("t", Phase::Running),
            ("Rr", Phase::Running),
            ("dr", Phase::Running),
            ("s", Phase::Running),
            ("Eqw", Phase::Ended(EndKind::Failure)),
            ("z", Phase::Unknown),
        ] {
            assert_eq!(map_state(&row(s)).phase, phase, "{s}");
        }
    }

    #[test]
    fn the_accounting_file() {
        let records: Vec<AccountingRecord> = fixture("sge/accounting")
            .lines()
            .filter_map(|l| parse_accounting_line(l).expect("every line parses"))
            .collect();
        assert_eq!(records.len(), 10);
        let find = |id: &str| {
            records
                .iter()
                .find(|r| r.id == id)
                .map(|r| map_state(&r.to_row()))
                .expect("recorded")
        };
        // A plain job that exited 0, one that exited 3, array tasks, a job that could not
        // write its output file (failed 26) and deleted running tasks (failed 100).
        assert_eq!(find("1.1").phase, Phase::Ended(EndKind::Success));
        let three = find("8.1");
        assert_eq!(
            (three.phase, three.exit_code),
            (Phase::Ended(EndKind::Failure), Some(3))
        );
        assert_eq!(find("2.5").phase, Phase::Ended(EndKind::Success));
        assert_eq!(find("4.1").phase, Phase::Ended(EndKind::Failure));
        assert_eq!(find("7.1").phase, Phase::Ended(EndKind::Killed));
        assert_eq!(records[0].job_name, "ganga-t1.k1");
        assert!(parse_accounting_line("a:b:c").is_err());
        assert!(parse_accounting_line(&"x:".repeat(40)).is_err());
    }

    #[test]
    fn submit_answers() {
        assert_eq!(parse_submit(&fixture("sge/qsub-array.txt")), Ok("6".into()));
        assert_eq!(parse_submit("12\n"), Ok("12".into()));
        assert!(parse_submit("Unable to run job: Job was rejected").is_err());
        assert_eq!(FLAVOUR.unit_id("6", 2), "6.2");
    }

    #[test]
    fn kill_answers() {
        let not_owner = "denied: \"alice\" is not owner of job \"5\"";
        kill_answers_read(
            &FLAVOUR,
            &[
                (
                    1,
                    &fixture("sge/qdel-mixed.txt"),
                    &["6.2", "7.1", "99999.1"],
                    KillRead::All,
                ),
                (1, not_owner, &["5.1", "6.1"], KillRead::AllBut("5.1")),
                (
                    1,
                    "error: commlib error: got select error (Connection refused)",
                    &["5.1"],
                    KillRead::Failed,
                ),
            ],
        );
    }

    proptest! {
        #[test]
        fn accounting_lines_never_panic(text in listing_like(
            fixture("sge/accounting").lines().map(str::to_owned).collect()
        )) {
            for line in text.lines() {
                if let Ok(Some(r)) = parse_accounting_line(line) {
                    let _ = map_state(&r.to_row());
                }
            }
        }
    }
}
