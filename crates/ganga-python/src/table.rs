//! The `repr`s a person reads: Ganga's jobs table (`fqid | status | name | subjobs |
//! application | backend | comment | subjob status`), and a subjobs table, laid out as
//! Ganga lays its own out.

use ganga_core::{Job, JobRef, JobSpec, JobSummary, Subjob};

pub(crate) const JOB_HEADER: &[&str] = &[
    "fqid",
    "status",
    "name",
    "subjobs",
    "application",
    "backend",
    "comment",
    "subjob status",
];
pub(crate) const JOB_RIGHT: &[usize] = &[0, 3];

pub(crate) const SUBJOB_HEADER: &[&str] = &[
    "fqid",
    "status",
    "name",
    "application",
    "backend",
    "backend.id",
    "exitcode",
    "backend.actualCE",
    "reason",
];
pub(crate) const SUBJOB_RIGHT: &[usize] = &[0, 6];

/// Rows shown at most by a `repr` (a registry of a million subjobs is iterated, not
/// printed).
pub(crate) const MAX_ROWS: usize = 1000;

/// Ganga's name of a backend, as its class would be called.
fn backend_label(kind: &str, system: Option<&str>) -> String {
    match (kind, system) {
        ("local", _) => "Local".into(),
        ("dirac", _) => "Dirac".into(),
        ("batch", Some("slurm")) => "Slurm".into(),
        ("batch", Some("sge")) => "SGE".into(),
        ("batch", Some("pbs")) => "PBS".into(),
        ("batch", Some("lsf")) => "LSF".into(),
        ("batch", Some("condor")) => "Condor".into(),
        ("batch", _) => "Batch".into(),
        (other, _) => other.to_owned(),
    }
}

fn spec_backend(spec: &JobSpec) -> String {
    backend_label(
        &spec.backend.kind,
        spec.backend.options.get("system").and_then(|v| v.as_str()),
    )
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

pub(crate) fn job_row(s: &JobSummary) -> Vec<String> {
    let split = !s.subjobs.is_empty();
    vec![
        s.id.to_string(),
        s.status.to_string(),
        s.name.clone(),
        if split {
            s.subjobs.total().to_string()
        } else {
            String::new()
        },
        s.application.clone(),
        backend_label(&s.backend, None),
        one_line(&s.comment),
        if split {
            s.subjobs.display_short()
        } else {
            String::new()
        },
    ]
}

/// A job not submitted yet.
pub(crate) fn draft_row(spec: &JobSpec) -> Vec<String> {
    let subjobs = spec
        .splitter
        .as_ref()
        .and_then(|s| s.split().ok())
        .map_or_else(String::new, |s| s.len().to_string());
    vec![
        "-".into(),
        "new (not submitted)".into(),
        spec.name.clone(),
        subjobs,
        spec.application.label(),
        spec_backend(spec),
        one_line(&spec.comment),
        String::new(),
    ]
}

pub(crate) fn subjob_row(job: &Job, sj: &Subjob) -> Vec<String> {
    let spec = sj.effective_spec(&job.spec);
    let b = &sj.run.backend;
    vec![
        JobRef::subjob(job.id, sj.index).to_string(),
        sj.run.status.to_string(),
        spec.name.clone(),
        spec.application.label(),
        spec_backend(&spec),
        b.id.clone().unwrap_or_default(),
        b.exit_code.map_or_else(String::new, |c| c.to_string()),
        b.actual_ce.clone().unwrap_or_default(),
        one_line(b.reason.as_deref().unwrap_or_default()),
    ]
}

/// The rows under the header, columns separated by `|`, as Ganga prints its tables.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = (usize, &str)>| -> String {
        cells
            .map(|(i, cell)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if right.contains(&i) {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let head = line(&mut header.iter().copied().enumerate());
    let mut out = String::new();
    out.push_str(&head);
    out.push('\n');
    out.push_str(&"-".repeat(head.chars().count()));
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str).enumerate()));
    }
    out
}
