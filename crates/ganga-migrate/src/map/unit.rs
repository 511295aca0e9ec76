//! One job or subjob file read into a spec and a run state, with notes on what did not fit.

use ganga_core::{JobSpec, RunState, Status, StatusTimes};

use super::backend::backend_of;
use super::job::placeholder_spec;
use super::values::{Item, brief, seq_items, text};
use super::{Ctx, keys};
use crate::pyliteral::PyValue;
use crate::report::Severity;
use crate::time::DateTime;
use crate::xml::{Node, Object};

/// The `Job` attributes of schema 1.6; any other one is flagged and ignored.
const JOB_ATTRIBUTES: &[&str] = &[
    "outputsandbox",
    "comment",
    "id",
    "status",
    "name",
    "do_auto_resubmit",
    "inputsandbox",
    "info",
    "time",
    "application",
    "backend",
    "inputfiles",
    "outputfiles",
    "non_copyable_outputfiles",
    "inputdata",
    "outputdata",
    "splitter",
    "subjobs",
    "postprocessors",
    "virtualization",
    "merger",
    "metadata",
    "parallel_submit",
];

/// One job or subjob, read.
pub(super) struct Unit {
    pub(super) spec: JobSpec,
    pub(super) run: RunState,
    /// `ganga.*` metadata for a job; for a subjob these are counted as dropped.
    pub(super) meta: Vec<(String, String)>,
    /// Facts about output files (LFNs, GUIDs, locations) under `ganga.outputfile.*`.
    pub(super) file_meta: Vec<(String, String)>,
    pub(super) notes: Vec<(Severity, String)>,
    pub(super) dropped: Vec<String>,
    pub(super) ganga_status: String,
    pub(super) active: bool,
    /// For a subjob: the input files it lists itself (Ganga empties them).
    pub(super) own_inputs: usize,
}

impl Unit {
    pub(super) fn read(
        ctx: &Ctx<'_>,
        o: &Object,
        job: u64,
        subjob: Option<u32>,
    ) -> Result<Unit, String> {
        let mut u = Unit {
            spec: placeholder_spec(),
            run: RunState::new(ctx.now),
            meta: Vec::new(),
            file_meta: Vec::new(),
            notes: Vec::new(),
            dropped: Vec::new(),
            ganga_status: String::new(),
            active: false,
            own_inputs: 0,
        };
        u.flag_unknown_attributes(o);
        u.spec.name = text(o, "name");
        u.spec.comment = text(o, "comment");
        u.read_application(ctx, o)?;
        u.read_status(o);
        u.read_info(o);
        u.read_times(ctx, o);
        let backend = o
            .object("backend")
            .ok_or_else(|| "it has no backend".to_owned())?;
        backend_of(backend, &mut u);
        u.read_files(ctx, o, job, subjob);
        // Ganga's auto-resubmit, with Ganga's default limits.
        if o.value("do_auto_resubmit") == Some(&PyValue::Bool(true)) {
            u.spec.auto_resubmit = Some(ganga_core::AutoResubmit::DEFAULT);
        }
        u.flag_without_counterpart(o);
        u.read_metadata(o);
        Ok(u)
    }

    fn flag_unknown_attributes(&mut self, o: &Object) {
        for (name, _) in &o.attrs {
            if !JOB_ATTRIBUTES.contains(&name.as_str()) {
                self.notes.push((
                    Severity::Flagged,
                    format!("attribute `{name}` is not part of Ganga's Job schema: ignored"),
                ));
            }
        }
    }

    /// Input and output data, virtualization, mergers and postprocessors: not kept.
    fn flag_without_counterpart(&mut self, o: &Object) {
        for attr in ["inputdata", "outputdata", "virtualization", "merger"] {
            if let Some(node) = o.get(attr)
                && !matches!(node, Node::Value(PyValue::None))
            {
                self.notes.push((
                    Severity::Flagged,
                    format!(
                        "{attr} {} has no counterpart in ganga-rs: not kept",
                        brief(node)
                    ),
                ));
            }
        }
        if let Some(pp) = o.object("postprocessors") {
            let classes: Vec<String> = match pp.get("process_objects") {
                Some(node) => seq_items(node)
                    .into_iter()
                    .map(|i| match i {
                        Item::Other(w) => w,
                        Item::Value(v) => v.to_string(),
                        Item::File(f) => f,
                    })
                    .collect(),
                None => Vec::new(),
            };
            if !classes.is_empty() {
                self.notes.push((
                    Severity::Flagged,
                    format!(
                        "postprocessors ({}) have no counterpart in ganga-rs: not kept",
                        classes.join(", ")
                    ),
                ));
            }
        }
    }

