//! `Store::dump`: every table as text, one line per record (per subjob, for table
//! `subjobs`), in key order: a job's state in `[jobs]`, its spec in `[specs]`, its
//! splitter in `[splitters]`. Stable (no addresses, no clock, maps in key order) so that
//! snapshot tests can diff it.

use std::fmt::{Display, Write};

use ganga_core::{
    BackendInfo, JobId, JobSpec, JobSummary, Options, Override, RunState, Splitter, StatusCounts,
    SubjobIndex,
};
use ganga_records::{Dictionary, JobState};
use heed::RoTxn;

use crate::codec::{
    decode_active, decode_dictionary, decode_spec, decode_splitter, decode_state, decode_subjob,
    decode_summary, split_item,
};
use crate::env::{Table, Tables};
use crate::error::Failure;
use crate::group::{self, first_index, last_index};
use crate::keys;

pub(crate) fn dump(tables: &Tables, txn: &RoTxn) -> Result<String, Failure> {
    let mut out = String::new();
    section(&mut out, "meta", tables.meta, txn, meta_line)?;
    section(&mut out, "jobs", tables.jobs, txn, |key, value| {
        record_line(key, value, |v| {
            decode_state(v).map(|state| state_text(&state))
        })
    })?;
    section(&mut out, "specs", tables.specs, txn, |key, value| {
        record_line(key, value, |v| decode_spec(v).map(|spec| spec_text(&spec)))
    })?;
    section(
        &mut out,
        "splitters",
        tables.splitters,
        txn,
        |key, value| {
            record_line(key, value, |v| {
                decode_splitter(v).map(|s| s.map_or_else(|| "none".to_owned(), |s| s.label()))
            })
        },
    )?;
    section(&mut out, "dicts", tables.dicts, txn, dictionary_line)?;
    subjobs_section(&mut out, tables, txn)?;
    section(&mut out, "summaries", tables.summaries, txn, summary_line)?;
    section(&mut out, "active", tables.active, txn, |key, value| {
        let entry = keys::parse_active(key).map(|(backend, id)| format!("{backend} {id}"));
        let entry = entry.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
        format!("{entry} {}", active_value_text(value))
    })?;
    section(&mut out, "units", tables.units, txn, unit_line)?;
    Ok(out)
}

fn meta_line(key: &[u8], value: &[u8]) -> String {
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
}

fn dictionary_line(key: &[u8], value: &[u8]) -> String {
    let id = keys::parse_job(key).map(|id| id.to_string());
    let id = id.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
    match crate::codec::decode_dict_record(value) {
        Ok((dict, indices)) => {
            let indices = indices.map_or_else(
                || "?".to_owned(),
                |ix| {
                    let r: Vec<String> = ix
                        .ranges()
                        .iter()
                        .map(|(f, l)| format!("{f}-{l}"))
                        .collect();
                    r.join(",")
                },
            );
            format!("{id} {} indices={indices}", dictionary_text(&dict))
        }
        Err(e) => unreadable(&id, &e, value),
    }
}

/// Table subjobs, a line per subjob record, each decoded against its job's dictionary
/// and its master's splitter (read once per job: groups come job by job).
fn subjobs_section(out: &mut String, tables: &Tables, txn: &RoTxn) -> Result<(), Failure> {
    // The dictionary and the master's splitter of the job whose subjobs are being listed.
    let mut current: Option<(JobId, Result<Dictionary, String>, Option<Splitter>)> = None;
    let mut groups = 0;
    let mut lines = Vec::new();
    for entry in tables.subjobs.iter(txn)? {
        let (key, value) = match entry {
            Ok(kv) => kv,
            Err(e @ Failure::Damaged { .. }) => {
                lines.push(format!("DAMAGED ({e})"));
                continue;
            }
            Err(e) => return Err(e),
        };
        groups += 1;
        let Some((job, g)) = keys::parse_group(key) else {
            lines.push(unreadable(
                &format!("<bad key {}>", hex(key)),
                "not a job id and group number",
                value,
            ));
            continue;
        };
        let (first, last) = (first_index(g), last_index(g));
        let slots = match group::parse(value) {
            Ok(slots) => slots,
            Err(e) => {
                lines.push(unreadable(
                    &format!("{job}.{first}–{job}.{last}"),
                    &format!("group: {e}"),
                    value,
                ));
                continue;
            }
        };
        let (dict, splitter) = match &current {
            Some((j, dict, splitter)) if *j == job => (dict, splitter),
            _ => {
                let dict = match tables.dicts.get(txn, &keys::job(job)) {
                    Ok(Some(bytes)) => decode_dictionary(bytes)
                        .map_err(|e| format!("the dictionary of job {job}: {e}")),
                    Ok(None) => Err(format!("job {job} has no dictionary")),
                    Err(e) => Err(format!("the dictionary of job {job}: {e}")),
                };
                let splitter = tables
                    .splitters
                    .get(txn, &keys::job(job))
                    .ok()
                    .flatten()
                    .and_then(|bytes| decode_splitter(bytes).ok().flatten());
                let (_, dict, splitter) = current.insert((job, dict, splitter));
                (&*dict, &*splitter)
            }
        };
        for (k, record) in slots.iter().enumerate() {
            let Some(record) = record else { continue };
            let index = first + k as u32;
            let id = format!("{job}.{index}");
            lines.push(match dict {
                Err(e) => unreadable(&id, e, record),
                Ok(dict) => match subjob_line(index, record, dict, splitter.as_ref()) {
                    Ok(line) => format!("{id} {line}"),
                    Err(e) => unreadable(&id, &e, record),
                },
            });
        }
    }
    let _ = writeln!(out, "[subjobs] {} records in {groups} groups", lines.len());
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    Ok(())
}

