//! A subjob as what differs from its master: overrides, and notes where a difference
//! has no override.

use ganga_core::{Override, Splitter, Subjob};

use super::unit::Unit;
use super::{MappedJob, keys};
use crate::report::Severity;

/// A subjob, as what differs from its master.
pub(super) fn subjob_of(
    out: &mut MappedJob,
    master: &Unit,
    mut sub: Unit,
    index: u32,
    sref: &str,
) -> Subjob {
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
