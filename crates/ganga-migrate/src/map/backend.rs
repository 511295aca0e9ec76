//! The backend: its configuration (what differs from Ganga's defaults) and what it
//! said about the run.

use ganga_core::{BackendConfig, BackendInfo, Options, Value};

use super::unit::Unit;
use super::values::{node_value, nonempty};
use crate::pyliteral::PyValue;
use crate::report::Severity;
use crate::xml::{Node, Object};

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

pub(super) fn backend_of(b: &Object, u: &mut Unit) {
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
}
