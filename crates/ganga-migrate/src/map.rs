//! Ganga's objects (as parsed XML) into ganga-rs's model: a [`Job`] with its [`Subjob`]s,
//! plus what could not be mapped (flagged), what was left behind by design (counted) and
//! which units were active in Ganga.
//!
//! A subjob is stored as what differs from its master: its overrides are derived by
//! comparing its definition with the master's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ganga_core::{
    Application, BackendConfig, BackendInfo, Executable, Job, JobSpec, Options, Override, RunState,
    SplitAttribute, Splitter, Status, StatusCounts, StatusTimes, Subjob, Timestamp, Value,
};

use crate::pyliteral::PyValue;
use crate::repo::UserRepo;
use crate::report::Severity;
use crate::time::DateTime;
use crate::xml::{Node, Object};

/// Metadata keys the migration writes (all start with `ganga.`).
pub mod keys {
    pub const GANGADIR: &str = "ganga.gangadir";
    pub const USER: &str = "ganga.user";
    pub const REGISTRY: &str = "ganga.registry";
    pub const ID: &str = "ganga.id";
    pub const UUID: &str = "ganga.uuid";
    pub const STATUS: &str = "ganga.status";
    pub const JOBTREE: &str = "ganga.jobtree";
    /// Present while a job's subjobs are being written in several transactions.
    pub const INCOMPLETE: &str = "ganga.migration.incomplete";
}

/// Schema versions of the classes this tool interprets, as Ganga 8.7.12 writes them. A
/// file is read when its major version is the same and its minor is not newer (Ganga's
/// own rule).
const KNOWN_VERSIONS: &[(&str, u32, u32)] = &[
    ("Job", 1, 6),
    ("JobTemplate", 1, 6),
    ("JobInfo", 0, 1),
    ("JobTime", 0, 0),
    ("Executable", 2, 0),
    ("File", 1, 1),
    ("ShareDir", 1, 0),
    ("GangaList", 1, 0),
    ("Local", 1, 2),
    ("LSF", 1, 0),
    ("PBS", 1, 0),
    ("SGE", 1, 0),
    ("Slurm", 1, 0),
    ("Condor", 1, 0),
    ("CondorRequirements", 1, 0),
    ("Interactive", 1, 0),
    ("Dirac", 3, 2),
    ("DiracProxy", 1, 0),
    ("LocalFile", 1, 1),
    ("DiracFile", 1, 1),
    ("MassStorageFile", 1, 1),
    ("ArgSplitter", 1, 0),
    ("GenericSplitter", 1, 0),
    ("MultiPostProcessor", 1, 0),
    ("MetadataDict", 1, 0),
];

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

/// Where an object comes from.
pub(crate) struct Ctx<'a> {
    pub user: &'a UserRepo,
    /// `jobs`, `templates` or `box`.
    pub registry: &'a str,
    /// The gangadir, canonical, as recorded in `ganga.gangadir`.
    pub gangadir: &'a str,
    pub now: Timestamp,
}

/// One job, mapped. Its id is set by the caller.
#[derive(Debug)]
pub(crate) struct MappedJob {
    pub job: Job,
    pub subjobs: Vec<Subjob>,
    /// (object, severity, reason); object is `12` or `12.3`.
    pub problems: Vec<(String, Severity, String)>,
    /// (object, Ganga status) of units that were active in Ganga.
    pub active: Vec<(String, String)>,
    /// What was left behind by design.
    pub dropped: Vec<String>,
    pub ganga_status: String,
    /// Ganga output directories to bring over: (subjob index or None, path).
    pub outputs: Vec<(Option<u32>, PathBuf)>,
}

/// A subjob file as the caller read it: its object, or why it could not be read.
pub(crate) struct SubjobSource {
    pub index: u32,
    pub object: Result<Object, String>,
    /// Set when `data~` was used.
    pub fell_back: Option<String>,
}

/// Maps a job (or template, or box job) and its subjobs, given one by one so that a job
/// with many subjobs never holds all their parsed files at once.
pub(crate) struct JobBuilder<'c> {
    ctx: &'c Ctx<'c>,
    ganga_id: u64,
    master: Unit,
    /// Subjobs written inline in the master's file (repositories older than Ganga 6).
    inline: Vec<Object>,
    counts: StatusCounts,
    folders: Vec<String>,
    out: MappedJob,
}

