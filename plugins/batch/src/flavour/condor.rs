//! HTCondor: `condor_submit` of one cluster of N procs, one `condor_q -nobatch` for the
//! home's jobs (selected by a job attribute), `condor_history` for jobs that have left
//! the queue, `condor_rm`.
//!
//! HTCondor cannot be installed here: the parsers are tested on recorded output from
//! Nextflow's test suite and an OSG tutorial (see `tests/fixtures/condor/SOURCE.md`).
//! Jobs run from a shared file system (`should_transfer_files = NO`); the wrapper is the
//! executable's argument, kept in the home until it is old (HTCondor reads it when a job
//! starts, not when it is submitted).

use super::{
    ArrayRule, EndKind, Flavour, History, KillAnswer, Native, ParseError, Phase, Row, Said,
    StatusRequest, SubmitPlan, SubmitRequest, TaskIds, excerpt, ids_as_args, is_number, path_arg,
    submitted_id,
};

pub(crate) static FLAVOUR: Flavour = Flavour {
    name: "condor",
    title: "HTCondor",
    submit_command: "condor_submit",
    status_command: "condor_q",
    kill_command: "condor_rm",
    array: Some(ArrayRule {
        first_index: 0,
        max_tasks: 10_000,
    }),
    // The wrapper is run as `/bin/sh WRAPPER $(Process) $(Cluster).$(Process)`.
    index_expr: "${1-}",
    id_expr: "${2-}",
    submit_plan,
    parse_submit,
    task_ids: TaskIds::Joined('.'),
    delete_failed: false,
    status_args,
    parse_status,
    status_is_empty: super::never_empty,
    map_state,
    kill_args: ids_as_args,
    kill_answer: KILL_ANSWER,
    history: Some(History {
        command: "condor_history",
        args: ids_as_args,
        parse: parse_history,
    }),
};

/// A word of a submit description's `arguments = "..."` (new syntax): single quotes
/// group, and quotes inside are doubled.
fn condor_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "''").replace('"', "\"\""))
}

fn submit_plan(req: &SubmitRequest<'_>) -> Result<SubmitPlan, String> {
    if req.queue.is_some() {
        return Err(
            "HTCondor has no queues: give submit description lines in `extra_options` instead"
                .to_owned(),
        );
    }
    let script = req.keep_dir.join(format!("{}.sh", req.key));
    let description = req.temp_dir.join(format!("{}.sub", req.key));
    let script_word = condor_word(&path_arg(&script)?);
    let mut lines = vec![
        "universe = vanilla".to_owned(),
        "executable = /bin/sh".to_owned(),
        format!("arguments = \"{script_word} $(Process) $(Cluster).$(Process)\""),
        "transfer_executable = false".to_owned(),
        "should_transfer_files = NO".to_owned(),
        "getenv = true".to_owned(),
        "output = /dev/null".to_owned(),
        "error = /dev/null".to_owned(),
        format!("batch_name = {}", req.tag),
        format!("+GangaHome = \"{}\"", req.tag),
        format!("+GangaChunk = \"{}\"", req.key),
    ];
    for line in req.extra {
        if line.contains('\n') || line.trim_start().to_ascii_lowercase().starts_with("queue") {
            return Err(format!(
                "extra option `{}` is not one submit description line (and `queue` is ours)",
                line.escape_debug()
            ));
        }
        lines.push(line.clone());
    }
    lines.push(format!("queue {}", req.tasks.max(1)));
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(SubmitPlan {
        args: vec!["-terse".to_owned(), path_arg(&description)?],
        stdin: None,
        temp_files: vec![(description, text)],
        kept_files: vec![(script, req.script.to_owned())],
    })
}

/// `condor_submit -terse` prints `<cluster>.<first proc> - <cluster>.<last proc>`.
fn parse_submit(stdout: &str) -> Result<String, ParseError> {
    let first = stdout.split_whitespace().next().unwrap_or_default();
    let cluster = match first.split_once('.') {
        Some((cluster, proc_)) if is_number(cluster) && is_number(proc_) => Some(cluster),
        _ => None,
    };
    submitted_id(
        cluster,
        "condor_submit answer",
        "`<cluster>.<proc> - <cluster>.<proc>`",
        stdout,
    )
}

