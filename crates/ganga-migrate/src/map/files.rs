//! Input and output files: local paths become the spec's files, patterns its outputs;
//! what ganga-rs cannot fetch or collect is kept as metadata and flagged.

use std::path::{Path, PathBuf};

use super::Ctx;
use super::unit::Unit;
use super::values::{Item, brief, call_name, nonempty, seq_items, text};
use crate::pyliteral::PyValue;
use crate::report::Severity;
use crate::xml::{Node, Object};

impl Unit {
    /// Output files and sandbox, input files and sandbox.
    pub(super) fn read_files(&mut self, ctx: &Ctx<'_>, o: &Object, job: u64, subjob: Option<u32>) {
        let unit_output = output_suffix(&ctx.user.user, job, subjob);
        for attr in ["outputfiles", "non_copyable_outputfiles"] {
            if let Some(node) = o.get(attr) {
                output_files(node, &unit_output, self);
            }
        }
        if let Some(node) = o.get("outputsandbox") {
            for item in seq_items(node) {
                if let Item::Value(v) = item
                    && let Some(p) = v.py_str()
                    && !self.spec.output_files.contains(&p)
                {
                    self.spec.output_files.push(p);
                }
            }
        }
        let before = self.spec.input_files.len();
        if let Some(node) = o.get("inputfiles") {
            input_files(node, self);
        }
        if let Some(node) = o.get("inputsandbox") {
            input_files(node, self);
        }
        if subjob.is_some() {
            self.own_inputs = self.spec.input_files.len() - before;
        }
    }
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
