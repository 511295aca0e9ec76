//! IBM Spectrum LSF (and OpenLava): `bsub` of a job array `name[1-N]` with the script on
//! standard input, one `bjobs -a -w -J <tag>` for the home, `bkill`.
//!
//! LSF cannot be installed here: the parsers are tested on recorded output from Nextflow's
//! test suite (see `tests/fixtures/lsf/SOURCE.md`). `bjobs -w` prints one line per job or
//! array element: `JOBID USER STAT QUEUE FROM_HOST EXEC_HOST JOB_NAME SUBMIT_TIME`, where
//! EXEC_HOST is empty for pending jobs, the name may hold spaces and an array element's
//! name ends in `[index]`.

use super::{
    ArrayRule, CommandOutput, EndKind, Flavour, KillAnswer, Native, ParseError, Phase, QueueOption,
    Row, Said, StatusRequest, SubmitPlan, SubmitRequest, TaskIds, excerpt, is_number,
    script_stdin_plan, submitted_id,
};

pub(crate) static FLAVOUR: Flavour = Flavour {
    name: "lsf",
    title: "LSF",
    submit_command: "bsub",
    status_command: "bjobs",
    kill_command: "bkill",
    array: Some(ArrayRule {
        first_index: 1,
        // MAX_JOB_ARRAY_SIZE defaults to 1000.
        max_tasks: 1000,
    }),
    index_expr: "${LSB_JOBINDEX-}",
    id_expr: "${LSB_JOBID-}[${LSB_JOBINDEX-}]",
    submit_plan,
    parse_submit,
    task_ids: TaskIds::Bracketed,
    delete_failed: false,
    status_args,
    parse_status,
    status_is_empty,
    map_state,
    kill_args: super::ids_as_args,
    kill_answer: KILL_ANSWER,
    history: None,
};

fn submit_plan(req: &SubmitRequest<'_>) -> Result<SubmitPlan, String> {
    let own = vec![
        "-J".to_owned(),
        format!("{}[1-{}]", req.tag, req.tasks.max(1)),
        "-o".to_owned(),
        "/dev/null".to_owned(),
        "-e".to_owned(),
        "/dev/null".to_owned(),
    ];
    // `bsub < script` spools the script; `bsub script` would run it from where it lies.
    Ok(script_stdin_plan(req, own, QueueOption::Flag("-q")))
}

/// `Job <12345> is submitted to queue <normal>.`
fn parse_submit(stdout: &str) -> Result<String, ParseError> {
    let id = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Job <"))
        .and_then(|rest| rest.split_once('>'))
        .map(|(id, _)| id)
        .filter(|id| is_number(id));
    submitted_id(id, "bsub answer", "`Job <id> is submitted ...`", stdout)
}

fn status_args(req: &StatusRequest<'_>) -> Vec<String> {
    vec![
        "-a".to_owned(),
        "-w".to_owned(),
        "-J".to_owned(),
        req.tag.to_owned(),
    ]
}

/// `bjobs` exits 255 with `No job found` (or `No unfinished job found`, `No matching job
/// found`) when nothing matches.
fn status_is_empty(out: &CommandOutput) -> bool {
    out.stdout.trim().is_empty() && out.stderr.contains("job found")
}

const STATES: [&str; 11] = [
    "PEND", "PROV", "PSUSP", "WAIT", "RUN", "USUSP", "SSUSP", "DONE", "EXIT", "UNKWN", "ZOMBI",
];

fn parse_status(text: &str, _req: &StatusRequest<'_>) -> Result<Vec<Row>, ParseError> {
    const WHAT: &str = "bjobs output";
    let mut rows = Vec::new();
    let mut header = false;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || line.starts_with("LSF is processing your request") {
            continue;
        }
        if words.first() == Some(&"JOBID") {
            header = true;
            continue;
        }
        let bad = |m: &str| ParseError::at(WHAT, n, format!("{m}: {}", excerpt(line)));
        if !header {
            return Err(bad("a line before the JOBID header"));
        }
        // JOBID USER STAT QUEUE FROM_HOST [EXEC_HOST] JOB_NAME... MON DAY HH:MM
        if words.len() < 9 {
            return Err(bad("too few columns"));
        }
        // At least 9 words (checked above): the indices below exist.
        let (id, state) = (words[0], words[2]);
        if !is_number(id) {
            return Err(bad("not a job id"));
        }
        if !state.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("not an LSF state"));
        }
        // The name is the last word before the submit time; an array element's ends in
        // `[index]`.
        let name = words[words.len() - 4];
        let index = name
            .strip_suffix(']')
            .and_then(|n| n.rsplit_once('['))
            .map(|(_, i)| i)
            .filter(|i| is_number(i));
        rows.push(Row {
            id: match index {
                Some(i) => format!("{id}[{i}]"),
                None => id.to_owned(),
            },
            state: state.to_owned(),
            ..Row::default()
        });
    }
    Ok(rows)
}

