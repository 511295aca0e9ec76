//! What the checks expect of an answer, each a comparison that says what differed.

use std::path::Path;

use ganga_core::{BackendError, BackendRef, JobRef, OutputsReport, RemoteStatus};

use crate::helpers::{Mismatch, Seen, show_report};

use super::{Outcome, Tester};

/// What a call given an empty batch must answer: `Ok([])`.
pub(super) fn no_answers<T>(call: &str, answer: Result<Vec<T>, BackendError>) -> Outcome {
    let got = match answer {
        Ok(answers) if answers.is_empty() => return Ok(()),
        Ok(answers) => format!("{} answers", answers.len()),
        Err(e) => format!("an error: {e}"),
    };
    Err(Mismatch::new(format!("{call}(&[]) to answer Ok([])"), got))
}

pub(super) fn panicked(call: &str, message: String) -> Mismatch {
    Mismatch::new(
        format!("{call} to answer (errors for those units, Absent, Unknown) without a panic"),
        format!("a panic: {message}"),
    )
}

pub(super) fn expect_status(seen: &Seen, want: RemoteStatus) -> Outcome {
    if seen.report.status == want {
        Ok(())
    } else {
        Err(Mismatch::new(format!("{want:?}"), show_report(&seen.report)).for_job(seen.job))
    }
}

/// Job `.i` exits with code `i`: 0 succeeds, the others fail with their code.
pub(super) fn expect_exit_codes(refs: &[BackendRef], seen: &[Seen]) -> Outcome {
    for (r, seen) in refs.iter().zip(seen) {
        let report = &seen.report;
        let code = r
            .job
            .subjob
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(0);
        let want = if code == 0 {
            RemoteStatus::Succeeded
        } else {
            RemoteStatus::Failed
        };
        let code_ok = report.exit_code == Some(code) || (code == 0 && report.exit_code.is_none());
        if report.status != want || !code_ok {
            return Err(Mismatch::new(
                format!("{want:?} with exit code {code} (the report for this very job)"),
                show_report(report),
            )
            .for_job(r.job));
        }
    }
    Ok(())
}

/// The report's files and unmatched patterns, in any order.
pub(super) fn expect_collected(
    job: JobRef,
    report: &OutputsReport,
    collected: &[&str],
    unmatched: &[&str],
) -> Outcome {
    let (got_collected, got_unmatched) = normalised(report);
    if got_collected != collected || got_unmatched != unmatched {
        return Err(Mismatch::new(
            format!("collected {collected:?}, unmatched {unmatched:?}"),
            format!("collected {got_collected:?}, unmatched {got_unmatched:?}"),
        )
        .for_job(job));
    }
    Ok(())
}

pub(super) fn normalised(report: &OutputsReport) -> (Vec<String>, Vec<String>) {
    let mut collected = report.collected.clone();
    let mut unmatched = report.unmatched.clone();
    collected.sort();
    unmatched.sort();
    (collected, unmatched)
}

/// A file in the job's output directory, with exactly `content`.
pub(super) fn expect_file(
    t: &Tester<'_>,
    job: &BackendRef,
    name: &str,
    content: &str,
    what: &str,
) -> Outcome {
    let path: &Path = &t.output_dir(job).join(name);
    let expected = format!("{what} in {} as {content:?}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) if text == content => Ok(()),
        Ok(text) => Err(Mismatch::new(expected, format!("{text:?}")).for_job(job.job)),
        Err(e) => Err(Mismatch::new(expected, format!("no such file ({e})")).for_job(job.job)),
    }
}
