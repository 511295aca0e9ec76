//! Slurm: `sbatch --array`, one `squeue` for the whole home, `scancel`.
//!
//! Facts (Slurm 22.05, re-checked on the project's own single-node cluster): `squeue -t all`
//! is needed to see ended jobs, `-r` lists array tasks one per line, `exit_code` in `-O`
//! is the raw wait status (768 = exit 3, 15 = signal 15), `scancel` answers 0 for ids it
//! does not know, and a client command takes 9 to 18 s to fail when slurmctld is down.

use super::{
    ArrayRule, EndKind, Flavour, KillAnswer, MAX_EXPANDED_TASKS, Native, ParseError, Phase,
    QueueOption, Row, Said, SchedulerExit, StatusRequest, SubmitPlan, SubmitRequest, TaskIds,
    excerpt, expand_range, first_line, is_number, script_file_plan, submitted_id,
};

pub(crate) static FLAVOUR: Flavour = Flavour {
    name: "slurm",
    title: "Slurm",
    submit_command: "sbatch",
    status_command: "squeue",
    kill_command: "scancel",
    array: Some(ArrayRule {
        first_index: 0,
        // Slurm's default MaxArraySize is 1001 (indices 0..=1000).
        max_tasks: 1000,
    }),
    index_expr: "${SLURM_ARRAY_TASK_ID-}",
    id_expr: "${SLURM_ARRAY_JOB_ID-}_${SLURM_ARRAY_TASK_ID-}",
    submit_plan,
    parse_submit,
    task_ids: TASK_IDS,
    delete_failed: false,
    status_args,
    parse_status,
    status_is_empty: super::never_empty,
    map_state,
    kill_args: super::ids_as_args,
    kill_answer: KILL_ANSWER,
    history: None,
};

const TASK_IDS: TaskIds = TaskIds::Joined('_');

/// The listing's columns, `|`-terminated; the reason comes last because it is free text.
const COLUMNS: &str = "JobArrayID:|,State:|,exit_code:|,NodeList:|,Comment:|,Reason:|";

fn submit_plan(req: &SubmitRequest<'_>) -> Result<SubmitPlan, String> {
    let own = vec![
        "--parsable".to_owned(),
        format!("--job-name={}", req.tag),
        format!("--comment={}", req.key),
        "--output=/dev/null".to_owned(),
        "--error=/dev/null".to_owned(),
        format!("--array=0-{}", req.tasks.saturating_sub(1)),
    ];
    script_file_plan(req, own, QueueOption::Joined("--partition="))
}

/// `sbatch --parsable` prints `<id>` or `<id>;<cluster>`.
fn parse_submit(stdout: &str) -> Result<String, ParseError> {
    let id = first_line(stdout)
        .and_then(|l| l.split(';').next())
        .filter(|id| is_number(id));
    submitted_id(id, "sbatch answer", "a job id", stdout)
}

fn status_args(req: &StatusRequest<'_>) -> Vec<String> {
    vec![
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        "--array".to_owned(),
        format!("--name={}", req.tag),
        format!("--Format={COLUMNS}"),
    ]
}

fn parse_status(text: &str, _req: &StatusRequest<'_>) -> Result<Vec<Row>, ParseError> {
    const WHAT: &str = "squeue output";
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| ParseError::at(WHAT, n, format!("{m} in {}", excerpt(line)));
        let fields: Vec<&str> = line.splitn(6, '|').collect();
        let [id, state, raw_exit, nodes, comment, rest] = fields[..] else {
            return Err(bad("expected six `|`-separated columns".to_owned()));
        };
        let reason = rest
            .strip_suffix('|')
            .ok_or_else(|| bad("the last column is not `|`-terminated".to_owned()))?
            .trim();
        let state = state.trim();
        if state.is_empty() || !state.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Err(bad(format!("`{state}` is not a Slurm state")));
        }
        let exit = match raw_exit.trim() {
            "" | "N/A" => None,
            raw => {
                let raw: i64 = raw
                    .parse()
                    .map_err(|_| bad(format!("`{raw}` is not an exit status")))?;
                Some(wait_status(raw))
            }
        };
        let host = Some(nodes.trim()).filter(|h| !h.is_empty() && *h != "(null)");
        let key = Some(comment.trim()).filter(|c| !c.is_empty() && *c != "(null)");
        let reason = Some(reason).filter(|r| !r.is_empty() && *r != "None" && *r != "(null)");
        for id in expand_id(id.trim()).map_err(bad)? {
            rows.push(Row {
                id,
                state: state.to_owned(),
                reason: reason.map(str::to_owned),
                exit,
                host: host.map(str::to_owned),
                key: key.map(str::to_owned),
            });
        }
    }
    Ok(rows)
}

