//! How jobs look on a terminal and in JSON.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use comfy_table::{Table, presets::NOTHING};
use ganga_core::{
    Job, JobId, JobRef, JobSpec, JobSummary, RunState, Status, StatusCounts, Subjob, SummaryEntry,
    Timestamp, Workspaces, effective_spec,
};
use serde::Serialize;
use serde::ser::{SerializeSeq as _, Serializer};
use serde_json::{Value as Json, json};

/// A point in time in the local time zone, to the second.
pub(crate) fn time(t: Timestamp) -> String {
    match jiff::Timestamp::from_millisecond(t.as_millis()) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => format!("{}ms", t.as_millis()),
    }
}

fn time_json(t: Option<Timestamp>) -> Json {
    match t.and_then(|t| jiff::Timestamp::from_millisecond(t.as_millis()).ok()) {
        Some(ts) => Json::String(ts.to_string()),
        None => Json::Null,
    }
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING).set_header(header.to_vec());
    t
}

/// A table as text, without the padding comfy-table leaves at the end of lines.
pub(crate) fn text(t: &Table) -> String {
    t.to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Counts as `completed 3, failed 1`.
pub(crate) fn counts(c: &StatusCounts) -> String {
    c.iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows held before the column widths are fixed.
const WIDTH_ROWS: usize = 1000;

/// A plain table for listings that run to millions of rows, written as the rows come:
/// laid out like comfy-table's borderless preset, each column padded to the widest of its
/// first [`WIDTH_ROWS`] cells (and its header). After those a wider cell pushes the rest
/// of its row right instead of re-laying out what was written, so memory stays bounded
/// whatever the length. (comfy-table keeps a rich model of every cell; for 11,000 jobs
/// that costs tens of MB.)
pub(crate) struct Listing<W: Write> {
    header: Vec<&'static str>,
    right: Vec<usize>,
    held: Vec<Vec<String>>,
    /// Widths callers asked for.
    min: Vec<usize>,
    /// Fixed once the first rows are written.
    widths: Option<Vec<usize>>,
    rows: u64,
    line: String,
    out: W,
}

impl<W: Write> Listing<W> {
    pub(crate) fn new(header: &[&'static str], right_aligned: &[usize], out: W) -> Listing<W> {
        Listing {
            header: header.to_vec(),
            right: right_aligned.to_vec(),
            held: Vec::new(),
            min: Vec::new(),
            widths: None,
            rows: 0,
            line: String::new(),
            out,
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) -> std::io::Result<()> {
        self.rows += 1;
        if self.widths.is_some() {
            return self.emit(&cells);
        }
        self.held.push(cells);
        if self.held.len() >= WIDTH_ROWS {
            self.fix_widths()?;
        }
        Ok(())
    }

    /// Makes column `col` at least `width` wide, if its width is not fixed yet (a caller
    /// that knows how wide a column will get says so before the first rows are written).
    pub(crate) fn at_least(&mut self, col: usize, width: usize) {
        if self.widths.is_none() {
            if self.min.len() <= col {
                self.min.resize(col + 1, 0);
            }
            self.min[col] = self.min[col].max(width);
        }
    }

    /// Writes what is held; returns the number of rows and the writer. A listing without
    /// rows writes nothing, not even its header (the caller says there is nothing).
    pub(crate) fn finish(mut self) -> std::io::Result<(u64, W)> {
        if self.rows > 0 && self.widths.is_none() {
            self.fix_widths()?;
        }
        self.out.flush()?;
        Ok((self.rows, self.out))
    }

    fn fix_widths(&mut self) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for (w, min) in widths.iter_mut().zip(&self.min) {
            *w = (*w).max(*min);
        }
        for row in &self.held {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        self.widths = Some(widths);
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        self.emit(&header)?;
        for row in std::mem::take(&mut self.held) {
            self.emit(&row)?;
        }
        Ok(())
    }

    fn emit(&mut self, cells: &[String]) -> std::io::Result<()> {
        let widths = self.widths.as_deref().unwrap_or_default();
        let line = &mut self.line;
        line.clear();
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).map_or("", String::as_str);
            let pad = w.saturating_sub(cell.chars().count());
            line.push(' ');
            if self.right.contains(&i) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.push(' ');
        }
        writeln!(self.out, "{}", line.trim_end())
    }
}

pub(crate) fn jobs_listing<W: Write>(out: W) -> Listing<W> {
    Listing::new(
        &[
            "id",
            "status",
            "name",
            "subjobs",
            "run/fail/cing/done",
            "backend",
            "application",
            "created",
        ],
        &[0, 3],
        out,
    )
}

pub(crate) fn job_row(e: &SummaryEntry) -> Vec<String> {
    match e {
        SummaryEntry::Readable(s) => {
            let split = !s.subjobs.is_empty();
            vec![
                s.id.to_string(),
                s.status.to_string(),
                s.name.clone(),
                if split {
                    s.subjobs.total().to_string()
                } else {
                    "-".into()
                },
                if split {
                    s.subjobs.display_short()
                } else {
                    "-".into()
                },
                s.backend.clone(),
                s.application.clone(),
                dash(s.created.map(time)),
            ]
        }
        SummaryEntry::Unreadable { id, error } => {
            vec![id.to_string(), "unreadable".into(), error.clone()]
        }
    }
}

pub(crate) fn summary_json(e: &SummaryEntry) -> Json {
    match e {
        SummaryEntry::Readable(s) => summary_obj(s),
        SummaryEntry::Unreadable { id, error } => json!({ "id": id, "unreadable": error }),
    }
}

fn summary_obj(s: &JobSummary) -> Json {
    json!({
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "backend": s.backend,
        "application": s.application,
        "subjobs": counts_json(&s.subjobs),
        "exit_code": s.exit_code,
        "created": time_json(s.created),
        "updated": time_json(s.updated),
        "comment": s.comment,
    })
}

fn counts_json(c: &StatusCounts) -> Json {
    Json::Object(c.iter().map(|(s, n)| (s.to_string(), json!(n))).collect())
}

fn run_json(r: &RunState) -> Json {
    json!({
        "status": r.status,
        "times": Json::Object(r.times.iter().map(|(s, t)| (s.to_string(), time_json(Some(t)))).collect()),
        "submit_count": r.submit_count,
        "auto_resubmits": r.auto_resubmits,
        "backend_id": r.backend.id,
        "native_state": r.backend.native_state,
        "exit_code": r.backend.exit_code,
        "reason": r.backend.reason,
        "actual_ce": r.backend.actual_ce,
        "outputs": r.outputs,
    })
}

fn spec_json(spec: &JobSpec) -> Json {
    let exe = spec.application.executable();
    json!({
        "name": spec.name,
        "comment": spec.comment,
        "application": { "type": "executable", "exe": exe.exe, "args": exe.args, "env": exe.env },
        "backend": spec.backend,
        "input_files": spec.input_files,
        "output_files": spec.output_files,
        "splitter": spec.splitter,
        "auto_resubmit": spec.auto_resubmit,
    })
}

pub(crate) fn job_json(job: &Job, ws: &Workspaces) -> Json {
    json!({
        "id": job.id,
        "revision": job.revision,
        "spec": spec_json(&job.spec),
        "run": run_json(&job.run),
        "subjobs": counts_json(&job.subjobs),
        "workspace": ws.dir(job.job_ref()),
        "output_dir": ws.output_dir(job.job_ref()),
    })
}

pub(crate) fn subjob_json(job: &Job, sj: &Subjob, ws: &Workspaces) -> Json {
    let r = JobRef::subjob(job.id, sj.index);
    json!({
        "id": r.to_string(),
        "job": job.id,
        "index": sj.index,
        "overrides": sj.overrides,
        "spec": spec_json(&effective_spec(job, Some(sj))),
        "run": run_json(&sj.run),
        "workspace": ws.dir(r),
        "output_dir": ws.output_dir(r),
    })
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn command_line(spec: &JobSpec) -> String {
    let exe = spec.application.executable();
    std::iter::once(&exe.exe)
        .chain(&exe.args)
        .map(|w| quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn field(out: &mut String, name: &str, value: impl AsRef<str>) {
    let value = value.as_ref();
    if !value.is_empty() {
        out.push_str(&format!("  {name:<13}{value}\n"));
    }
}

/// The run state; `ran` is false for a master, which runs nothing itself.
fn run_fields(out: &mut String, run: &RunState, output_dir: &Path, ran: bool) {
    field(out, "status", run.status.as_str());
    field(out, "submitted", format!("{} time(s)", run.submit_count));
    if run.auto_resubmits > 0 {
        field(
            out,
            "",
            format!("{} of them automatically", run.auto_resubmits),
        );
    }
    if ran {
        backend_fields(out, run);
    }
    let times: Vec<String> = run
        .times
        .iter()
        .map(|(s, t)| format!("{s} {}", time(t)))
        .collect();
    for (i, t) in times.iter().enumerate() {
        field(out, if i == 0 { "times" } else { "" }, t);
    }
    if !run.outputs.is_empty() {
        field(out, "outputs", output_dir.display().to_string());
        for o in &run.outputs {
            field(out, "", format!("  {o}"));
        }
    }
}

fn backend_fields(out: &mut String, run: &RunState) {
    field(out, "backend id", dash(run.backend.id.as_ref()));
    field(out, "native state", dash(run.backend.native_state.as_ref()));
    field(out, "exit code", dash(run.backend.exit_code));
    field(out, "ran on", dash(run.backend.actual_ce.as_ref()));
    if let Some(reason) = &run.backend.reason {
        field(out, "reason", reason);
    }
}

fn spec_fields(out: &mut String, spec: &JobSpec) {
    field(out, "comment", &spec.comment);
    field(out, "command", command_line(spec));
    let env = &spec.application.executable().env;
    for (i, (k, v)) in env.iter().enumerate() {
        field(
            out,
            if i == 0 { "env" } else { "" },
            format!("{k}={}", quote(v)),
        );
    }
    let options: Vec<String> = spec
        .backend
        .options
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let backend = if options.is_empty() {
        spec.backend.kind.clone()
    } else {
        format!("{} ({})", spec.backend.kind, options.join(", "))
    };
    field(out, "backend", backend);
    for (i, f) in spec.input_files.iter().enumerate() {
        field(
            out,
            if i == 0 { "input files" } else { "" },
            f.display().to_string(),
        );
    }
    field(out, "output files", spec.output_files.join(", "));
}

pub(crate) fn job_text(job: &Job, ws: &Workspaces) -> String {
    let mut out = format!("job {}  {}\n", job.id, job.spec.name);
    spec_fields(&mut out, &job.spec);
    if let Some(s) = &job.spec.splitter {
        field(&mut out, "splitter", s.label());
    }
    if job.is_split() {
        field(
            &mut out,
            "subjobs",
            format!("{}: {}", job.subjobs.total(), counts(&job.subjobs)),
        );
    }
    run_fields(
        &mut out,
        &job.run,
        &ws.output_dir(job.job_ref()),
        !job.is_split(),
    );
    field(
        &mut out,
        "workspace",
        ws.dir(job.job_ref()).display().to_string(),
    );
    out
}

pub(crate) fn subjob_text(job: &Job, sj: &Subjob, ws: &Workspaces) -> String {
    let r = JobRef::subjob(job.id, sj.index);
    let spec = effective_spec(job, Some(sj));
    let mut out = format!("subjob {r}  {}\n", spec.name);
    spec_fields(&mut out, &spec);
    let overrides: Vec<String> = sj.overrides.iter().map(|o| o.path()).collect();
    field(&mut out, "split on", overrides.join(", "));
    run_fields(&mut out, &sj.run, &ws.output_dir(r), true);
    field(&mut out, "workspace", ws.dir(r).display().to_string());
    out
}

pub(crate) fn subjobs_listing<W: Write>(out: W) -> Listing<W> {
    Listing::new(
        &[
            "id",
            "status",
            "backend id",
            "exit",
            "ran on",
            "outputs",
            "reason",
        ],
        &[],
        out,
    )
}

pub(crate) fn subjob_row(job: JobId, sj: &Subjob) -> Vec<String> {
    vec![
        JobRef::subjob(job, sj.index).to_string(),
        sj.run.status.to_string(),
        dash(sj.run.backend.id.as_ref()),
        dash(sj.run.backend.exit_code),
        dash(sj.run.backend.actual_ce.as_ref()),
        sj.run.outputs.join(" "),
        sj.run.backend.reason.clone().unwrap_or_default(),
    ]
}

/// Writes a JSON array of the items `next` gives (until `None`), one at a time, laid out
/// as serde_json's pretty printer lays out a whole array. An error from `next` stops the
/// writing there, leaving the document unfinished (so that no reader takes it for whole),
/// and is returned.
pub(crate) fn json_array<W: Write>(
    mut out: W,
    next: impl FnMut() -> anyhow::Result<Option<Json>>,
) -> anyhow::Result<W> {
    let items = Items {
        next: RefCell::new(next),
        failed: RefCell::new(None),
    };
    let written = serde_json::to_writer_pretty(&mut out, &items);
    if let Some(e) = items.failed.into_inner() {
        return Err(e);
    }
    written?;
    writeln!(out)?;
    out.flush()?;
    Ok(out)
}

struct Items<F> {
    next: RefCell<F>,
    failed: RefCell<Option<anyhow::Error>>,
}

impl<F: FnMut() -> anyhow::Result<Option<Json>>> Serialize for Items<F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        let mut next = self.next.borrow_mut();
        loop {
            match next() {
                Ok(Some(item)) => seq.serialize_element(&item)?,
                Ok(None) => break,
                Err(e) => {
                    let message = e.to_string();
                    *self.failed.borrow_mut() = Some(e);
                    return Err(serde::ser::Error::custom(message));
                }
            }
        }
        seq.end()
    }
}

/// One line saying where a job is, for progress while waiting.
pub(crate) fn progress(job: &Job) -> String {
    if job.is_split() {
        format!(
            "job {}: {} (subjobs: {})",
            job.id,
            job.status(),
            counts(&job.subjobs)
        )
    } else {
        format!("job {}: {}", job.id, job.status())
    }
}

pub(crate) fn status_list(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