impl<'c> JobBuilder<'c> {
    /// Reads the master. `Err` means the job is skipped, with the reason.
    pub(crate) fn new(
        ctx: &'c Ctx<'c>,
        ganga_id: u64,
        object: &Object,
        folders: &[String],
    ) -> Result<JobBuilder<'c>, String> {
        if object.category != "jobs" || !matches!(object.class.as_str(), "Job" | "JobTemplate") {
            return Err(format!(
                "it is a {} (category {}), not a job",
                object.class, object.category
            ));
        }
        check_versions(object)?;
        let mut out = MappedJob {
            job: Job {
                id: 0,
                revision: 0,
                spec: std::sync::Arc::new(placeholder_spec()),
                run: RunState::new(ctx.now),
                subjobs: StatusCounts::default(),
                metadata: BTreeMap::new(),
            },
            subjobs: Vec::new(),
            problems: Vec::new(),
            active: Vec::new(),
            dropped: Vec::new(),
            ganga_status: String::new(),
            outputs: Vec::new(),
        };
        if let Some(id) = object.int("id")
            && u64::try_from(id).ok() != Some(ganga_id)
        {
            out.problems.push((
                ganga_id.to_string(),
                Severity::Flagged,
                format!("its XML says it is job {id}; its directory (kept) says {ganga_id}"),
            ));
        }
        let mut master = Unit::read(ctx, object, ganga_id, None)?;
        out.ganga_status = master.ganga_status.clone();
        let (splitter, notes) = splitter_of(object);
        master.notes.extend(notes);
        master.spec.splitter = splitter;
        let inline = match object.get("subjobs") {
            Some(Node::Seq(items)) => items
                .iter()
                .filter_map(|n| match n {
                    Node::Object(o) => Some(o.as_ref().clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(JobBuilder {
            ctx,
            ganga_id,
            master,
            inline,
            counts: StatusCounts::default(),
            folders: folders.to_vec(),
            out,
        })
    }

    /// Adds the next subjob (in index order).
    pub(crate) fn add_subjob(&mut self, source: SubjobSource) {
        let (ctx, ganga_id) = (self.ctx, self.ganga_id);
        let out = &mut self.out;
        let sref = format!("{ganga_id}.{}", source.index);
        if let Some(why) = &source.fell_back {
            out.problems.push((
                sref.clone(),
                Severity::Flagged,
                format!("read from data~ because {why}"),
            ));
        }
        let read = source.object.and_then(|o| {
            check_versions(&o)?;
            if o.class != "Job" {
                return Err(format!("a {} where a subjob (Job) was expected", o.class));
            }
            Unit::read(ctx, &o, ganga_id, Some(source.index))
        });
        let subjob = match read {
            Ok(sub) => subjob_of(out, &self.master, sub, source.index, &sref),
            Err(why) => {
                // As far as possible: a placeholder the user can see, never run.
                out.problems.push((
                    sref,
                    Severity::Flagged,
                    format!("subjob imported as `incomplete` (its own definition is lost): {why}"),
                ));
                let mut run = RunState::new(ctx.now);
                run.status = Status::Incomplete;
                run.backend.reason =
                    Some(format!("could not be read from Ganga's repository: {why}"));
                Subjob {
                    index: source.index,
                    overrides: Vec::new(),
                    run,
                }
            }
        };
        self.counts.add(subjob.run.status, 1);
        out.outputs.push((
            Some(subjob.index),
            ctx.user.output_dir(ganga_id, Some(subjob.index)),
        ));
        out.subjobs.push(subjob);
    }

    /// The job, with its subjobs. `Err` means the job is skipped, with the reason.
    pub(crate) fn finish(mut self) -> Result<MappedJob, String> {
        let ctx = self.ctx;
        let ganga_id = self.ganga_id;
        if self.out.subjobs.is_empty() && !self.inline.is_empty() {
            for (i, o) in std::mem::take(&mut self.inline).into_iter().enumerate() {
                self.add_subjob(SubjobSource {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    object: Ok(o),
                    fell_back: None,
                });
            }
        }
        let me = ganga_id.to_string();
        let mut out = self.out;
        let mut unit = self.master;
        // Only jobs have a workspace (keyed by job id); a master's own output directory
        // holds merged results, if any.
        if ctx.registry == "jobs" {
            out.outputs
                .push((None, ctx.user.output_dir(ganga_id, None)));
        } else {
            out.outputs.clear();
        }
        for (expected, s) in out.subjobs.iter().enumerate() {
            if s.index as usize != expected {
                return Err(format!(
                    "its subjob directories are not numbered 0..{}: subjob {expected} is missing; Ganga cannot load it either",
                    out.subjobs.len()
                ));
            }
        }

        let mut metadata = BTreeMap::new();
        metadata.insert(keys::GANGADIR.to_owned(), ctx.gangadir.to_owned());
        metadata.insert(keys::USER.to_owned(), ctx.user.user.clone());
        metadata.insert(keys::REGISTRY.to_owned(), ctx.registry.to_owned());
        metadata.insert(keys::ID.to_owned(), ganga_id.to_string());
        if !self.folders.is_empty() {
            metadata.insert(keys::JOBTREE.to_owned(), self.folders.join("\n"));
        }
        for (k, v) in unit.meta.drain(..) {
            metadata.insert(k, v);
        }
        for (k, v) in unit.file_meta.drain(..) {
            metadata.insert(k, v);
        }
        // Subjob file facts (LFNs...) were gathered in the job's metadata meanwhile.
        for (k, v) in std::mem::take(&mut out.job.metadata) {
            metadata.insert(k, v);
        }
        // The job's own problems before its subjobs'.
        let own: Vec<_> = unit
            .notes
            .drain(..)
            .map(|(sev, note)| (me.clone(), sev, note))
            .collect();
        let at = out.problems.iter().take_while(|(o, _, _)| *o == me).count();
        out.problems.splice(at..at, own);
        out.dropped.append(&mut unit.dropped);
        if unit.active {
            out.active
                .insert(0, (me.clone(), unit.ganga_status.clone()));
        }
        if matches!(ctx.registry, "templates" | "box") {
            if unit.run.status != Status::Template {
                metadata.insert(keys::STATUS.to_owned(), unit.ganga_status.clone());
            }
            unit.run.status = Status::Template;
        }
        out.job.spec = std::sync::Arc::new(unit.spec);
        out.job.run = unit.run;
        out.job.subjobs = self.counts;
        out.job.metadata = metadata;
        Ok(out)
    }
}

fn placeholder_spec() -> JobSpec {
    JobSpec {
        name: String::new(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
        }),
        backend: BackendConfig::named("local"),
        input_files: Vec::new(),
        output_files: Vec::new(),
        splitter: None,
        auto_resubmit: None,
    }
}

/// Refuses an object any of whose classes has a schema version this tool does not know
/// (Ganga loads such a job as incomplete).
fn check_versions(object: &Object) -> Result<(), String> {
    let mut problem = None;
    object.walk(&mut |o| {
        if problem.is_some() {
            return;
        }
        if let Some(&(_, major, minor)) = KNOWN_VERSIONS.iter().find(|(c, _, _)| *c == o.class) {
            let ok = o
                .schema_version()
                .is_some_and(|(fm, fmin)| fm == major && fmin <= minor);
            if !ok {
                problem = Some(format!(
                    "{} has schema version {}, which this migration does not know (it reads {}.{} and older minor versions)",
                    o.class, o.version, major, minor
                ));
            }
        }
    });
    problem.map_or(Ok(()), Err)
}

/// One job or subjob, read.
struct Unit {
    spec: JobSpec,
    run: RunState,
    /// `ganga.*` metadata for a job; for a subjob these are counted as dropped.
    meta: Vec<(String, String)>,
    /// Facts about output files (LFNs, GUIDs, locations) under `ganga.outputfile.*`.
    file_meta: Vec<(String, String)>,
    notes: Vec<(Severity, String)>,
    dropped: Vec<String>,
    ganga_status: String,
    active: bool,
    /// For a subjob: the input files it lists itself (Ganga empties them).
    own_inputs: usize,
}

impl Unit {
    fn read(ctx: &Ctx<'_>, o: &Object, job: u64, subjob: Option<u32>) -> Result<Unit, String> {
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
        let sub = subjob.is_some();
        for (name, _) in &o.attrs {
            if !JOB_ATTRIBUTES.contains(&name.as_str()) {
                u.notes.push((
                    Severity::Flagged,
                    format!("attribute `{name}` is not part of Ganga's Job schema: ignored"),
                ));
            }
        }
        u.spec.name = text(o, "name");
        u.spec.comment = text(o, "comment");

        u.read_application(ctx, o)?;
        u.read_status(o);
        u.read_info(o);
        u.read_times(ctx, o);

        // Backend.
        let backend = o
            .object("backend")
            .ok_or_else(|| "it has no backend".to_owned())?;
        backend_of(backend, &mut u);

        // Files.
        let unit_output = output_suffix(&ctx.user.user, job, subjob);
        for attr in ["outputfiles", "non_copyable_outputfiles"] {
            if let Some(node) = o.get(attr) {
                output_files(node, &unit_output, &mut u);
            }
        }
        if let Some(node) = o.get("outputsandbox") {
            for item in seq_items(node) {
                if let Item::Value(v) = item
                    && let Some(p) = v.py_str()
                    && !u.spec.output_files.contains(&p)
                {
                    u.spec.output_files.push(p);
                }
            }
        }
        let before = u.spec.input_files.len();
        if let Some(node) = o.get("inputfiles") {
            input_files(node, &mut u);
        }
        if let Some(node) = o.get("inputsandbox") {
            input_files(node, &mut u);
        }
        if sub {
            u.own_inputs = u.spec.input_files.len() - before;
        }

        // Ganga's auto-resubmit, with Ganga's default limits.
        if o.value("do_auto_resubmit") == Some(&PyValue::Bool(true)) {
            u.spec.auto_resubmit = Some(ganga_core::AutoResubmit::DEFAULT);
        }

        // What has no counterpart.
        for attr in ["inputdata", "outputdata", "virtualization", "merger"] {
            if let Some(node) = o.get(attr)
                && !matches!(node, Node::Value(PyValue::None))
            {
                u.notes.push((
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
                u.notes.push((
                    Severity::Flagged,
                    format!(
                        "postprocessors ({}) have no counterpart in ganga-rs: not kept",
                        classes.join(", ")
                    ),
                ));
            }
        }
        if let Some(md) = o.object("metadata")
            && let Some(PyValue::Dict(items)) = md.value("data")
        {
            for (k, v) in items {
                let key = k.py_str().unwrap_or_else(|| k.to_string());
                u.meta.push((
                    format!("ganga.metadata.{key}"),
                    v.py_str().unwrap_or_else(|| v.to_string()),
                ));
            }
        }
        Ok(u)
    }

    /// The application: only an Executable has a counterpart.
    fn read_application(&mut self, ctx: &Ctx<'_>, o: &Object) -> Result<(), String> {
        let app = o
            .object("application")
            .ok_or_else(|| "it has no application".to_owned())?;
        if app.class != "Executable" {
            return Err(format!(
                "its application is a {} ({}); ganga-rs knows only Executable",
                app.class, app.category
            ));
        }
        let mut exe = Executable {
            exe: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
        };
        match app.get("exe") {
            Some(Node::Value(PyValue::Str(s))) => exe.exe = s.clone(),
            Some(Node::Object(f)) if f.class == "File" => exe.exe = text(f, "name"),
            Some(Node::Value(call @ PyValue::Call { .. })) if call_name(call) == "File" => {
                exe.exe = call
                    .call_arg("name", 0)
                    .and_then(|v| v.py_str())
                    .unwrap_or_default();
            }
            None => exe.exe = "echo".to_owned(),
            Some(other) => {
                return Err(format!(
                    "application.exe is neither a string nor a File: {}",
                    brief(other)
                ));
            }
        }
        if matches!(
            app.get("exe"),
            Some(Node::Object(_) | Node::Value(PyValue::Call { .. }))
        ) && let Some(prepared) = app.object("is_prepared")
            && let Some(dir) = prepared.str("name")
        {
            let file = Path::new(&exe.exe)
                .file_name()
                .map(|n| ctx.user.shared.join(dir).join(n));
            if let Some(file) = file.filter(|f| f.is_file()) {
                self.meta
                    .push(("ganga.exe.prepared".into(), file.display().to_string()));
            }
        }
        match app.get("args") {
            None => exe.args = vec!["Hello World".to_owned()],
            Some(node) => {
                for item in seq_items(node) {
                    match item {
                        Item::Value(v) => match v.py_str() {
                            Some(s) => exe.args.push(s),
                            None => {
                                self.notes.push((
                                    Severity::Flagged,
                                    format!("argument {v} is not a word: kept as its text"),
                                ));
                                exe.args.push(v.to_string());
                            }
                        },
                        Item::File(path) => {
                            // Ganga ships a File argument and passes its base name.
                            let base = Path::new(&path)
                                .file_name()
                                .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
                            exe.args.push(base);
                            self.spec.input_files.push(PathBuf::from(&path));
                        }
                        Item::Other(what) => {
                            return Err(format!("application.args holds {what}"));
                        }
                    }
                }
            }
        }
        match app.value("env") {
            None | Some(PyValue::None) => {}
            Some(PyValue::Dict(items)) => {
                for (k, v) in items {
                    let key = k.py_str().unwrap_or_else(|| k.to_string());
                    let value = v.py_str().unwrap_or_else(|| {
                        self.notes.push((
                            Severity::Flagged,
                            format!("environment value of {key} is not a string: kept as its text"),
                        ));
                        v.to_string()
                    });
                    exe.env.insert(key, value);
                }
            }
            Some(other) => return Err(format!("application.env is not a dict: {other}")),
        }
        if let Some(p) = app.str("platform")
            && p != "ANY"
        {
            self.meta.push(("ganga.platform".into(), p.to_owned()));
        }
        for extra in &app.attrs {
            if !matches!(
                extra.0.as_str(),
                "exe" | "args" | "env" | "platform" | "is_prepared" | "hash"
            ) {
                self.notes.push((
                    Severity::Flagged,
                    format!(
                        "application attribute `{}` has no counterpart: ignored",
                        extra.0
                    ),
                ));
            }
        }
        if app.value("hash").is_some_and(|h| !h.is_none()) {
            self.dropped
                .push("Executable.hash (Ganga's record of a prepared application)".into());
        }
        self.spec.application = Application::Executable(exe);
        Ok(())
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

fn call_name(v: &PyValue) -> &str {
    match v {
        PyValue::Call { name, .. } => name.rsplit('.').next().unwrap_or(name),
        _ => "",
    }
}

fn text(o: &Object, attr: &str) -> String {
    match o.value(attr) {
        Some(PyValue::None) | None => String::new(),
        Some(v) => v.py_str().unwrap_or_else(|| v.to_string()),
    }
}

fn brief(node: &Node) -> String {
    match node {
        Node::Value(v) => {
            let s = v.to_string();
            if s.chars().count() > 80 {
                format!("{}…", s.chars().take(80).collect::<String>())
            } else {
                s
            }
        }
        Node::Seq(items) => format!("(a list of {})", items.len()),
        Node::Object(o) => format!("({})", o.class),
    }
}

enum Item {
    Value(PyValue),
    /// A `File` (object or `File(...)` value): its path.
    File(String),
    /// Anything else, described.
    Other(String),
}

/// The items of a `<sequence>` or of a list value.
fn seq_items(node: &Node) -> Vec<Item> {
    let one = |v: &PyValue| -> Item {
        if call_name(v) == "File" {
            Item::File(
                v.call_arg("name", 0)
                    .and_then(|n| n.py_str())
                    .unwrap_or_default(),
            )
        } else {
            Item::Value(v.clone())
        }
    };
    match node {
        Node::Value(PyValue::None) => Vec::new(),
        Node::Value(v) => match v.items() {
            Some(items) => items.iter().map(one).collect(),
            None => vec![one(v)],
        },
        Node::Seq(items) => items
            .iter()
            .map(|n| match n {
                Node::Value(v) => one(v),
                Node::Object(o) if o.class == "File" => Item::File(text(o, "name")),
                Node::Object(o) => Item::Other(o.class.clone()),
                Node::Seq(_) => Item::Other("a nested list".into()),
            })
            .collect(),
        Node::Object(o) if o.class == "GangaList" => {
            o.get("_list").map_or_else(Vec::new, seq_items)
        }
        Node::Object(o) if o.class == "File" => vec![Item::File(text(o, "name"))],
        Node::Object(o) => vec![Item::Other(o.class.clone())],
    }
}

/// A Ganga value as a ganga-rs [`Value`]; `None` for Python's None.
fn to_value(v: &PyValue) -> Option<Value> {
    Some(match v {
        PyValue::None => return None,
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::Int(i) => Value::Integer(*i),
        PyValue::BigInt(s) => Value::String(s.clone()),
        PyValue::Float(x) => Value::Float(*x),
        PyValue::Str(s) => Value::String(s.clone()),
        PyValue::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => {
            Value::List(items.iter().filter_map(to_value).collect())
        }
        PyValue::Dict(items) => Value::Table(
            items
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.py_str().unwrap_or_else(|| k.to_string()), to_value(v)?))
                })
                .collect(),
        ),
        PyValue::Name(_) | PyValue::Call { .. } => Value::String(v.to_string()),
    })
}

fn node_value(node: &Node) -> Option<Value> {
    match node {
        Node::Value(v) => to_value(v),
        Node::Seq(items) => Some(Value::List(items.iter().filter_map(node_value).collect())),
        Node::Object(o) => {
            let mut t: BTreeMap<String, Value> = o
                .attrs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), node_value(v)?)))
                .collect();
            t.insert("class".into(), Value::String(o.class.clone()));
            Some(Value::Table(t))
        }
    }
}