fn status_args(req: &StatusRequest<'_>) -> Vec<String> {
    vec![
        "-nobatch".to_owned(),
        "-constraint".to_owned(),
        format!("GangaHome =?= \"{}\"", req.tag),
    ]
}

fn parse_status(text: &str, _req: &StatusRequest<'_>) -> Result<Vec<Row>, ParseError> {
    parse_table(text, "condor_q output")
}

fn parse_history(text: &str) -> Result<Vec<Row>, ParseError> {
    parse_table(text, "condor_history output")
}

/// The state letters of the `ST` column.
const STATES: &str = "IRHCXSEU<>";

/// `condor_q -nobatch` and `condor_history`: a `-- Schedd:` or `-- Submitter:` line, a
/// header starting with `ID`, one line per job (`ID OWNER SUBMITTED RUN_TIME ST ...`, the
/// run time sometimes blank) and a summary (`N jobs; ...`, `Total for query: ...`).
fn parse_table(text: &str, what: &'static str) -> Result<Vec<Row>, ParseError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let t = line.trim();
        if t.is_empty()
            || t.starts_with("--")
            || t.starts_with("ID ")
            || t.starts_with("Total for")
            || is_summary(t)
        {
            continue;
        }
        let bad = |m: &str| ParseError::at(what, n, format!("{m}: {}", excerpt(line)));
        let words: Vec<&str> = t.split_whitespace().collect();
        let Some(&id) = words.first() else {
            continue;
        };
        match id.split_once('.') {
            Some((c, p)) if is_number(c) && is_number(p) => {}
            _ => return Err(bad("not a job id")),
        }
        // ID OWNER MM/DD HH:MM [RUN_TIME] ST ...
        let state = words
            .iter()
            .skip(4)
            .take(2)
            .find(|w| w.len() == 1 && STATES.contains(**w))
            .ok_or_else(|| bad("no state letter after the submit time"))?;
        rows.push(Row {
            id: id.to_owned(),
            state: (*state).to_owned(),
            ..Row::default()
        });
    }
    Ok(rows)
}

/// `4 jobs; 0 completed, 0 removed, 3 idle, 1 running, 0 held, 0 suspended`
fn is_summary(line: &str) -> bool {
    line.split_once(" jobs;")
        .or_else(|| line.split_once(" job;"))
        .is_some_and(|(n, _)| is_number(n.trim()))
}

fn map_state(row: &Row) -> Native {
    let s = row.state.as_str();
    let (phase, text, reason) = match s {
        "I" | "U" => (Phase::Queued, "I (idle)", None),
        "H" => (
            Phase::Queued,
            "H (held)",
            Some("held: it does not run until released (condor_release) or removed".to_owned()),
        ),
        "R" => (Phase::Running, "R (running)", None),
        "S" => (Phase::Running, "S (suspended)", None),
        "<" => (Phase::Running, "< (transferring input)", None),
        ">" => (Phase::Running, "> (transferring output)", None),
        "C" => (Phase::Ended(EndKind::Unspecified), "C (completed)", None),
        "X" => (
            Phase::Ended(EndKind::Killed),
            "X (removed)",
            Some("HTCondor says it was removed".to_owned()),
        ),
        "E" => (
            Phase::Ended(EndKind::Failure),
            "E (submission error)",
            Some("HTCondor: submission error".to_owned()),
        ),
        _ => (
            Phase::Unknown,
            s,
            Some(format!("unknown HTCondor state {s}")),
        ),
    };
    Native::new(phase, text).with_reason(reason)
}

/// `condor_rm` prints `Job 15.3 marked for removal`, or `Job 15.3 not found` for one that
/// has left the queue already.
const KILL_ANSWER: KillAnswer = KillAnswer::new(
    &[
        Said::Anywhere("marked for removal"),
        Said::Anywhere("not found"),
        Said::Anywhere("already"),
        Said::AtStart("couldn't find/remove all jobs"),
    ],
    |line, id| line.split_whitespace().any(|w| w == id),
);

#[cfg(test)]
mod tests {
    use super::super::testing::{KillRead, fixture, kill_answers_read, listing};
    use super::*;

    const REQ: StatusRequest<'static> = listing("ganga-x");