/// `12`, `12_3`, or (without `-r`) a pending remainder `12_[4-9]`.
fn expand_id(id: &str) -> Result<Vec<String>, String> {
    match id.split_once('_') {
        None if is_number(id) => Ok(vec![id.to_owned()]),
        Some((base, task)) if is_number(base) && is_number(task) => Ok(vec![id.to_owned()]),
        Some((base, range)) if is_number(base) => {
            let inner = range
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(|| format!("`{id}` is not a job id"))?;
            // `%4` after the range is a limit of tasks running at once.
            let inner = inner.split('%').next().unwrap_or_default();
            Ok(expand_range(inner, MAX_EXPANDED_TASKS)?
                .into_iter()
                .map(|t| TASK_IDS.unit_id(base, t))
                .collect())
        }
        _ => Err(format!("`{id}` is not a job id")),
    }
}

/// A raw wait status: the exit code in the high byte, the signal in the low bits.
fn wait_status(raw: i64) -> SchedulerExit {
    let signal = i32::try_from(raw & 0x7f).unwrap_or(0);
    let code = i32::try_from((raw >> 8) & 0xff).unwrap_or(0);
    SchedulerExit {
        code: (signal == 0).then_some(code),
        signal: (signal != 0).then_some(signal),
        failed: None,
    }
}

fn map_state(row: &Row) -> Native {
    let text = match &row.reason {
        Some(r) => format!("{} ({r})", row.state),
        None => row.state.clone(),
    };
    let code = row.exit.and_then(|e| e.code);
    let signal = row.exit.and_then(|e| e.signal);
    let phase = match row.state.as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => Phase::Queued,
        // COMPLETING: the script has ended, cleanup is under way; its record may follow.
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT"
        | "RESIZING" => Phase::Running,
        "COMPLETED" if code.unwrap_or(0) == 0 && signal.is_none() => Phase::Ended(EndKind::Success),
        "COMPLETED" | "FAILED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL" | "BOOT_FAIL"
        | "DEADLINE" | "SPECIAL_EXIT" => Phase::Ended(EndKind::Failure),
        "CANCELLED" | "PREEMPTED" | "REVOKED" => Phase::Ended(EndKind::Killed),
        _ => Phase::Unknown,
    };
    let reason = match phase {
        Phase::Ended(EndKind::Failure | EndKind::Killed) => Some(match (code, signal) {
            (_, Some(sig)) => format!("Slurm says {text}, signal {sig}"),
            (Some(c), None) if c != 0 => format!("Slurm says {text}, exit code {c}"),
            _ => format!("Slurm says {text}"),
        }),
        Phase::Unknown => Some(format!("unknown Slurm state {}", row.state)),
        _ => None,
    };
    Native::new(phase, text)
        .with_exit_code(match phase {
            Phase::Ended(_) if signal.is_none() => code,
            _ => None,
        })
        .with_reason(reason)
}

