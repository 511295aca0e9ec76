//! `Store::dump`: every table as text, one line per record, in key order. Stable (no
//! addresses, no clock, maps in key order) so that snapshot tests can diff it.

use std::fmt::{Display, Write};

use ganga_core::{
    BackendInfo, Job, JobId, JobSpec, JobSummary, Options, Override, RunState, Status,
    StatusCounts, Subjob, SubjobIndex,
};
use heed::RoTxn;

use crate::codec::decode;
use crate::env::{Table, Tables};
use crate::error::{Doing, Failure};
use crate::keys;

pub(crate) fn dump(tables: &Tables, txn: &RoTxn) -> Result<String, Failure> {
    let mut out = String::new();
    section(&mut out, "meta", tables.meta, txn, |key, value| {
        let value = match key {
            keys::META_FORMAT_VERSION => <[u8; 4]>::try_from(value)
                .map(|v| u32::from_be_bytes(v).to_string())
                .unwrap_or_else(|_| format!("<bad: {}>", hex(value))),
            keys::META_NEXT_JOB_ID => keys::parse_job(value)
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("<bad: {}>", hex(value))),
            _ => hex(value),
        };
        format!("{} = {value}", String::from_utf8_lossy(key))
    })?;
    section(&mut out, "jobs", tables.jobs, txn, |key, value| {
        let parsed = keys::parse_job(key);
        let id = parsed.map(|id| id.to_string());
        let id = id.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
        match decode::<Job>(value) {
            Ok(job) => format!("{id} {}", job_text(parsed, &job)),
            Err(e) => unreadable(&id, &e, value),
        }
    })?;
    section(&mut out, "subjobs", tables.subjobs, txn, |key, value| {
        let parsed = keys::parse_subjob(key);
        let id = parsed.map(|(job, index)| format!("{job}.{index}"));
        let id = id.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
        match decode::<Subjob>(value) {
            Ok(subjob) => format!("{id} {}", subjob_text(parsed.map(|k| k.1), &subjob)),
            Err(e) => unreadable(&id, &e, value),
        }
    })?;
    section(
        &mut out,
        "summaries",
        tables.summaries,
        txn,
        |key, value| {
            let parsed = keys::parse_job(key);
            let id = parsed.map(|id| id.to_string());
            let id = id.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
            match decode::<JobSummary>(value) {
                Ok(summary) => format!("{id} {}", summary_text(parsed, &summary)),
                Err(e) => unreadable(&id, &e, value),
            }
        },
    )?;
    section(&mut out, "active", tables.active, txn, |key, value| {
        let entry = keys::parse_active(key).map(|(backend, id)| format!("{backend} {id}"));
        let entry = entry.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
        format!("{entry} {}", status_byte_text(value))
    })?;
    Ok(out)
}

fn section(
    out: &mut String,
    name: &str,
    table: Table,
    txn: &RoTxn,
    line: impl Fn(&[u8], &[u8]) -> String,
) -> Result<(), Failure> {
    let doing = format!("reading table {name}");
    let mut lines = Vec::new();
    for entry in table.iter(txn).doing(&doing)? {
        let (key, value) = entry.doing(&doing)?;
        lines.push(line(key, value));
    }
    let _ = writeln!(out, "[{name}] {} records", lines.len());
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    Ok(())
}