fn map_state(row: &Row) -> Native {
    let s = row.state.as_str();
    let phase = match s {
        "PEND" | "PROV" | "PSUSP" | "WAIT" => Phase::Queued,
        "RUN" | "USUSP" | "SSUSP" => Phase::Running,
        "DONE" => Phase::Ended(EndKind::Success),
        "EXIT" => Phase::Ended(EndKind::Failure),
        // UNKWN: mbatchd lost contact with the host; ZOMBI: killed while the host was
        // unreachable. Neither says how the job ends.
        _ => Phase::Unknown,
    };
    let reason = match phase {
        Phase::Ended(EndKind::Failure) => {
            Some("LSF says EXIT (a non-zero exit code, or killed)".to_owned())
        }
        Phase::Unknown if STATES.contains(&s) => Some(format!("LSF says {s}: it cannot tell")),
        Phase::Unknown => Some(format!("unknown LSF state {s}")),
        _ => None,
    };
    Native::new(phase, s).with_reason(reason)
}

/// `bkill` prints `Job <12[3]> is being terminated` per job; `Job has already finished`
/// and `No matching job found` mean it ended already.
const KILL_ANSWER: KillAnswer = KillAnswer::new(
    &[
        Said::Anywhere("is being terminated"),
        Said::Anywhere("is being signaled"),
        Said::Anywhere("already finished"),
        Said::Anywhere("no matching job"),
    ],
    |line, id| line.contains(&format!("<{id}>")),
);

#[cfg(test)]
mod tests {
    use super::super::testing::{KillRead, fixture, kill_answers_read, listing};
    use super::*;

    const REQ: StatusRequest<'static> = listing("ganga-x");

    #[test]
    fn a_wide_listing() {
        let rows = parse_status(&fixture("lsf/bjobs-w.txt"), &REQ).expect("parses");
        assert_eq!(rows.len(), 14);
        let state = |id: &str| map_state(rows.iter().find(|r| r.id == id).expect("listed")).phase;
        assert_eq!(state("5085109"), Phase::Running);
        assert_eq!(state("5085604"), Phase::Queued);
        assert_eq!(state("5085611"), Phase::Queued);
        assert_eq!(state("5085107"), Phase::Ended(EndKind::Failure));
        assert_eq!(state("5085607"), Phase::Unknown);
        assert_eq!(state("5085608"), Phase::Unknown);
        assert_eq!(state("5085606"), Phase::Ended(EndKind::Success));
        assert_eq!(state("5085704"), Phase::Running);
    }

    #[test]
    fn extra_headers_are_skipped() {
        let rows = parse_status(&fixture("lsf/bjobs-w-extra-headers.txt"), &REQ).expect("parses");
        assert_eq!(rows.len(), 6);
    }

    #[test]
    fn array_elements_carry_their_index() {
        // The layout of the recorded lines, with an array element's name as bjobs shows it.
        let text = "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n\
                    5085702 pluskal RUN   normal     tak         it-c01b14   ganga-x[3] Oct 31 15:08\n\
                    5085702 pluskal PEND  normal     tak                     ganga-x[4] Oct 31 15:08\n";
        let rows = parse_status(text, &REQ).expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["5085702[3]", "5085702[4]"]);
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "5085702 pluskal RUN normal tak it-c01b14 x Oct 31 15:08",
            "JOBID USER\nnot a job line at all",
            "JOBID USER\nx123 pluskal RUN normal tak it-c01b14 x Oct 31 15:08",
            "JOBID USER\n123 pluskal run normal tak it-c01b14 x Oct 31 15:08",
        ] {
            assert!(parse_status(text, &REQ).is_err(), "{text}");
        }
        assert_eq!(parse_status("", &REQ), Ok(vec![]));
    }

    #[test]
    fn empty_answers() {
        let out = CommandOutput {
            code: Some(255),
            stdout: String::new(),
            stderr: "No job found\n".into(),
        };
        assert!(status_is_empty(&out));
        let down = CommandOutput {
            code: Some(255),
            stdout: String::new(),
            stderr: "LSF daemon (LIM) not responding ... still trying\n".into(),
        };
        assert!(!status_is_empty(&down));
    }

    #[test]
    fn submit_answers() {
        assert_eq!(parse_submit(&fixture("lsf/bsub.txt")), Ok("2329803".into()));
        assert_eq!(
            parse_submit(&fixture("lsf/bsub-queue.txt")),
            Ok("764254593".into())
        );
        assert!(parse_submit("Batch job not submitted. Please address the following").is_err());
        assert_eq!(FLAVOUR.unit_id("12", 3), "12[3]");
    }

    #[test]
    fn kill_answers() {
        kill_answers_read(
            &FLAVOUR,
            &[
                (0, &fixture("lsf/bkill.txt"), &["764254593"], KillRead::All),
                (
                    255,
                    "Job <12[3]>: Job has already finished",
                    &["12[3]"],
                    KillRead::All,
                ),
                (
                    255,
                    "Job <12[3]>: User permission denied",
                    &["12[3]"],
                    KillRead::AllBut("12[3]"),
                ),
                (255, "LSF is down; try later", &["12[3]"], KillRead::Failed),
            ],
        );
    }
}
