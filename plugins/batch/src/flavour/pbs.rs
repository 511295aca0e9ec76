//! PBS (OpenPBS, PBS Pro, Torque): one `qsub` per unit, one `qstat -f` for the user's
//! jobs, `qdel`.
//!
//! Array syntax differs between PBS implementations (`-J` in PBS Pro, `-t` in Torque) and
//! so do the ids of array tasks, so this flavour submits one job per unit. The listing is
//! `qstat -f` (every attribute of every job, in `Job Id:` blocks), with `-x` where it means
//! "finished jobs too" (OpenPBS, PBS Pro); in Torque `-x` means XML, so Torque sites set
//! `pbs_history = false`. Jobs of the home are those whose `Job_Name` is the home's tag.
//!
//! Tested for real through Debian's `slurm-wlm-torque` wrappers (Torque-style `qsub`,
//! `qstat -f`, `qdel` on top of Slurm), and on recorded PBS Pro output.

use super::{
    CommandOutput, EndKind, Flavour, KillAnswer, Native, ParseError, Phase, QueueOption, Row, Said,
    SchedulerExit, StatusRequest, SubmitPlan, SubmitRequest, TaskIds, excerpt, first_line,
    is_number, script_file_plan, submitted_id,
};

pub(crate) static FLAVOUR: Flavour = Flavour {
    name: "pbs",
    title: "PBS",
    submit_command: "qsub",
    status_command: "qstat",
    kill_command: "qdel",
    array: None,
    index_expr: "0",
    id_expr: "${PBS_JOBID:-${SLURM_JOB_ID-}}",
    submit_plan,
    parse_submit,
    // No arrays: a unit's id is its job's id.
    task_ids: TaskIds::JobOnly,
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
        "-N".to_owned(),
        req.tag.to_owned(),
        "-o".to_owned(),
        "/dev/null".to_owned(),
        "-e".to_owned(),
        "/dev/null".to_owned(),
        "-V".to_owned(),
    ];
    script_file_plan(req, own, QueueOption::Flag("-q"))
}

/// `qsub` prints the new job's id: `<number>.<server>` (or just `<number>`).
fn parse_submit(stdout: &str) -> Result<String, ParseError> {
    let id = first_line(stdout).filter(|id| is_job_id(id));
    submitted_id(id, "qsub answer", "a job id", stdout)
}

fn is_job_id(id: &str) -> bool {
    let (number, server) = match id.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (id, None),
    };
    is_number(number)
        && server.is_none_or(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

fn status_args(req: &StatusRequest<'_>) -> Vec<String> {
    let mut args = vec!["-f".to_owned()];
    if req.pbs_history {
        args.push("-x".to_owned());
    }
    args
}

/// Slurm's Torque `qstat` exits 153, printing nothing, when Slurm has no job at all.
fn status_is_empty(out: &CommandOutput) -> bool {
    out.code == Some(153) && out.text().is_empty()
}

/// One `Job Id:` block.
#[derive(Default)]
struct Block {
    id: String,
    attrs: Vec<(String, String)>,
    /// Whether its attributes are indented with a tab (Torque's wrapper) rather than
    /// spaces (PBS Pro, Torque), where a tab starts a continuation line instead.
    tab_indented: Option<bool>,
}

impl Block {
    fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }
}

/// `qstat -f`: `Job Id: <id>`, then one `name = value` line per attribute, indented (four
/// spaces in PBS Pro and Torque, a tab in Slurm's Torque wrapper); a long value goes on in
/// lines indented by a tab.
fn parse_status(text: &str, req: &StatusRequest<'_>) -> Result<Vec<Row>, ParseError> {
    const WHAT: &str = "qstat -f output";
    let mut blocks: Vec<Block> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let bad = |m: &str| ParseError::at(WHAT, n, format!("{m}: {}", excerpt(line)));
        if let Some(id) = line.strip_prefix("Job Id:") {
            let id = id.trim();
            if !is_job_id(id) {
                return Err(bad("not a job id"));
            }
            blocks.push(Block {
                id: id.to_owned(),
                ..Block::default()
            });
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            return Err(bad("text before the first `Job Id:`"));
        };
        let tab = line.starts_with('\t');
        if !tab && !line.starts_with(' ') {
            return Err(bad("expected an indented attribute"));
        }
        let continuation = tab
            && match block.tab_indented {
                None => false,
                Some(false) => true,
                Some(true) => attribute(line).is_none(),
            };
        if continuation {
            if let Some((_, v)) = block.attrs.last_mut() {
                v.push_str(line.trim_start_matches('\t').trim_end());
            }
            continue;
        }
        let (name, value) = attribute(line).ok_or_else(|| bad("expected `name = value`"))?;
        block.tab_indented.get_or_insert(tab);
        block.attrs.push((name.to_owned(), value.to_owned()));
    }
    let mut rows = Vec::new();
    for block in blocks {
        if block.get("Job_Name") != Some(req.tag) {
            continue;
        }
        let state = block
            .get("job_state")
            .ok_or_else(|| ParseError::new(WHAT, format!("job {} has no job_state", block.id)))?;
        if state.is_empty() || !state.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::new(
                WHAT,
                format!("job {}: `{state}` is not a PBS state", block.id),
            ));
        }
        let exit = match block
            .get("Exit_status")
            .or_else(|| block.get("exit_status"))
        {
            None => None,
            Some(v) => Some(exit_of(v.parse().map_err(|_| {
                ParseError::new(
                    WHAT,
                    format!("job {}: `{v}` is not an exit status", block.id),
                )
            })?)),
        };
        let host = block
            .get("exec_host")
            .and_then(|h| h.split(['/', '+']).next())
            .filter(|h| !h.is_empty())
            .map(str::to_owned);
        rows.push(Row {
            id: block.id.clone(),
            state: state.to_owned(),
            reason: block.get("comment").map(str::to_owned),
            exit,
            host,
            key: None,
        });
    }
    Ok(rows)
}