fn unreadable(id: &str, error: &str, bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(16)];
    format!(
        "{id} UNREADABLE ({error}) {} bytes: {}{}",
        bytes.len(),
        hex(shown),
        if shown.len() < bytes.len() { "…" } else { "" }
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `key=value` fields on one line, leaving out the empty ones.
#[derive(Default)]
struct Fields(String);

impl Fields {
    fn add(&mut self, name: &str, value: impl Display) -> &mut Self {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{name}={value}");
        self
    }

    fn text(&mut self, name: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.add(name, format_args!("{value:?}"));
        }
        self
    }

    fn some<T: Display>(&mut self, name: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.add(name, v);
        }
        self
    }

    fn list<T>(&mut self, name: &str, items: &[T], item: impl Fn(&T) -> String) -> &mut Self {
        if !items.is_empty() {
            let items: Vec<String> = items.iter().map(item).collect();
            self.add(name, format_args!("[{}]", items.join(", ")));
        }
        self
    }

    fn done(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

// A record's own id or index is shown only when it differs from its key's (a damaged
// store, which `check` reports); otherwise the key says it.

fn job_text(key: Option<JobId>, job: &Job) -> String {
    let mut f = Fields::default();
    if key != Some(job.id) {
        f.add("id", job.id);
    }
    f.add("rev", job.revision);
    run_fields(&mut f, &job.run);
    f.add("subjobs", counts_text(&job.subjobs));
    spec_fields(&mut f, &job.spec);
    f.done()
}

fn subjob_text(key: Option<SubjobIndex>, subjob: &Subjob) -> String {
    let mut f = Fields::default();
    if key != Some(subjob.index) {
        f.add("index", subjob.index);
    }
    run_fields(&mut f, &subjob.run);
    f.list("overrides", &subjob.overrides, override_text);
    f.done()
}

fn summary_text(key: Option<JobId>, s: &JobSummary) -> String {
    let mut f = Fields::default();
    if key != Some(s.id) {
        f.add("id", s.id);
    }
    f.add("status", s.status)
        .text("name", &s.name)
        .add("backend", &s.backend)
        .text("application", &s.application)
        .add("subjobs", counts_text(&s.subjobs))
        .some("exit", s.exit_code)
        .some("created", s.created.map(|t| t.as_millis()))
        .some("updated", s.updated.map(|t| t.as_millis()))
        .text("comment", &s.comment);
    f.done()
}

fn run_fields(f: &mut Fields, run: &RunState) {
    f.add("status", run.status);
    let times: Vec<String> = run
        .times
        .iter()
        .map(|(status, at)| format!("{status}@{}", at.as_millis()))
        .collect();
    f.list("times", &times, Clone::clone);
    if run.submit_count > 0 {
        f.add("submits", run.submit_count);
    }
    backend_info_fields(f, &run.backend);
    f.list("outputs", &run.outputs, |o| format!("{o:?}"));
}

fn backend_info_fields(f: &mut Fields, info: &BackendInfo) {
    let BackendInfo {
        id,
        native_state,
        exit_code,
        reason,
        actual_ce,
    } = info;
    f.some("backend_id", id.as_deref().map(|s| format!("{s:?}")))
        .some("native", native_state.as_deref().map(|s| format!("{s:?}")))
        .some("exit", *exit_code)
        .some("reason", reason.as_deref().map(|s| format!("{s:?}")))
        .some("ce", actual_ce.as_deref().map(|s| format!("{s:?}")));
}

fn spec_fields(f: &mut Fields, spec: &JobSpec) {
    let exe = spec.application.executable();
    f.text("name", &spec.name)
        .add("backend", &spec.backend.kind)
        .add("exe", format_args!("{:?}", exe.exe))
        .list("args", &exe.args, |a| format!("{a:?}"));
    let env: Vec<String> = exe.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    f.list("env", &env, Clone::clone);
    f.list(
        "options",
        &options_text(&spec.backend.options),
        Clone::clone,
    )
    .list("input_files", &spec.input_files, |p| {
        format!("{:?}", p.display())
    })
    .list("output_files", &spec.output_files, |p| format!("{p:?}"))
    .some("splitter", spec.splitter.as_ref().map(|s| s.label()))
    .text("comment", &spec.comment);
}

fn options_text(options: &Options) -> Vec<String> {
    options.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn override_text(o: &Override) -> String {
    match o {
        Override::Name(v) | Override::Comment(v) | Override::Exe(v) => {
            format!("{}={v:?}", o.path())
        }
        Override::Args(args) => format!("{}={args:?}", o.path()),
        Override::AppendArgs(args) => format!("{}+={args:?}", o.path()),
        Override::Env(env) => format!("{}={env:?}", o.path()),
        Override::EnvVar(_, v) => format!("{}={v:?}", o.path()),
        Override::BackendOption(_, v) => format!("{}={v}", o.path()),
    }
}

/// `[running:2 completed:1]`, or `[]` when there are no subjobs.
pub(crate) fn counts_text(counts: &StatusCounts) -> String {
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    format!("[{}]", parts.join(" "))
}

/// The status an `active` entry records, or what is wrong with it.
pub(crate) fn status_byte_text(value: &[u8]) -> String {
    match value {
        [byte] => Status::from_index(usize::from(*byte))
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("<bad status byte {byte}>")),
        _ => format!("<bad status {}>", hex(value)),
    }
}