/// `scancel` answers 0 even for ids it does not know; on other failures it names the job,
/// one a line (`scancel: error: Kill job error on job id 12_3: Access/permission denied`).
const KILL_ANSWER: KillAnswer = KillAnswer {
    success_is_done: true,
    // The controller did not answer (`Unable to contact slurm controller`, `Socket timed
    // out on send/recv operation`).
    down: &[
        Said::Anywhere("unable to contact"),
        Said::Anywhere("connect failure"),
        Said::Anywhere("timed out"),
    ],
    gone_names_an_id: true,
    one_id_a_line: true,
    ..KillAnswer::new(
        &[
            Said::Anywhere("invalid job id"),
            Said::Anywhere("already complet"),
            Said::Anywhere("job/step already"),
        ],
        |line, id| names_id(line, &format!("job id {id}")) || line.ends_with(&format!(" {id}")),
    )
};

/// Whether `line` holds `named` (`job id 1_1`) as a whole id: not as the start of a longer
/// one (`job id 1_10`), so that a refusal is laid at the right unit's door.
fn names_id(line: &str, named: &str) -> bool {
    line.match_indices(named).any(|(at, _)| {
        !line[at + named.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '[')
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{KillRead, fixture, kill_answers_read, listing};
    use super::*;

    const REQ: StatusRequest<'static> = listing("ganga-rec1");

    fn mapped(rows: &[Row], id: &str) -> Native {
        let row = rows
            .iter()
            .find(|r| r.id == id)
            .expect("the id is in the fixture");
        map_state(row)
    }

    #[test]
    fn a_mixed_listing() {
        let rows = parse_status(&fixture("slurm/squeue-mixed.txt"), &REQ).expect("it parses");
        assert_eq!(rows.len(), 10);
        let failed = mapped(&rows, "15");
        assert_eq!(failed.phase, Phase::Ended(EndKind::Failure));
        assert_eq!(failed.text, "FAILED (NonZeroExitCode)");
        assert_eq!(failed.exit_code, Some(3));
        assert_eq!(mapped(&rows, "14").phase, Phase::Ended(EndKind::Success));
        let cancelled = mapped(&rows, "18");
        assert_eq!(cancelled.phase, Phase::Ended(EndKind::Killed));
        assert_eq!(
            cancelled.exit_code, None,
            "killed by signal 15: no exit code"
        );
        let held = mapped(&rows, "17_2");
        assert_eq!(
            (held.phase, held.text.as_str()),
            (Phase::Queued, "PENDING (JobHeldUser)")
        );
        assert_eq!(mapped(&rows, "19").text, "PENDING (BeginTime)");
        assert_eq!(mapped(&rows, "16_3").phase, Phase::Running);
        // A pending array task cancelled on its own is gone from the listing at once.
        assert!(rows.iter().all(|r| r.id != "17_1"));
        let array = rows.iter().find(|r| r.id == "16_0").expect("listed");
        assert_eq!(array.key.as_deref(), Some("kC"));
        assert_eq!(array.host.as_deref(), Some("vm"));
        assert_eq!(
            rows.iter()
                .find(|r| r.id == "19")
                .and_then(|r| r.host.clone()),
            None
        );
    }

    #[test]
    fn a_cancelled_array() {
        let rows = parse_status(&fixture("slurm/squeue-cancelled.txt"), &REQ).expect("it parses");
        for id in ["16_0", "16_3", "17_0", "19"] {
            assert_eq!(
                mapped(&rows, id).phase,
                Phase::Ended(EndKind::Killed),
                "{id}"
            );
        }
    }

    #[test]
    fn an_empty_listing() {
        assert_eq!(
            parse_status(&fixture("slurm/squeue-empty.txt"), &REQ),
            Ok(vec![])
        );
    }

    #[test]
    fn collapsed_pending_tasks_are_expanded() {
        let rows = parse_status("7_[2-4%2]|PENDING|0||k|Priority|\n", &REQ).expect("parses");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["7_2", "7_3", "7_4"]);
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
            "12|RUNNING|0|vm|k|None",
            "12|running|0|vm|k|None|",
            "x12|RUNNING|0|vm|k|None|",
            "12|RUNNING|zero|vm|k|None|",
            "12_[1-9999999999]|PENDING|0||k|None|",
        ] {
            let e = parse_status(text, &REQ).expect_err(text);
            assert!(e.to_string().contains("squeue output, line 1"), "{e}");
        }
    }

    #[test]
    fn states_map() {
        let row = |state: &str, raw: i64| Row {
            id: "1".into(),
            state: state.into(),
            exit: Some(wait_status(raw)),
            ..Row::default()
        };
        for (state, phase) in [
            ("CONFIGURING", Phase::Queued),
            ("REQUEUED", Phase::Queued),
            ("COMPLETING", Phase::Running),
            ("SUSPENDED", Phase::Running),
            ("TIMEOUT", Phase::Ended(EndKind::Failure)),
            ("OUT_OF_MEMORY", Phase::Ended(EndKind::Failure)),
            ("NODE_FAIL", Phase::Ended(EndKind::Failure)),
            ("PREEMPTED", Phase::Ended(EndKind::Killed)),
            ("WEIRD_NEW_STATE", Phase::Unknown),
        ] {
            assert_eq!(map_state(&row(state, 0)).phase, phase, "{state}");
        }
        let killed = map_state(&row("FAILED", 9));
        assert_eq!(killed.exit_code, None);
        assert!(
            killed
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("signal 9"))
        );
        assert_eq!(map_state(&row("WEIRD", 0)).text, "WEIRD");
    }

    #[test]
    fn submit_answers() {
        assert_eq!(
            parse_submit(&fixture("slurm/sbatch-array.txt")),
            Ok("16".into())
        );
        assert_eq!(parse_submit("42;cluster2\n"), Ok("42".into()));
        assert!(parse_submit("sbatch: error: Batch job submission failed").is_err());
        assert!(parse_submit("").is_err());
        assert_eq!(FLAVOUR.unit_id("16", 3), "16_3");
    }

    #[test]
    fn submit_plan_is_an_array_with_the_tag() {
        let dir = std::path::Path::new("/tmp/x");
        let extra = vec!["--time=5".to_owned()];
        let plan = submit_plan(&SubmitRequest {
            tag: "ganga-ab",
            key: "k1",
            tasks: 50,
            queue: Some("debug"),
            extra: &extra,
            script: "#!/bin/sh\n",
            temp_dir: dir,
            keep_dir: dir,
        })
        .expect("a plan");
        assert_eq!(
            plan.args,
            [
                "--parsable",
                "--job-name=ganga-ab",
                "--comment=k1",
                "--output=/dev/null",
                "--error=/dev/null",
                "--array=0-49",
                "--partition=debug",
                "--time=5",
                "/tmp/x/k1.sh"
            ]
        );
        assert_eq!(plan.temp_files.len(), 1);
    }

    #[test]
    fn kill_answers() {
        let error = "scancel: error: Kill job error on job id";
        kill_answers_read(
            &FLAVOUR,
            &[
                (0, "", &["1_0"], KillRead::All),
                (
                    1,
                    &format!("{error} 1_0: Invalid job id specified"),
                    &["1_0"],
                    KillRead::All,
                ),
                (
                    1,
                    &format!("{error} 1_0: Access/permission denied"),
                    &["1_0", "1_1"],
                    KillRead::AllBut("1_0"),
                ),
                (
                    1,
                    "scancel: error: Unable to contact slurm controller (connect failure)",
                    &["1_0"],
                    KillRead::Failed,
                ),
                // Recorded with slurmctld stopped: the id is named, the controller is the
                // trouble.
                (
                    1,
                    &format!("{error} 347_0: Unable to contact slurm controller (connect failure)"),
                    &["347_0"],
                    KillRead::Failed,
                ),
                (1, "", &["1_0"], KillRead::Failed),
                // An id that begins another id's text is not that id.
                (
                    1,
                    &format!("{error} 1_10: Access/permission denied"),
                    &["1_1", "1_10"],
                    KillRead::AllBut("1_10"),
                ),
            ],
        );
    }
}