/// Which backend attributes are run state (mapped to [`BackendInfo`] or dropped), and
/// the defaults of the configuration ones (not stored when unchanged).
struct BackendShape {
    /// Attributes describing a run, not a configuration.
    run: &'static [&'static str],
    /// Configuration attributes whose value is the default, as Python text.
    defaults: &'static [(&'static str, &'static str)],
}

fn shape(class: &str) -> Option<BackendShape> {
    Some(match class {
        "Local" => BackendShape {
            run: &[
                "id",
                "status",
                "exitcode",
                "workdir",
                "actualCE",
                "wrapper_pid",
            ],
            defaults: &[
                ("nice", "0"),
                ("force_parallel", "False"),
                ("batchsize", "-1"),
            ],
        },
        "LSF" | "PBS" | "SGE" | "Slurm" => BackendShape {
            run: &["id", "exitcode", "status", "actualqueue", "actualCE"],
            defaults: &[("queue", "''"), ("extraopts", "''")],
        },
        "Condor" => BackendShape {
            run: &["id", "status", "cputime", "actualCE"],
            defaults: &[
                ("env", "{}"),
                ("getenv", "'False'"),
                ("rank", "'Memory'"),
                ("submit_options", "[]"),
                ("shared_filesystem", "True"),
                ("universe", "'vanilla'"),
                ("globusscheduler", "''"),
                ("globus_rsl", "''"),
                ("spool", "True"),
                ("accounting_group", "''"),
                ("cdf_options", "{}"),
            ],
        },
        "Dirac" => BackendShape {
            run: &[
                "id",
                "status",
                "actualCE",
                "normCPUTime",
                "statusInfo",
                "extraInfo",
            ],
            defaults: &[
                ("diracOpts", "''"),
                ("settings", "{'CPUTime': 1000000}"),
                ("minProcessors", "1"),
                ("maxProcessors", "1"),
                ("blockSubmit", "True"),
                ("downloadSandbox", "True"),
                ("unpackOutputSandbox", "True"),
                ("finaliseOnMaster", "False"),
            ],
        },
        "Interactive" => BackendShape {
            run: &["id", "status", "exitcode", "workdir", "actualCE"],
            defaults: &[],
        },
        _ => return None,
    })
}