/// `name = value`, where name looks like an attribute (`Resource_List.ncpus`).
fn attribute(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.trim_start().split_once(" =")?;
    let value = value.strip_prefix(' ').unwrap_or(value);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    ok.then_some((name, value))
}

/// PBS exit statuses: >= 0 the job's code, > 256 killed by signal (status - 256),
/// negative: PBS could not run it (JOB_EXEC_* codes).
fn exit_of(status: i64) -> SchedulerExit {
    let small = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    if status > 256 {
        SchedulerExit {
            code: None,
            signal: Some(small(status - 256)),
            failed: None,
        }
    } else if status < 0 {
        SchedulerExit {
            code: None,
            signal: None,
            failed: Some(small(status)),
        }
    } else {
        SchedulerExit {
            code: Some(small(status)),
            signal: None,
            failed: None,
        }
    }
}

fn map_state(row: &Row) -> Native {
    let s = row.state.as_str();
    let text = match &row.reason {
        Some(r) if !r.is_empty() => format!("{s} ({r})"),
        _ => s.to_owned(),
    };
    let exit = row.exit;
    let phase = match s {
        "Q" | "W" | "H" | "T" | "M" => Phase::Queued,
        "R" | "E" | "S" | "U" | "B" => Phase::Running,
        "C" | "F" | "X" => Phase::Ended(match exit {
            None => EndKind::Unspecified,
            Some(SchedulerExit {
                code: Some(0),
                signal: None,
                failed: None,
            }) => EndKind::Success,
            Some(_) => EndKind::Failure,
        }),
        _ => Phase::Unknown,
    };
    let reason = match (phase, exit) {
        (Phase::Ended(EndKind::Failure), Some(e)) => Some(match (e.code, e.signal, e.failed) {
            (_, Some(sig), _) => format!("PBS: killed by signal {sig}"),
            (_, _, Some(f)) => format!("PBS could not run it (exit status {f})"),
            (Some(c), _, _) => format!("PBS: exit status {c}"),
            _ => "PBS: failed".to_owned(),
        }),
        (Phase::Unknown, _) => Some(format!("unknown PBS state {s}")),
        _ => None,
    };
    Native::new(phase, text)
        .with_exit_code(exit.and_then(|e| e.code))
        .with_reason(reason)
}

/// `qdel` answers 0 when everything went. Otherwise it names the failures: an unknown or
/// finished job (`Unknown Job Id`, `Job has finished`) is as good as killed. Slurm's Torque
/// wrapper says nothing about those and counts them in its exit code.
const KILL_ANSWER: KillAnswer = KillAnswer {
    success_is_done: true,
    silent_failure_is_done: true,
    // The server (or, under Slurm's wrapper, slurmctld) did not answer: not the job.
    down: &[
        Said::Anywhere("cannot connect"),
        Said::Anywhere("unable to contact"),
        Said::Anywhere("connection refused"),
        Said::Anywhere("timed out"),
    ],
    gone_names_an_id: true,
    ..KillAnswer::new(
        &[
            Said::Anywhere("unknown job id"),
            Said::Anywhere("has finished"),
            Said::Anywhere("already"),
            Said::Anywhere("invalid job id"),
            Said::Anywhere("completed"),
        ],
        // The whole id, or its sequence number as a word (`Unknown Job Id 12.pbs01`,
        // `job id 24`).
        |line, id| {
            let number = id.split('.').next().unwrap_or(id);
            line.contains(id)
                || line
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|w| w == number)
        },
    )
};

#[cfg(test)]
mod tests {
    use super::super::testing::{KillRead, fixture, kill_answers_read, listing};
    use super::*;

