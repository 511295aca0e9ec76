//! `ganga plugins check FILE`: the backend conformance suite against a built library, with
//! real plugins: the template backend (which conforms), one that never reports a kill,
//! one that panics, hangs or aborts, and libraries that are no plugin at all.

use std::path::Path;

use ganga_test_support::built_plugin;
use serde_json::Value;

use crate::util::{Ganga, truncated_copy};

/// Runs `ganga plugins check FILE ARGS... --json`; returns the exit code and the report.
fn check_json(g: &Ganga, file: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["plugins", "check", file.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = g.output(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_conforming_backend_passes_every_check_that_applies() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-backend-template");
    let (code, report) = check_json(&g, &plugin, &["--timeout", "30"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["plugin"]["name"], "template");
    assert_eq!(report["ganga"]["plugin_abi"], 1);
    for (check, outcome) in outcomes(&report) {
        // The template declares neither find nor watch.
        let expected = if check == "find" || check == "watch" {
            "not_applicable"
        } else {
            "passed"
        };
        assert_eq!(outcome, expected, "{check}: {report:#}");
    }
    assert_eq!(report["failed"], 0);
    assert_eq!(report["passed"], 18);
}

#[test]
fn a_backend_that_never_reports_a_kill_fails_that_check_by_name() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-testplugin-forgetful");
    let out = g.output(&[
        "plugins",
        "check",
        plugin.to_str().unwrap(),
        "--timeout",
        "30",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL  kill_running         kill of a running job answers done and the job ends Killed"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("expected: Killed"), "{stdout}");
    assert!(
        stdout.contains("got:      Failed (`exited 143`, exit code 143"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backend plugin `forgetful` fails `kill_running`"),
        "{stdout}"
    );
    // That check alone: everything else it does right.
    let (code, report) = check_json(&g, &plugin, &["--timeout", "30"]);
    assert_eq!(code, Some(2));
    let failed: Vec<String> = outcomes(&report)
        .into_iter()
        .filter(|(_, o)| o == "failed")
        .map(|(c, _)| c)
        .collect();
    assert_eq!(failed, ["kill_running"], "{report:#}");
}

#[test]
fn panics_hangs_and_crashes_fail_their_check_and_ganga_reports_them() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-testplugin-faulty");
    let only = [
        "--only",
        "describe",
        "--only",
        "unknown_job",
        "--timeout",
        "1",
    ];
    let unknown_job = |report: &Value| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "unknown_job")
            .cloned()
            .unwrap()
    };

    // Its poll panics: the SDK makes that an error of the call.
    let (code, report) = check_json(&g, &plugin, &only);
    assert_eq!(code, Some(2), "{report:#}");
    let failed = unknown_job(&report);
    assert_eq!(failed["outcome"], "failed");
    assert!(
        failed["got"]
            .as_str()
            .unwrap()
            .contains("plugin panicked: faulty plugin: poll always panics"),
        "{failed:#}"
    );
    assert_eq!(outcomes(&report)[0], ("describe".into(), "passed".into()));

    // Its poll never answers: the check fails when its time is up.
    let config = g.path("hang.toml");
    std::fs::write(&config, "[plugin.faulty]\npoll = \"hang\"\n").unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(&only);
    let (code, report) = check_json(&g, &plugin, &args[..]);
    assert_eq!(code, Some(2), "{report:#}");
    let failed = unknown_job(&report);
    assert_eq!(
        failed["expected"], "the check to end within 3s",
        "{failed:#}"
    );

    // Its poll aborts the process: the check's own process dies, not this ganga.
    let config = g.path("abort.toml");
    std::fs::write(&config, "[plugin.faulty]\npoll = \"abort\"\n").unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(&only);
    let (code, report) = check_json(&g, &plugin, &args[..]);
    assert_eq!(code, Some(2), "{report:#}");
    let failed = unknown_job(&report);
    assert!(
        failed["got"]
            .as_str()
            .unwrap()
            .starts_with("the process running it was killed by signal 6 (SIGABRT)"),
        "{failed:#}"
    );
}

#[test]
fn libraries_that_are_no_backend_plugin_are_refused_by_name() {
    let g = Ganga::new();
    let template = built_plugin("ganga-backend-template");
    let dir = g.path("libs");
    std::fs::create_dir_all(&dir).unwrap();

    let truncated = dir.join("libganga_backend_cut.so");
    let size = std::fs::metadata(&template).unwrap().len();
    truncated_copy(&template, &truncated, size / 2);

    // The same library for another machine (its ELF header says aarch64).
    let foreign = dir.join("libganga_backend_template.so");
    let mut bytes = std::fs::read(&template).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&foreign, bytes).unwrap();

    let text = dir.join("libganga_backend_text.so");
    std::fs::write(&text, "not a library\n").unwrap();

    let cases = [
        (truncated, "refused: the file is truncated or damaged"),
        (foreign, "refused: the dynamic loader refused it"),
        (text, "refused: it is not an ELF shared library"),
        (
            built_plugin("ganga-testplugin-wrong-abi"),
            "refused: it was built for plugin ABI 2, and this ganga speaks plugin ABI 1",
        ),
        (
            built_plugin("ganga-store-lmdb"),
            "holds the store plugin `lmdb`: `ganga plugins check` checks backend plugins",
        ),
    ];
    for (file, says) in cases {
        let out = g.output(&["plugins", "check", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(says),
            "{}: {stderr}",
            file.display()
        );
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_versions_a_plugin_must_match_are_printed() {
    let g = Ganga::new();
    let (ganga, abi, protocol) = (
        env!("CARGO_PKG_VERSION"),
        ganga_plugin_abi::ABI_MAJOR,
        ganga_protocol::PROTOCOL_VERSION,
    );
    let version = g.run(&["--version"]);
    assert_eq!(
        version.trim(),
        format!("ganga {ganga} (plugin ABI {abi}, protocol {protocol})")
    );
    let major = protocol.split('.').next().unwrap();
    let listing = g.run(&["plugins"]);
    assert!(
        listing.contains(&format!(
            "this ganga: {ganga}; plugins load if built for plugin ABI {abi} and protocol {major}.x"
        )),
        "{listing}"
    );
    let listing = g.json(&["plugins", "--json"]);
    assert_eq!(listing["ganga"]["protocol"], protocol);
    assert_eq!(listing["ganga"]["plugin_abi"], abi);
}
