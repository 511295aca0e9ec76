//! The application: only an `Executable` has a counterpart in ganga-rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ganga_core::{Application, Executable};

use super::Ctx;
use super::unit::Unit;
use super::values::{Item, brief, call_name, seq_items, text};
use crate::pyliteral::PyValue;
use crate::report::Severity;
use crate::xml::{Node, Object};

impl Unit {
    /// The application: only an Executable has a counterpart.
    pub(super) fn read_application(&mut self, ctx: &Ctx<'_>, o: &Object) -> Result<(), String> {
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
}