fn nonempty(v: Option<&PyValue>) -> Option<String> {
    match v? {
        PyValue::None => None,
        PyValue::Str(s) if s.is_empty() => None,
        other => other.py_str(),
    }
}

fn backend_of(b: &Object, u: &mut Unit) {
    let known = shape(&b.class);
    let kind = b.class.to_lowercase();
    if known.is_none() {
        u.notes.push((
            Severity::Flagged,
            format!(
                "backend class {} is not one the migration knows: imported as backend `{kind}` with its attributes as options",
                b.class
            ),
        ));
    }
    let run_attrs: &[&str] = known.as_ref().map_or(
        &[
            "id",
            "status",
            "exitcode",
            "actualCE",
            "workdir",
            "wrapper_pid",
        ],
        |s| s.run,
    );
    let mut options = Options::new();
    for (name, node) in &b.attrs {
        if run_attrs.contains(&name.as_str()) {
            continue;
        }
        if let Some(shape) = &known
            && let Some((_, default)) = shape.defaults.iter().find(|(n, _)| n == name)
            && let Node::Value(v) = node
            && crate::pyliteral::parse(default).is_ok_and(|d| &d == v)
        {
            continue;
        }
        if b.class == "Dirac"
            && name == "credential_requirements"
            && let Node::Object(cred) = node
        {
            // Only what the user chose: the proxy group.
            if let Some(group) = nonempty(cred.value("group")) {
                options.insert("credential_group".into(), Value::String(group));
            }
            continue;
        }
        if let Some(v) = node_value(node) {
            options.insert(name.clone(), v);
        }
    }
    let mut info = BackendInfo::default();
    match b.value("id") {
        Some(PyValue::Int(i)) if *i > 0 => info.id = Some(i.to_string()),
        Some(PyValue::Int(_) | PyValue::None) | None => {}
        Some(v) => info.id = nonempty(Some(v)),
    }
    info.exit_code = b.int("exitcode").and_then(|c| i32::try_from(c).ok());
    info.actual_ce = nonempty(b.value("actualCE"));
    if b.class != "Interactive" && b.class != "Local" {
        info.native_state = nonempty(b.value("status"));
    }
    if b.class == "Dirac" {
        let minor = nonempty(b.value("statusInfo"));
        let app = nonempty(b.value("extraInfo"));
        let parts: Vec<String> = [minor.clone(), app.clone()].into_iter().flatten().collect();
        if !parts.is_empty() && u.run.backend.reason.is_none() {
            info.reason = Some(format!("DIRAC: {}", parts.join("; ")));
        }
        info.exit_code = [app, minor].iter().flatten().find_map(|s| exit_code_in(s));
        if let Some(cpu) = nonempty(b.value("normCPUTime")) {
            u.meta.push(("ganga.backend.normCPUTime".into(), cpu));
        }
    }
    for attr in ["actualqueue", "cputime"] {
        if let Some(v) = nonempty(b.value(attr)) {
            u.meta.push((format!("ganga.backend.{attr}"), v));
        }
    }
    if b.class == "Local" || b.class == "Interactive" {
        if nonempty(b.value("workdir")).is_some() {
            u.dropped.push(format!(
                "{}.workdir (a directory removed after the run)",
                b.class
            ));
        }
        if b.get("wrapper_pid")
            .is_some_and(|n| !matches!(n, Node::Value(PyValue::Int(-1))))
        {
            u.dropped
                .push("Local.wrapper_pid (a process id of the past)".into());
        }
    }
    if let Some(reason) = u.run.backend.reason.take() {
        info.reason = Some(reason);
    }
    u.run.backend = info;
    u.spec.backend = BackendConfig { kind, options };
}