fn summary_line(key: &[u8], value: &[u8]) -> String {
    let parsed = keys::parse_job(key);
    let id = parsed.map(|id| id.to_string());
    let id = id.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
    match parsed
        .ok_or_else(|| "not a job id".to_owned())
        .and_then(|p| decode_summary(p, value))
    {
        Ok(summary) => format!("{id} {}", summary_text(&summary)),
        Err(e) => unreadable(&id, &e, value),
    }
}

fn unit_line(key: &[u8], value: &[u8]) -> String {
    let unit = keys::parse_unit(key).map(|(backend, unit)| format!("{backend} {unit}"));
    let unit = unit.unwrap_or_else(|| format!("<bad key {}>", hex(key)));
    match ganga_records::decode_unit_entry(value) {
        Ok(e) => {
            let mut f = Fields::default();
            f.add("status", e.status)
                .add("run", e.run)
                .some("backend_id", e.id.as_deref().map(|s| format!("{s:?}")))
                .some(
                    "native",
                    e.native_state.as_deref().map(|s| format!("{s:?}")),
                )
                .some("since", e.since.map(|t| t.as_millis()));
            format!("{unit} {}", f.done())
        }
        Err(e) => unreadable(&unit, &e.to_string(), value),
    }
}

fn section(
    out: &mut String,
    name: &str,
    table: Table,
    txn: &RoTxn,
    mut line: impl FnMut(&[u8], &[u8]) -> String,
) -> Result<(), Failure> {
    let mut lines = Vec::new();
    for entry in table.iter(txn)? {
        match entry {
            Ok((key, value)) => lines.push(line(key, value)),
            Err(e @ Failure::Damaged { .. }) => lines.push(format!("DAMAGED ({e})")),
            Err(e) => return Err(e),
        }
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

// A record's id or index is its key's (records do not repeat it).

/// A line for a record of a table keyed by job id.
fn record_line(
    key: &[u8],
    value: &[u8],
    text: impl FnOnce(&[u8]) -> Result<String, String>,
) -> String {
    let id = keys::parse_job(key).map(|id| id.to_string());
    let (id, text) = match id {
        Some(id) => (id, text(value)),
        None => (
            format!("<bad key {}>", hex(key)),
            Err("not a job id".to_owned()),
        ),
    };
    match text {
        Ok(text) => format!("{id} {text}"),
        Err(e) => unreadable(&id, &e, value),
    }
}

fn state_text(state: &JobState) -> String {
    let mut f = Fields::default();
    f.add("rev", state.revision);
    run_fields(&mut f, &state.run);
    f.add("subjobs", counts_text(&state.subjobs));
    let metadata: Vec<String> = state
        .metadata
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    f.list("metadata", &metadata, Clone::clone);
    f.done()
}

fn spec_text(spec: &JobSpec) -> String {
    let mut f = Fields::default();
    spec_fields(&mut f, spec);
    f.done()
}

/// A subjob record as text. Overrides the record leaves out, because they are its
/// master's split item, are shown as `split_item=[...]`; those it spells out as
/// `overrides=[...]`.
fn subjob_line(
    index: SubjobIndex,
    record: &[u8],
    dict: &Dictionary,
    splitter: Option<&Splitter>,
) -> Result<String, String> {
    // A record that decodes without its split item spells out its overrides (or has
    // none); one that only decodes with it left them out.
    let (subjob, from_splitter) = match decode_subjob(index, record, dict, None) {
        Ok(subjob) => (subjob, false),
        Err(e) => match split_item(splitter, index) {
            Some(item) => (decode_subjob(index, record, dict, Some(&item))?, true),
            None => return Err(e),
        },
    };
    let mut f = Fields::default();
    run_fields(&mut f, &subjob.run);
    f.list(
        if from_splitter {
            "split_item"
        } else {
            "overrides"
        },
        &subjob.overrides,
        override_text,
    );
    Ok(f.done())
}

fn summary_text(s: &JobSummary) -> String {
    let mut f = Fields::default();
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

/// The base time and the strings, in order (a list of output names is one string, the
/// names joined by NUL).
fn dictionary_text(dict: &Dictionary) -> String {
    let strings: Vec<String> = (0..dict.len())
        .filter_map(|i| u32::try_from(i).ok().and_then(|i| dict.get(i)))
        .map(|s| format!("{s:?}"))
        .collect();
    let mut f = Fields::default();
    f.add("base", dict.base().as_millis())
        .list("strings", &strings, Clone::clone);
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

/// The status and revision an `active` entry records, or what is wrong with it.
pub(crate) fn active_value_text(value: &[u8]) -> String {
    match decode_active(value) {
        Some((status, revision)) => format!("{status} rev={revision}"),
        None => format!("<bad status and revision {}>", hex(value)),
    }
}