    /// The user's own metadata, under `ganga.metadata.*`.
    fn read_metadata(&mut self, o: &Object) {
        if let Some(md) = o.object("metadata")
            && let Some(PyValue::Dict(items)) = md.value("data")
        {
            for (k, v) in items {
                let key = k.py_str().unwrap_or_else(|| k.to_string());
                self.meta.push((
                    format!("ganga.metadata.{key}"),
                    v.py_str().unwrap_or_else(|| v.to_string()),
                ));
            }
        }
    }

    /// The status, as ganga-rs's (a status Ganga was still following becomes `failed`).
    fn read_status(&mut self, o: &Object) {
        let status_text = o.str("status").unwrap_or("new").to_owned();
        self.ganga_status = status_text.clone();
        let (status, active) = match status_text.parse::<Status>() {
            Ok(s) if s.is_active() => (Status::Failed, true),
            Ok(s) => (s, false),
            Err(_) => {
                self.notes.push((
                    Severity::Flagged,
                    format!("status `{status_text}` is not one of Ganga's: imported as `unknown`"),
                ));
                (Status::Unknown, false)
            }
        };
        self.run.status = status;
        self.active = active;
        if active {
            self.run.backend.reason = Some(format!(
                "was `{status_text}` in Ganga when migrated: ganga-rs cannot follow Ganga's own \
                 processes; resubmit it to run it again"
            ));
        }
        // `ganga.status` keeps the original only when it differs.
        if active || status.as_str() != status_text {
            self.meta.push((keys::STATUS.into(), status_text.clone()));
        }
    }

    /// What Ganga kept under `info`: the submit count and the like.
    fn read_info(&mut self, o: &Object) {
        if let Some(info) = o.object("info") {
            let counter = info.int("submit_counter").unwrap_or(0);
            self.run.submit_count = u32::try_from(counter.max(0)).unwrap_or(u32::MAX);
            if let Some(uuid) = info.str("uuid")
                && !uuid.is_empty()
            {
                self.meta.push((keys::UUID.into(), uuid.to_owned()));
            }
            if let Some(links) = info.get("monitoring_links") {
                let links: Vec<String> = seq_items(links)
                    .into_iter()
                    .map(|i| match i {
                        Item::Value(v) => v.py_str().unwrap_or_else(|| v.to_string()),
                        Item::File(f) => f,
                        Item::Other(w) => w,
                    })
                    .collect();
                if !links.is_empty() {
                    self.meta
                        .push(("ganga.monitoring_links".into(), links.join("\n")));
                }
            }
            if let Some(m) = info.get("monitor")
                && !matches!(m, Node::Value(PyValue::None))
            {
                self.notes.push((
                    Severity::Flagged,
                    format!("info.monitor {} is not kept", brief(m)),
                ));
            }
        }
    }

    /// The times of its statuses.
    fn read_times(&mut self, ctx: &Ctx<'_>, o: &Object) {
        let active = self.active;
        let status_text = self.ganga_status.clone();
        self.run.times = StatusTimes::default();
        let mut stamps: Vec<(String, PyValue)> = Vec::new();
        if let Some(time) = o.object("time")
            && let Some(PyValue::Dict(items)) = time.value("timestamps")
        {
            for (k, v) in items {
                stamps.push((k.py_str().unwrap_or_else(|| k.to_string()), v.clone()));
            }
        }
        for (key, value) in stamps {
            let Some(dt) = DateTime::from_py(&value) else {
                self.notes.push((
                    Severity::Flagged,
                    format!("timestamp `{key}` is not a date ({value}): ignored"),
                ));
                continue;
            };
            let mapped = match key.as_str() {
                "final" => final_status(&status_text),
                k => k
                    .parse::<Status>()
                    .ok()
                    .filter(|s| !active || !s.is_final()),
            };
            match mapped {
                Some(s) => self.run.times.set(s, dt.timestamp()),
                None => self.meta.push((format!("ganga.time.{key}"), dt.iso())),
            }
        }
        if active {
            self.run.times.set(Status::Failed, ctx.now);
        }
    }
}

/// The status Ganga's `final` stamp marks, given the status the unit has.
fn final_status(status: &str) -> Option<Status> {
    match status {
        "completed" | "completed_frozen" => Some(Status::Completed),
        "failed" | "failed_frozen" => Some(Status::Failed),
        "killed" => Some(Status::Killed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stamp() {
        assert_eq!(final_status("completed_frozen"), Some(Status::Completed));
        assert_eq!(final_status("killed"), Some(Status::Killed));
        assert_eq!(final_status("running"), None);
    }
}