    #[test]
    fn a_queue_listing() {
        let rows = parse_status(&fixture("condor/condor_q-nobatch.txt"), &REQ).expect("parses");
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.id.as_str(), map_state(r).phase))
            .collect();
        assert_eq!(
            got,
            [
                ("20.0", Phase::Running),
                ("21.0", Phase::Queued),
                ("22.0", Phase::Ended(EndKind::Unspecified)),
                ("23.0", Phase::Ended(EndKind::Failure)),
                ("24.0", Phase::Queued),
            ]
        );
        assert_eq!(map_state(&rows[4]).text, "H (held)");
        let other = parse_status(&fixture("condor/condor_q-submitter.txt"), &REQ).expect("parses");
        assert_eq!(other.len(), 1);
        assert_eq!(
            parse_status(&fixture("condor/condor_q-empty.txt"), &REQ),
            Ok(vec![])
        );
    }

    #[test]
    fn the_history() {
        let rows = parse_history(&fixture("condor/condor_history.txt")).expect("parses");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "823.0");
        assert_eq!(
            map_state(&rows[0]).phase,
            Phase::Ended(EndKind::Unspecified)
        );
        // A blank run time, and a removed job.
        let rows = parse_history(
            " ID     OWNER          SUBMITTED   RUN_TIME     ST COMPLETED   CMD\n\
             1.0     ubuntu         11/20 13:33              X         ???  /bin/echo\n",
        )
        .expect("parses");
        assert_eq!(map_state(&rows[0]).phase, Phase::Ended(EndKind::Killed));
        let history = FLAVOUR.history.expect("HTCondor has a history");
        assert_eq!(history.command, "condor_history");
        assert_eq!((history.args)(&["1.0", "1.1"]), ["1.0", "1.1"]);
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "Error: can't find address of local schedd",
            "20.0 submit 4/10 17:11 0+00:00:14",
            "x.0 submit 4/10 17:11 0+00:00:14 R 0 0.0 job.sh",
            "20.0 submit 4/10 17:11 0+00:00:14 Q 0 0.0 job.sh",
        ] {
            assert!(parse_status(text, &REQ).is_err(), "{text}");
        }
    }

    #[test]
    fn submit_plan_and_answers() {
        assert_eq!(
            parse_submit(&fixture("condor/condor_submit-terse.txt")),
            Ok("15".into())
        );
        assert!(parse_submit("ERROR: on Line 2 of submit file:").is_err());
        assert_eq!(FLAVOUR.unit_id("15", 0), "15.0");
        let dir = std::path::Path::new("/h/batch");
        let extra = vec!["request_memory = 2GB".to_owned()];
        let req = SubmitRequest {
            tag: "ganga-x",
            key: "k1",
            tasks: 3,
            queue: None,
            extra: &extra,
            script: "#!/bin/sh\n",
            temp_dir: dir,
            keep_dir: std::path::Path::new("/h/it's here"),
        };
        let plan = submit_plan(&req).expect("a plan");
        let text = &plan.temp_files[0].1;
        assert!(
            text.contains("arguments = \"'/h/it''s here/k1.sh' $(Process) $(Cluster).$(Process)\""),
            "{text}"
        );
        assert!(text.contains("+GangaHome = \"ganga-x\""));
        assert!(text.contains("request_memory = 2GB\nqueue 3\n"));
        assert_eq!(
            plan.kept_files[0].0,
            std::path::Path::new("/h/it's here/k1.sh")
        );
        assert!(
            submit_plan(&SubmitRequest {
                queue: Some("q"),
                ..req.clone()
            })
            .is_err()
        );
        let bad = vec!["queue 5".to_owned()];
        assert!(submit_plan(&SubmitRequest { extra: &bad, ..req }).is_err());
    }

    #[test]
    fn kill_answers() {
        let not_found =
            "Job 15.1 not found\nCouldn't find/remove all jobs matching your constraint";
        kill_answers_read(
            &FLAVOUR,
            &[
                (0, "Job 15.0 marked for removal", &["15.0"], KillRead::All),
                (1, not_found, &["15.1"], KillRead::All),
                (
                    1,
                    "Job 15.2 is not yours: permission denied",
                    &["15.2"],
                    KillRead::AllBut("15.2"),
                ),
                (
                    1,
                    "Can't find address for schedd",
                    &["15.2"],
                    KillRead::Failed,
                ),
            ],
        );
    }
}