/// The exit code a DIRAC status text mentions (`Failed with exit code 3`), if any.
fn exit_code_in(s: &str) -> Option<i32> {
    let lower = s.to_lowercase();
    for marker in ["exit code", "exit status", "exitcode"] {
        if let Some(pos) = lower.find(marker) {
            let rest = lower[pos + marker.len()..].trim_start_matches([' ', ':', '=']);
            let end = rest
                .char_indices()
                .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
                .map_or(rest.len(), |(i, _)| i);
            if let Ok(code) = rest[..end].parse() {
                return Some(code);
            }
        }
    }
    None
}

/// `workspace/<user>/LocalXML/<id>[/<sjid>]/output`: how a retrieved file's `localDir`
/// ends when it is in the unit's own output directory.
fn output_suffix(user: &str, job: u64, subjob: Option<u32>) -> String {
    match subjob {
        Some(s) => format!("workspace/{user}/LocalXML/{job}/{s}/output"),
        None => format!("workspace/{user}/LocalXML/{job}/output"),
    }
}

struct GFile {
    class: String,
    pattern: String,
    local_dir: Option<String>,
    lfn: Option<String>,
    guid: Option<String>,
    locations: Vec<String>,
    subfiles: Vec<GFile>,
}

fn gfile(o: &Object) -> GFile {
    let locations = o.get("locations").map_or_else(Vec::new, |n| {
        seq_items(n)
            .into_iter()
            .filter_map(|i| match i {
                Item::Value(v) => v.py_str(),
                _ => None,
            })
            .collect()
    });
    let subfiles = match o.get("subfiles") {
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(|n| match n {
                Node::Object(s) => Some(gfile(s)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    GFile {
        class: o.class.clone(),
        pattern: text(o, "namePattern"),
        local_dir: nonempty(o.value("localDir")),
        lfn: nonempty(o.value("lfn")),
        guid: nonempty(o.value("guid")),
        locations,
        subfiles,
    }
}

fn output_files(node: &Node, unit_output: &str, u: &mut Unit) {
    let Node::Seq(items) = node else {
        if !matches!(node, Node::Value(PyValue::None)) {
            u.notes.push((
                Severity::Flagged,
                format!("output files {}: not understood", brief(node)),
            ));
        }
        return;
    };
    for item in items {
        let f = match item {
            Node::Object(o) => gfile(o),
            Node::Value(v) => match v.py_str() {
                None => match call_as_object(v) {
                    Some(o) => gfile(&o),
                    None => continue,
                },
                Some(p) => GFile {
                    class: "str".into(),
                    pattern: p,
                    local_dir: None,
                    lfn: None,
                    guid: None,
                    locations: Vec::new(),
                    subfiles: Vec::new(),
                },
            },
            Node::Seq(_) => continue,
        };
        if !matches!(
            f.class.as_str(),
            "LocalFile" | "DiracFile" | "MassStorageFile" | "str"
        ) {
            u.notes.push((
                Severity::Flagged,
                format!(
                    "output file {}('{}'): ganga-rs collects it as a local pattern only",
                    f.class, f.pattern
                ),
            ));
        }
        if !f.pattern.is_empty() && !u.spec.output_files.contains(&f.pattern) {
            u.spec.output_files.push(f.pattern.clone());
        }
        // What was retrieved: the sub-files, or the file itself when it carries a location.
        let retrieved: Vec<&GFile> = if f.subfiles.is_empty() {
            if f.lfn.is_some() || !f.locations.is_empty() {
                vec![&f]
            } else {
                Vec::new()
            }
        } else {
            f.subfiles.iter().collect()
        };
        for r in retrieved {
            let name = &r.pattern;
            let local_here = r
                .local_dir
                .as_deref()
                .is_some_and(|d| d.trim_end_matches('/').ends_with(unit_output));
            if local_here && !u.run.outputs.contains(name) {
                u.run.outputs.push(name.clone());
            }
            let key = |what: &str| format!("ganga.outputfile.{name}.{what}");
            if let Some(lfn) = &r.lfn {
                u.file_meta.push((key("lfn"), lfn.clone()));
            }
            if let Some(guid) = &r.guid {
                u.file_meta.push((key("guid"), guid.clone()));
            }
            if !r.locations.is_empty() {
                u.file_meta.push((key("locations"), r.locations.join(", ")));
            }
            if let Some(dir) = &r.local_dir
                && !local_here
            {
                u.file_meta.push((key("local_dir"), dir.clone()));
            }
        }
    }
    u.run.outputs.sort();
}

/// A constructor call Ganga may write in a value (`LocalFile('a.txt')`, `File(name=...)`)
/// as the object it makes: keyword arguments are attributes, the first positional one is
/// the file's name.
fn call_as_object(v: &PyValue) -> Option<Object> {
    let PyValue::Call { args, kwargs, .. } = v else {
        return None;
    };
    let class = call_name(v).to_owned();
    let first = match class.as_str() {
        "File" | "ShareDir" => "name",
        c if c.ends_with("File") => "namePattern",
        _ => return None,
    };
    let mut attrs: Vec<(String, Node)> = kwargs
        .iter()
        .map(|(k, v)| (k.clone(), Node::Value(v.clone())))
        .collect();
    if let Some(a) = args.first()
        && !kwargs.iter().any(|(k, _)| k == first)
    {
        attrs.push((first.to_owned(), Node::Value(a.clone())));
    }
    Some(Object {
        class,
        category: "gangafiles".into(),
        version: String::new(),
        attrs,
    })
}

fn input_files(node: &Node, u: &mut Unit) {
    let items: Vec<&Node> = match node {
        Node::Seq(items) => items.iter().collect(),
        Node::Value(PyValue::None) => return,
        other => vec![other],
    };
    for item in items {
        match item {
            Node::Object(o) if o.class == "LocalFile" => {
                let name = text(o, "namePattern");
                let dir = text(o, "localDir");
                u.spec.input_files.push(if dir.is_empty() {
                    PathBuf::from(name)
                } else {
                    Path::new(&dir).join(name)
                });
            }
            Node::Object(o) if o.class == "File" => {
                u.spec.input_files.push(PathBuf::from(text(o, "name")))
            }
            Node::Object(o) => {
                let f = gfile(o);
                let what = f
                    .lfn
                    .as_ref()
                    .map_or_else(|| f.pattern.clone(), |l| format!("LFN:{l}"));
                let n = u
                    .meta
                    .iter()
                    .filter(|(k, _)| k.starts_with("ganga.inputfile."))
                    .count();
                u.meta.push((
                    format!("ganga.inputfile.{n}"),
                    format!("{}: {what}", o.class),
                ));
                u.notes.push((
                    Severity::Flagged,
                    format!(
                        "input file {}({what}) cannot be fetched by ganga-rs: kept as metadata ganga.inputfile.{n}",
                        o.class
                    ),
                ));
            }
            Node::Value(v) => {
                if let Some(p) = v.py_str() {
                    u.spec.input_files.push(PathBuf::from(p));
                } else if let Some(o) = call_as_object(v) {
                    input_files(&Node::Object(Box::new(o)), u);
                }
            }
            Node::Seq(_) => {}
        }
    }
}

/// The master's splitter, or `None` (with a note) when it has no counterpart.
fn splitter_of(o: &Object) -> (Option<Splitter>, Vec<(Severity, String)>) {
    let mut notes = Vec::new();
    let Some(s) = o.object("splitter") else {
        return (None, notes);
    };
    let splitter = match s.class.as_str() {
        "ArgSplitter" => {
            let mut args = Vec::new();
            let mut bad = false;
            if let Some(node) = s.get("args") {
                for item in seq_node_lists(node) {
                    match item {
                        Some(words) => args.push(words),
                        None => bad = true,
                    }
                }
            }
            if bad {
                notes.push((
                    Severity::Flagged,
                    "ArgSplitter args hold something other than lists of words: splitter not kept (the subjobs keep their args)".into(),
                ));
                return (None, notes);
            }
            let append = s.value("append") == Some(&PyValue::Bool(true));
            Some(Splitter::Args {
                args: args.into(),
                append,
            })
        }
        "GenericSplitter" => {
            let mut attributes = Vec::new();
            match s.value("multi_attrs") {
                Some(PyValue::Dict(items)) if !items.is_empty() => {
                    for (k, v) in items {
                        attributes.push(SplitAttribute {
                            path: k.py_str().unwrap_or_else(|| k.to_string()),
                            values: v.items().map_or_else(Vec::new, |vs| {
                                vs.iter().filter_map(to_value).collect()
                            }),
                        });
                    }
                }
                _ => {
                    let path = s.str("attribute").unwrap_or_default().to_owned();
                    let values = s.get("values").map_or_else(Vec::new, |n| match n {
                        Node::Seq(items) => items.iter().filter_map(node_value).collect(),
                        Node::Value(v) => v
                            .items()
                            .map_or_else(Vec::new, |vs| vs.iter().filter_map(to_value).collect()),
                        Node::Object(_) => Vec::new(),
                    });
                    attributes.push(SplitAttribute { path, values });
                }
            }
            Some(Splitter::Generic { attributes })
        }
        other => {
            notes.push((
                Severity::Flagged,
                format!("splitter {other} has no counterpart: not kept (the subjobs keep their own values)"),
            ));
            return (None, notes);
        }
    };
    // Keep it only if ganga-rs can split with it again (`ganga copy`).
    if let Some(sp) = &splitter
        && let Err(e) = sp.split()
        && !(matches!(sp, Splitter::Args { args, .. } if args.is_empty()))
    {
        notes.push((
            Severity::Flagged,
            format!(
                "splitter {}: {e}; not kept (the subjobs keep their own values)",
                s.class
            ),
        ));
        return (None, notes);
    }
    (splitter, notes)
}

/// A `<sequence>` of `<sequence>`s (or a list of lists): each inner list as words, or
/// `None` where an item is not a list of words.
fn seq_node_lists(node: &Node) -> Vec<Option<Vec<String>>> {
    let words = |items: Vec<Item>| -> Option<Vec<String>> {
        items
            .into_iter()
            .map(|i| match i {
                Item::Value(v) => v.py_str(),
                Item::File(f) => Some(f),
                Item::Other(_) => None,
            })
            .collect()
    };
    match node {
        Node::Seq(items) => items
            .iter()
            .map(|n| match n {
                Node::Seq(_) => words(seq_items(n)),
                Node::Value(v) if v.items().is_some() => words(seq_items(n)),
                Node::Value(v) => v.py_str().map(|w| vec![w]),
                Node::Object(o) if o.class == "GangaList" => words(seq_items(n)),
                Node::Object(_) => None,
            })
            .collect(),
        Node::Value(v) => v.items().map_or_else(Vec::new, |outer| {
            outer
                .iter()
                .map(|inner| words(seq_items(&Node::Value(inner.clone()))))
                .collect()
        }),
        Node::Object(o) if o.class == "GangaList" => {
            o.get("_list").map_or_else(Vec::new, seq_node_lists)
        }
        Node::Object(_) => Vec::new(),
    }
}

/// A subjob, as what differs from its master.
fn subjob_of(out: &mut MappedJob, master: &Unit, mut sub: Unit, index: u32, sref: &str) -> Subjob {
    let m = &master.spec;
    let s = &sub.spec;
    let mut overrides = Vec::new();
    if s.name != m.name {
        overrides.push(Override::Name(s.name.clone()));
    }
    if s.comment != m.comment {
        overrides.push(Override::Comment(s.comment.clone()));
    }
    let (me, se) = (m.application.executable(), s.application.executable());
    if se.exe != me.exe {
        overrides.push(Override::Exe(se.exe.clone()));
    }
    if se.args != me.args {
        let appends = matches!(&m.splitter, Some(Splitter::Args { append: true, .. }));
        match se.args.strip_prefix(me.args.as_slice()) {
            Some(rest) if appends => overrides.push(Override::AppendArgs(rest.to_vec())),
            _ => overrides.push(Override::Args(se.args.clone())),
        }
    }
    if se.env != me.env {
        let whole = matches!(&m.splitter, Some(Splitter::Generic { attributes })
            if attributes.iter().any(|a| a.path == "application.env"))
            || me.env.keys().any(|k| !se.env.contains_key(k));
        if whole {
            overrides.push(Override::Env(se.env.clone()));
        } else {
            for (k, v) in &se.env {
                if me.env.get(k) != Some(v) {
                    overrides.push(Override::EnvVar(k.clone(), v.clone()));
                }
            }
        }
    }
    if s.backend.kind != m.backend.kind {
        out.problems.push((
            sref.to_owned(),
            Severity::Flagged,
            format!(
                "its backend is {} but its master's is {}: it keeps the master's",
                s.backend.kind, m.backend.kind
            ),
        ));
    }
    for (k, v) in &s.backend.options {
        if m.backend.options.get(k) != Some(v) {
            overrides.push(Override::BackendOption(k.clone(), v.clone()));
        }
    }
    for k in m.backend.options.keys() {
        if !s.backend.options.contains_key(k) {
            out.problems.push((
                sref.to_owned(),
                Severity::Flagged,
                format!(
                    "backend option {k} is set on its master but not on it: it keeps the master's"
                ),
            ));
        }
    }
    if s.output_files != m.output_files {
        out.problems.push((
            sref.to_owned(),
            Severity::Flagged,
            format!(
                "its output files {:?} differ from its master's {:?}: subjobs collect their master's",
                s.output_files, m.output_files
            ),
        ));
    }
    if sub.own_inputs > 0 {
        out.problems.push((
            sref.to_owned(),
            Severity::Flagged,
            format!(
                "it lists {} input file(s) of its own: subjobs get their master's input files",
                sub.own_inputs
            ),
        ));
    }
    for (sev, note) in sub.notes.drain(..) {
        out.problems.push((sref.to_owned(), sev, note));
    }
    if sub.active {
        out.active.push((sref.to_owned(), sub.ganga_status.clone()));
    }
    // Facts about a subjob's files go to the master, under its index.
    for (k, v) in sub.file_meta.drain(..) {
        let k = k.replacen("ganga.", &format!("ganga.subjob.{index}."), 1);
        out.job.metadata.insert(k, v);
    }
    for (k, _) in sub.meta.drain(..) {
        if k == keys::STATUS {
            continue; // listed with the active units
        }
        let what = match k.strip_prefix("ganga.time.") {
            Some(t) => format!("subjob timestamp `{t}`"),
            None => format!("subjob {}", k.trim_start_matches("ganga.")),
        };
        out.dropped.push(what);
    }
    out.dropped.append(&mut sub.dropped);
    Subjob {
        index,
        overrides,
        run: sub.run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_in_dirac_texts() {
        assert_eq!(exit_code_in("Failed with exit code 3"), Some(3));
        assert_eq!(exit_code_in("Exit Code: -1"), Some(-1));
        assert_eq!(exit_code_in("Execution Complete"), None);
        assert_eq!(exit_code_in("exit code"), None);
    }

    #[test]
    fn final_stamp() {
        assert_eq!(final_status("completed_frozen"), Some(Status::Completed));
        assert_eq!(final_status("killed"), Some(Status::Killed));
        assert_eq!(final_status("running"), None);
    }
}
