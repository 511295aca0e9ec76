//! Tidy checks, in the spirit of rust-analyzer's: the architecture document names every
//! crate of the workspace and no crate that is gone, and the import graph runs the way
//! it says, with no circle (test dependencies included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Every package directory of the workspace (`crates/*`, `plugins/*`, `tests/plugins/*`,
/// `tests`, `xtask`), as a path relative to the root.
fn members() -> BTreeSet<String> {
    let root = root();
    let mut out = BTreeSet::new();
    for dir in ["crates", "plugins", "tests/plugins"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("a workspace directory") {
            let path = entry.expect("an entry").path();
            if path.join("Cargo.toml").is_file() {
                let rel = path.strip_prefix(&root).expect("under the root");
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.insert("tests".to_owned());
    out.insert("xtask".to_owned());
    out
}

/// The package name and the workspace packages it depends on (normal, dev and build),
/// from its manifest.
fn manifest(dir: &str) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).expect("a manifest");
    let doc: toml::Table = text.parse().expect("a valid manifest");
    let name = doc["package"]["name"]
        .as_str()
        .expect("a package name")
        .to_owned();
    let mut deps = BTreeSet::new();
    for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = doc.get(table).and_then(|t| t.as_table()) {
            // A dev-dependency on itself only turns a feature on for its own tests (the
            // LMDB store's `test-hooks`): not an import.
            deps.extend(
                t.keys()
                    .filter(|k| k.starts_with("ganga") && **k != name)
                    .cloned(),
            );
        }
    }
    (name, deps)
}

#[test]
fn the_architecture_document_names_every_crate_and_only_those() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("the doc");
    // The code map's headings: ### `crates/x`, ### `plugins/y`, ### `tests/`, `tests/plugins/`
    let mut named = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("### ")) {
        for part in line.split('`').skip(1).step_by(2) {
            named.insert(part.trim_end_matches('/').to_owned());
        }
    }
    let members = members();
    let covered = |m: &String| {
        named.contains(m) || m.starts_with("tests/plugins/") && named.contains("tests/plugins")
    };
    let unnamed: Vec<&String> = members.iter().filter(|m| !covered(m)).collect();
    assert!(
        unnamed.is_empty(),
        "docs/architecture.md has no section for {unnamed:?}: add a `### ` heading naming each"
    );
    let gone: Vec<&String> = named.iter().filter(|n| !root().join(n).is_dir()).collect();
    assert!(
        gone.is_empty(),
        "docs/architecture.md names {gone:?}, which do not exist (any more)"
    );
}

#[test]
fn the_crates_import_each_other_without_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        members().iter().map(|dir| manifest(dir)).collect();
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let mut path = Vec::new();
        if let Some(circle) = visit(node, &graph, &mut path, &mut done) {
            panic!(
                "the crates import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
    // What the architecture says the core does not know.
    let core = &graph["ganga-core"];
    assert!(
        core.iter().all(|d| d == "ganga-core"),
        "ganga-core depends on {core:?}: it must depend on no other crate of the workspace"
    );
}

/// Every `.rs` file below `dir` (relative to the root), as a path relative to the root.
fn rust_files(dir: &str, out: &mut Vec<String>) {
    let root = root();
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("an entry").path();
        let rel = path
            .strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() && !rel.ends_with("/target") {
            rust_files(&rel, out);
        } else if rel.ends_with(".rs") {
            out.push(rel);
        }
    }
}

#[test]
fn blocking_work_leaves_the_async_threads_through_one_helper_per_runtime() {
    // The host's runtime (monitor, session, CLI) and each plugin's own runtime (a cdylib
    // has its own copy of tokio) each have one `blocking`, which names the work in its
    // error; nothing else calls tokio's blocking pool directly.
    let allowed = [
        "crates/ganga-monitor/src/store.rs",
        "crates/ganga-plugin-sdk/src/blocking.rs",
    ];
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "tests", "xtask/src"] {
        rust_files(dir, &mut files);
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let needle = ["spawn", "_blocking("].concat();
    let offenders: Vec<&String> = files
        .iter()
        .filter(|f| !allowed.contains(&f.as_str()))
        .filter(|f| {
            std::fs::read_to_string(root().join(f))
                .expect("a source file")
                .contains(&needle)
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these call tokio's blocking pool directly; use `ganga_monitor::blocking` (host) or \
         `ganga_plugin_sdk::blocking` (plugins): {offenders:?}"
    );
    for f in allowed {
        let text = std::fs::read_to_string(root().join(f)).expect("the helper's file");
        assert!(text.contains(&needle), "{f} no longer holds its helper");
    }
}