    fn req(tag: &str, history: bool) -> StatusRequest<'_> {
        StatusRequest {
            pbs_history: history,
            ..listing(tag)
        }
    }

    #[test]
    fn slurm_torque_wrapper_listing() {
        let rows = parse_status(
            &fixture("pbs/qstat-f-slurm-torque.txt"),
            &req("ganga-rec4", false),
        )
        .expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["23", "24", "25"], "job 26 is named `other`");
        let done = map_state(&rows[0]);
        assert_eq!(done.phase, Phase::Ended(EndKind::Unspecified));
        assert_eq!(map_state(&rows[1]).phase, Phase::Running);
        assert_eq!(rows[1].host.as_deref(), Some("vm"));
        assert_eq!(map_state(&rows[2]).phase, Phase::Queued);
    }

    #[test]
    fn pbspro_listings() {
        let rows = parse_status(
            &fixture("pbs/qstat-f-pbspro-running.txt"),
            &req("script.sh", true),
        )
        .expect("parses");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "171390152.mycluster");
        assert_eq!(rows[0].host.as_deref(), Some("mycluster-cpu-0686"));
        let running = map_state(&rows[0]);
        assert_eq!(running.phase, Phase::Running);
        // A value wrapped onto a tab-indented line is joined again.
        assert_eq!(
            rows[0].reason.as_deref(),
            Some(
                "Job run at Wed Jun 17 at 04:57 on (mycluster-cpu-0686:ncpus=1:mem=512000kb:jobfs=102400kb)"
            )
        );

        let text = fixture("pbs/qstat-f-pbspro-held-running.txt");
        let held = parse_status(&text, &req("Cu-dbp", true)).expect("parses");
        assert_eq!(held.len(), 1);
        assert_eq!(map_state(&held[0]).phase, Phase::Queued);
        // A blank line inside a block (after `comment`) does not end it.
        let other = parse_status(&text, &req("u-100-l-96.job", true)).expect("parses");
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].host.as_deref(), Some("b270"));
    }

    #[test]
    fn finished_jobs_map_by_exit_status() {
        let row = |state: &str, status: Option<i64>| Row {
            id: "1.s".into(),
            state: state.into(),
            exit: status.map(exit_of),
            ..Row::default()
        };
        assert_eq!(
            map_state(&row("F", Some(0))).phase,
            Phase::Ended(EndKind::Success)
        );
        let three = map_state(&row("F", Some(3)));
        assert_eq!(
            (three.phase, three.exit_code),
            (Phase::Ended(EndKind::Failure), Some(3))
        );
        let signal = map_state(&row("C", Some(271)));
        assert_eq!(signal.phase, Phase::Ended(EndKind::Failure));
        assert!(
            signal
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("signal 15"))
        );
        let no_start = map_state(&row("F", Some(-1)));
        assert!(
            no_start
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("could not run"))
        );
        assert_eq!(
            map_state(&row("X", None)).phase,
            Phase::Ended(EndKind::Unspecified)
        );
        assert_eq!(map_state(&row("Z", None)).phase, Phase::Unknown);
        assert_eq!(status_args(&req("t", true)), ["-f", "-x"]);
        assert_eq!(status_args(&req("t", false)), ["-f"]);
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "qstat: cannot connect to server pbs01 (errno=111)",
            "Job Id: not an id",
            "Job Id: 1.s\nJob_Name = t\n",
            "Job Id: 1.s\n    Job_Name = t\n",
            "Job Id: 1.s\n    Job_Name = t\n    job_state = running\n",
            "Job Id: 1.s\n    Job_Name = t\n    job_state = F\n    Exit_status = zero\n",
            "Job Id: 1.s\n    no equals sign here\n",
        ] {
            assert!(parse_status(text, &req("t", true)).is_err(), "{text}");
        }
        assert_eq!(parse_status("", &req("t", true)), Ok(vec![]));
    }

    #[test]
    fn submit_answers() {
        assert_eq!(
            parse_submit(&fixture("pbs/qsub-slurm-torque.txt")),
            Ok("23".into())
        );
        // PBS Pro and Torque answer `<sequence number>.<server>`.
        assert_eq!(
            parse_submit("1234.pbs01.example.org\n"),
            Ok("1234.pbs01.example.org".into())
        );
        assert!(parse_submit("There was an error running the Slurm sbatch command.").is_err());
        assert!(parse_submit("qsub: Unknown queue").is_err());
    }

    #[test]
    fn kill_answers() {
        let error = "qdel: Kill job error on job id 24";
        kill_answers_read(
            &FLAVOUR,
            &[
                // Slurm's wrapper: silent, exit code = number of ids already ended or unknown.
                (1, "", &["24", "99999"], KillRead::All),
                (
                    153,
                    "qdel: Unknown Job Id 12.pbs01",
                    &["12.pbs01"],
                    KillRead::All,
                ),
                (
                    1,
                    &format!("{error}: Access/permission denied"),
                    &["24", "25"],
                    KillRead::AllBut("24"),
                ),
                (
                    1,
                    "qdel: cannot connect to server pbs01",
                    &["12.pbs01"],
                    KillRead::Failed,
                ),
                (
                    1,
                    &format!("{error}: Unable to contact slurm controller (connect failure)"),
                    &["24"],
                    KillRead::Failed,
                ),
            ],
        );
    }
}
